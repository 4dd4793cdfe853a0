"""Which runs are comparable: what makes a run's figures unlike a clean measurement, said per run.

Why one module: the result already records each condition (`contention.significant`,
`warmup.converged`, `energy.readings_source`, `window_stall_s`), but the statistics averaged such
runs beside clean ones. The statistics (stats.py), the run tables (tables.py), `llem results` and
the end-of-run table read these flags from here, so a run is flagged the same way everywhere.

- replayed: GPU readings replayed from a recorded trace (`energy.readings_source` not NVML): not a
  measurement of the machine that ran it. Never pooled with measured runs.
- contended: other processes used a measured GPU or kept host cores busy in the window.
- warm-up not converged: latency had not settled when the window opened.
- stalled: the harness process did not run for a while inside its window.
"""
from __future__ import annotations

from typing import Any

REPLAYED = "replayed"
MEASURED = "measured"
REPLAYED_LABEL = "[replayed]"  # beside a figure from replayed readings, wherever it is shown


def readings(result: Any) -> str | None:
    """'replayed', 'measured' (NVML), or None when no GPU reading was taken."""
    source = result.energy.readings_source
    if not source:
        return None
    return MEASURED if source.startswith("NVML") else REPLAYED


def run_flags(result: Any) -> list[str]:
    """Why this run is not comparable with a clean measurement (empty: nothing known against it)."""
    flags: list[str] = []
    if readings(result) == REPLAYED:
        flags.append("replayed readings (a recorded trace, not a measurement of this machine)")
    contention = result.contention
    if contention is not None and contention.significant:
        flags.append("contended: " + ("; ".join(contention.reasons) or "other processes during the window"))
    warmup = result.warmup
    if warmup.enabled and not warmup.converged:
        flags.append(f"warm-up did not converge (stopped by {warmup.stopped_by or 'its bound'})")
    stall = getattr(result, "window_stall_s", None)
    if stall:
        flags.append(f"stalled {stall:.1f} s inside the window")
    return flags


def short_flag(flag: str) -> str:
    """The first words of a flag, for a table cell."""
    return flag.split(":")[0].split(" (")[0]
