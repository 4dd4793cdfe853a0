"""What the harness tells the host while it runs: one JSON event per stdout line, and the phase.

The host's progress display and silence detector read these lines (domain/progress.py encodes
them); `Phase.name` is also what error.json reports as the phase a failed run stopped in.
"""
from __future__ import annotations

import logging
import sys
from datetime import datetime, timezone

from llenergymeasure.domain.progress import encode_event

log = logging.getLogger("llem_harness")


def emit(event: str, **fields) -> None:
    """One progress event per stdout line (the host's progress display and silence detector)."""
    sys.stdout.write(encode_event(event, **fields) + "\n")
    sys.stdout.flush()


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class Phase:
    """Tracks the current phase so error.json can say where the run failed."""

    name = "starting"

    @classmethod
    def enter(cls, name: str, **fields) -> None:
        cls.name = name
        log.info("phase %s %s", name, fields or "")
        emit("phase", phase=name, **fields)
