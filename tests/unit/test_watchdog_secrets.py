"""The next start removes a dead llem's secrets directory, and nothing another user put beside it."""
from __future__ import annotations

import os

import pytest

from llenergymeasure.runners import watchdog


def _dead_pid() -> int:
    pid = 4_000_000  # above pid_max on Linux: no process has it
    assert not os.path.exists(f"/proc/{pid}")
    return pid


@pytest.fixture
def tmp_root(tmp_path, monkeypatch):
    monkeypatch.setattr(watchdog, "secrets_root", lambda: tmp_path)
    return tmp_path


def test_a_dead_llems_own_secrets_directory_is_removed(tmp_root):
    ours = tmp_root / f"{watchdog.secrets_prefix(_dead_pid())}abc"
    ours.mkdir(mode=0o700)
    (ours / "hf_token").write_text("secret")
    alive = tmp_root / f"{watchdog.secrets_prefix(os.getpid())}abc"
    alive.mkdir(mode=0o700)
    removed = watchdog._remove_secrets()
    assert removed == [f"secrets directory {ours}"] and not ours.exists() and alive.exists()


def test_a_look_alike_of_another_user_a_link_or_an_open_directory_is_left_alone(tmp_root, tmp_path_factory):
    victim = tmp_path_factory.mktemp("victim")
    (victim / "precious").write_text("keep")
    dead = _dead_pid()
    link = tmp_root / f"{watchdog.secrets_prefix(dead)}link"
    link.symlink_to(victim, target_is_directory=True)
    open_dir = tmp_root / f"{watchdog.secrets_prefix(dead)}open"
    open_dir.mkdir()
    open_dir.chmod(0o755)  # not made by mkdtemp: llem's are owner-only
    planted = []
    if os.getuid() == 0:  # as root (llem often runs as root): a directory another user made
        other = tmp_root / f"{watchdog.secrets_prefix(dead)}other"
        other.mkdir(mode=0o700)
        (other / "their_file").write_text("theirs")
        os.chown(other, 65534, 65534)
        planted.append(other)
    assert watchdog._remove_secrets() == []
    assert (victim / "precious").read_text() == "keep" and link.is_symlink() and open_dir.is_dir()
    assert all(p.is_dir() for p in planted)
