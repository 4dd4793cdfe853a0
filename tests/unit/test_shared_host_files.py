"""Files llem writes (often as root, on shared GPU nodes) cannot be redirected by another user:
lock files never follow a link, a lock directory must be the invoking user's own, temporary files of
atomic writes are created exclusively under names nobody can guess, study and run directories are
writable by their owner only."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from llenergymeasure.domain.io import write_json_atomic, write_text_atomic
from llenergymeasure.errors import ConfigError
from llenergymeasure.study.locks import GpuLock, StudyLock, check_lock_dir
from llenergymeasure.study.paths import create_study_dir

VICTIM_TEXT = "root:secret-hash:19000:0:99999:7:::\n"


@pytest.fixture
def victim(tmp_path) -> Path:
    """Stands for /etc/shadow: a 0600 file the attacker wants root to truncate."""
    path = tmp_path / "victim"
    path.write_text(VICTIM_TEXT)
    path.chmod(0o600)
    return path


@pytest.fixture
def locks(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "locks"
    folder.mkdir(mode=0o700)
    monkeypatch.setenv("LLEM_LOCK_DIR", str(folder))
    return folder


def test_a_planted_device_lock_link_is_refused_and_its_target_untouched(locks, victim):
    (locks / "device-cpu.lock").symlink_to(victim)
    with pytest.raises(ConfigError, match="device-cpu.lock"):
        GpuLock(["cpu"], "/study").acquire()
    assert victim.read_text() == VICTIM_TEXT


def test_a_planted_study_lock_link_is_refused(tmp_path, victim):
    study = tmp_path / "study"
    study.mkdir()
    (study / ".llem.lock").symlink_to(victim)
    with pytest.raises(ConfigError, match=".llem.lock"):
        StudyLock(study).acquire()
    assert victim.read_text() == VICTIM_TEXT


def test_a_hard_link_in_place_of_a_lock_file_is_refused(locks, victim):
    os.link(victim, locks / "device-cpu.lock")
    with pytest.raises(ConfigError, match="single name"):
        GpuLock(["cpu"], "/study").acquire()
    assert victim.read_text() == VICTIM_TEXT


def test_a_lock_directory_others_can_write_is_refused_with_the_fix(locks):
    locks.chmod(0o777)
    with pytest.raises(ConfigError, match=r"LLEM_LOCK_DIR.*can be written by other users.*chmod go-w"):
        check_lock_dir()
    locks.chmod(0o755)
    assert check_lock_dir() == locks


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another user needs root")
def test_a_lock_directory_of_another_user_is_refused(locks):
    os.chown(locks, 65534, 65534)  # nobody
    with pytest.raises(ConfigError, match=r"LLEM_LOCK_DIR.*belongs to uid 65534, not to you"):
        GpuLock(["cpu"], "/study").acquire()


def test_the_default_lock_directory_is_per_user(monkeypatch):
    from llenergymeasure.study.locks import default_lock_dir

    monkeypatch.delenv("LLEM_LOCK_DIR")
    assert default_lock_dir().name == f"llem-locks-{os.getuid()}"


def test_a_link_planted_at_the_old_predictable_temp_name_is_never_written_through(tmp_path, victim):
    target = tmp_path / "result.json"
    (tmp_path / f".result.json.{os.getpid()}.tmp").symlink_to(victim)
    write_json_atomic(target, {"ok": True})
    assert victim.read_text() == VICTIM_TEXT
    assert not target.is_symlink() and '"ok": true' in target.read_text()


def test_atomic_writes_replace_a_link_at_the_target_rather_than_follow_it(tmp_path, victim):
    target = tmp_path / "summary.csv"
    target.symlink_to(victim)
    write_text_atomic(target, "a,b\n")
    assert victim.read_text() == VICTIM_TEXT and target.read_text() == "a,b\n" and not target.is_symlink()


def test_exclusive_creation_never_follows_a_link(tmp_path, victim):
    from llenergymeasure.domain.io import create_exclusive

    link = tmp_path / "hf_token"
    link.symlink_to(victim)
    with pytest.raises(FileExistsError):
        create_exclusive(link, 0o600)
    assert victim.read_text() == VICTIM_TEXT


def test_study_directories_are_owner_only_write_whatever_the_umask(tmp_path):
    old = os.umask(0o000)
    try:
        study_dir = create_study_dir(tmp_path / "results", "s")
    finally:
        os.umask(old)
    for folder in (study_dir, study_dir / "runs"):
        assert folder.stat().st_mode & 0o022 == 0, oct(folder.stat().st_mode)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("useradd") is None, reason="a second user needs root")
def test_another_user_cannot_write_into_a_study_of_root(tmp_path):
    """Two users on one host: the other user cannot plant or replace files in a root study."""
    user = f"llemt{os.getpid() % 100000}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", user], check=True)
    try:
        tmp_path.chmod(0o755)
        old = os.umask(0o000)  # a permissive umask must not open the study to everyone
        try:
            study_dir = create_study_dir(tmp_path / "results", "s")
        finally:
            os.umask(old)
        for folder in (tmp_path / "results", study_dir):
            folder.chmod(folder.stat().st_mode | 0o055)  # readable and searchable by others
        attempt = subprocess.run(["runuser", "-u", user, "--", "touch", str(study_dir / "runs" / "planted")],
                                 capture_output=True, text=True)
        assert attempt.returncode != 0 and not (study_dir / "runs" / "planted").exists()
    finally:
        subprocess.run(["userdel", user], check=False)
