"""Which device backend measures this run: an NVML replay trace, real NVML, or none.

Why a module of its own: the interface (`devices.py`) is what both backends implement, so it must
not import them; the choice, which imports both, lives here, above them.

`LLEM_NVML_REPLAY=/path/trace.jsonl` -> replay (optional `LLEM_NVML_REPLAY_SPEED`, default 1.0);
else real NVML when `nvmlInit()` succeeds; else None with the reason (CPU-only: every GPU energy
field is null with that reason). Both backends are imported only when chosen: pynvml is never
needed on a CPU-only host.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from .devices import DeviceBackend

REPLAY_ENV = "LLEM_NVML_REPLAY"
REPLAY_SPEED_ENV = "LLEM_NVML_REPLAY_SPEED"


@dataclass
class BackendChoice:
    backend: DeviceBackend | None
    unavailable_reason: str | None = None
    notes: list[str] = field(default_factory=list)


def open_backend() -> BackendChoice:
    """Replay if LLEM_NVML_REPLAY is set, else real NVML, else None with the reason."""
    trace = os.environ.get(REPLAY_ENV)
    if trace:
        from .replay import ReplayBackend

        speed = float(os.environ.get(REPLAY_SPEED_ENV, "1.0") or 1.0)
        backend = ReplayBackend.from_file(trace, speed=speed)
        return BackendChoice(backend, notes=[f"NVML replay: {backend.description}"])
    from .nvml_real import NvmlBackend, NvmlUnavailable

    try:
        return BackendChoice(NvmlBackend.open())
    except NvmlUnavailable as exc:
        return BackendChoice(None, unavailable_reason=str(exc))
