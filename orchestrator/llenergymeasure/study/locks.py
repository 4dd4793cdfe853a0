"""Locks that keep two `llem` processes from measuring at the same time on the same devices, or
running the same study directory twice.

Why flock(2): the kernel releases it when the holder dies, even by `kill -9`, so a crashed
study never leaves a stale lock behind, and no pid bookkeeping can go wrong. Each lock file
holds who took it (pid, host, study dir) so the refusal can name the holder.

GPU locks are all-or-none: a study takes every device it will measure on, or none, so two
studies can never each hold half of what the other needs. On a host without GPUs the "device"
is the host's CPU (`cpu`): two CPU studies at once would skew each other's timing and energy.

Why the lock files are opened with care: llem often runs as root on shared GPU nodes. A lock
directory another user can write would let that user plant `device-cpu.lock -> /etc/shadow`
and have root's next run truncate the target. So the default directory is per user
(`llem-locks-<uid>` under the system temp dir), a lock directory must belong to the invoking
user and be writable by nobody else, and lock files are opened with O_NOFOLLOW and checked to
be plain files with one name before anything is written into them.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import stat
import tempfile
import time
from pathlib import Path

from ..errors import ConfigError, StudyError

LOCK_DIR_ENV = "LLEM_LOCK_DIR"
STUDY_LOCK_FILE = ".llem.lock"


def default_lock_dir() -> Path:
    """Per user: another user can neither create it first nor write into it."""
    return Path(tempfile.gettempdir()) / f"llem-locks-{os.getuid()}"


def lock_dir() -> Path:
    return Path(os.environ.get(LOCK_DIR_ENV) or default_lock_dir())


def check_lock_dir() -> Path:
    """ConfigError (exit 2) naming LLEM_LOCK_DIR when the device locks cannot be created there, or
    when the directory is not the invoking user's own (another user could plant links in it)."""
    path = lock_dir()
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        ok = os.access(path, os.W_OK | os.X_OK)
    except OSError as exc:
        ok, why = False, exc.strerror or str(exc)
    else:
        why = "not writable"
    if not ok:
        raise ConfigError(f"{LOCK_DIR_ENV}: the device-lock directory {path} cannot be created or written ({why}); "
                          f"set {LOCK_DIR_ENV} to a writable directory (default {default_lock_dir()})")
    check_own_dir(path, LOCK_DIR_ENV)
    return path


def check_own_dir(path: Path, field: str) -> None:
    """ConfigError unless `path` is a real directory owned by the invoking user that no one else can write."""
    info = os.lstat(path)
    uid = os.geteuid()
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"{field}: {path} is a symbolic link or not a directory; another user may have planted "
                          f"it. Set {field} to a directory you own (default {default_lock_dir()})")
    if info.st_uid != uid:
        raise ConfigError(f"{field}: {path} belongs to uid {info.st_uid}, not to you (uid {uid}): another user "
                          f"could redirect the files llem writes there. Remove it, or set {field} to a directory "
                          "you own")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(f"{field}: {path} can be written by other users (mode {stat.S_IMODE(info.st_mode):o}): "
                          f"they could redirect the files llem writes there. Run `chmod go-w {path}`, or set "
                          f"{field} to a directory only you can write")


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return "another process (holder unknown)"
    return f"pid {info.get('pid')} on {info.get('host')} (study {info.get('study_dir')})"


class _FileLock:
    def __init__(self, path: Path):
        self.path = path
        self.fd: int | None = None

    def try_acquire(self, study_dir: str) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = open_lock_file(self.path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "study_dir": study_dir}).encode())
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock
            self.fd = None


def open_lock_file(path: Path) -> int:
    """Open (or create) a lock file without following a link; refuse anything but a plain file with
    one name (a hard link to another file has two), so the truncate that follows can only ever reach
    a lock file. (Its owner may differ: root shows the status of a user's study.)"""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o644)
    except OSError as exc:
        raise ConfigError(f"cannot open the lock file {path} ({exc.strerror or exc}): a symbolic link or another "
                          f"kind of file is in its place; remove it (set {LOCK_DIR_ENV} to a directory only you "
                          "can write)") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        raise ConfigError(f"the lock file {path} is not a plain file with a single name ({info.st_nlink} links); "
                          f"another user may have planted it: remove it (set {LOCK_DIR_ENV} to a directory only "
                          "you can write)")
    return fd


class GpuLock:
    """All-or-none lock over device keys (GPU UUIDs/indices, or `cpu`)."""

    def __init__(self, keys: list[str], study_dir: str, wait: bool = False, poll_s: float = 2.0,
                 on_wait=None):
        safe = [k.replace("/", "_") for k in sorted(set(keys))]
        self.locks = [_FileLock(lock_dir() / f"device-{k}.lock") for k in safe]
        self.study_dir, self.wait, self.poll_s, self.on_wait = study_dir, wait, poll_s, on_wait

    def acquire(self) -> None:
        check_lock_dir()
        announced = False
        while True:
            busy = self._try_all()
            if busy is None:
                return
            if not self.wait:
                raise ConfigError(f"{busy.path.name.removeprefix('device-').removesuffix('.lock')} is in use by "
                                  f"{_holder(busy.path)}: two studies measuring on the same device would corrupt "
                                  "both. Wait for it to finish, or rerun with --wait-for-devices to queue.")
            if not announced and self.on_wait:
                self.on_wait(f"waiting for {_holder(busy.path)} to release its devices")
                announced = True
            time.sleep(self.poll_s)

    def _try_all(self):
        taken = []
        for lock in self.locks:
            if not lock.try_acquire(self.study_dir):
                for held in taken:
                    held.release()
                return lock
            taken.append(lock)
        return None

    def release(self) -> None:
        for lock in self.locks:
            lock.release()


class StudyLock:
    """Held for as long as a process runs a study directory (a resume must not run it twice)."""

    def __init__(self, study_dir: Path):
        self.lock = _FileLock(Path(study_dir) / STUDY_LOCK_FILE)
        self.study_dir = Path(study_dir)

    def acquire(self) -> None:
        if not self.lock.try_acquire(str(self.study_dir)):
            raise StudyError(f"{self.study_dir} is being run by {_holder(self.lock.path)}; "
                             "wait for it or stop it before resuming")

    def release(self) -> None:
        self.lock.release()


def device_keys(gpu_ids: list[str] | None, field: str = "execution.gpus", allow_fake: bool = False) -> list[str]:
    """What a study measures on: its explicit GPUs (checked against those that exist, by UUID), else
    every visible GPU, else the host CPU. Fake ids (allowed only for machinery tests) lock the CPU."""
    from ..runners.gpu_presence import check_gpu_ids, visible_gpu_uuids, visible_nvidia_gpus

    if gpu_ids:
        return check_gpu_ids(gpu_ids, field, allow_fake)
    count, _ = visible_nvidia_gpus()
    return visible_gpu_uuids() or [str(i) for i in range(count)] or ["cpu"]
