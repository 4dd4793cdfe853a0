"""The engine's own root-cause line, for a run whose error only points at it ("see root cause above").

Why: engines that start worker processes (vLLM's engine core, TensorRT-LLM's executor) raise a
wrapper in the harness ("Engine core initialization failed. See root cause above") while the
cause — e.g. a ValueError naming the flag to change — is printed by the worker to the run's
output, i.e. runner.log, or sits deeper in harness.log's chained traceback. A user reading the
study's summary must get that line, not the wrapper's pointer to a log they have not opened.
"""
from __future__ import annotations

import re
from pathlib import Path

# Wrapper messages that point elsewhere for the cause (compared lower-case).
POINTERS = ("root cause", "see above", "see the log", "see logs above", "check the logs", "see stack trace",
            "see error above")
# `SomeError: message` (optionally module-qualified) as Python prints an exception's last line.
_EXCEPTION_LINE = re.compile(r"^(?:[\w.]+\.)?(\w*(?:Error|Exception|Exit|Interrupt)): (.+)$")
_TAIL_BYTES = 256 * 1024  # the end of a log is where the failure is


def points_elsewhere(message: str | None) -> bool:
    lowered = (message or "").lower()
    return any(pointer in lowered for pointer in POINTERS)


def root_cause_line(run_dir: Path, message: str, log_names: tuple[str, ...] = ("runner.log", "harness.log")
                    ) -> str | None:
    """The last `Error: message` line of the run's logs that is not the wrapper itself, or None."""
    found: list[str] = []
    for name in log_names:
        path = run_dir / name
        try:
            with open(path, "rb") as f:
                size = f.seek(0, 2)
                f.seek(max(size - _TAIL_BYTES, 0))
                text = f.read().decode("utf-8", errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            line = re.sub(r"^.*?\b(?=(?:[\w.]+\.)?\w*(?:Error|Exception): )", "", line.strip(), count=1)
            match = _EXCEPTION_LINE.match(line)
            if match and not points_elsewhere(match.group(2)) and match.group(2).strip() not in message:
                found.append(f"{match.group(1)}: {match.group(2).strip()}")
    return found[-1][:1000] if found else None


def with_root_cause(run_dir: Path, message: str) -> str:
    """`message`, led by the root-cause line when the message only points at one."""
    if not points_elsewhere(message):
        return message
    cause = root_cause_line(run_dir, message)
    if cause is None:
        return message
    return f"{cause} (the engine reported: {message.strip()[:300]}; from the run's logs)"
