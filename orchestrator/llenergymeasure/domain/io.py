"""Atomic file writes shared by host and harness (standard library only).

Why: the manifest and result files are read while studies run (by users, by `llem results`,
by a later resumption); a reader must never see a half-written file.

Why the temporary file is created exclusively, under an unpredictable name, without following a
link: llem often writes as root in directories another user may be able to write (a shared
results tree). A predictable temporary name opened normally lets that user plant a link and have
root write through it; `create_exclusive` makes the open fail instead.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

EXCLUSIVE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def create_exclusive(path: Path, mode: int = 0o666) -> int:
    """A new file at `path` (FileExistsError if anything, a link included, is already there)."""
    return os.open(path, EXCLUSIVE_FLAGS, mode)


def temp_name(path: Path) -> Path:
    """A temporary name beside `path` that nobody can guess ahead (pid + 64 random bits)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(8).hex()}.tmp")


def write_chunks_atomic(path: Path, chunks: Iterable[bytes], *, fsync: bool = True) -> None:
    """Write byte chunks to a temp file beside `path`, then os.replace it over `path`.

    Chunks avoid concatenating a large file into one more copy in memory before writing it.
    """
    path = Path(path)
    tmp = temp_name(path)
    fd = create_exclusive(tmp)
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:  # disk full, interrupt: no half-written temp file is left behind
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_text_atomic(path: Path, text: str, *, fsync: bool = True) -> None:
    """Write `text` atomically (a reader sees the old file or the new one, never a mix)."""
    write_chunks_atomic(path, [text.encode("utf-8")], fsync=fsync)


def write_json_atomic(path: Path, payload: Any, *, fsync: bool = True) -> None:
    """Pretty JSON (indent 2) of a dict, a list or a pydantic model, written atomically."""
    if hasattr(payload, "model_dump_json"):
        text = payload.model_dump_json(indent=2)
    else:
        text = json.dumps(payload, indent=2, default=str)
    write_text_atomic(path, text + "\n", fsync=fsync)
