"""Shared helpers for the measurement tests: a replay-backed MeasurementSession on a real clock."""
from __future__ import annotations

import time
from pathlib import Path

from llem_harness.measurement import MeasurementSession
from llenergymeasure.domain import MeasurementConfig

TRACES = Path(__file__).resolve().parents[1] / "fixtures" / "traces"
SPEED = 10.0  # trace seconds per wall second: a 10 s window takes 1 s of test time


def replay_session(monkeypatch, tmp_path: Path, trace: str, *, gpu_ids=None, reuse=None, cvd=None,
                   speed: float = SPEED, **cfg) -> tuple[MeasurementSession, list[tuple[str, dict]]]:
    monkeypatch.setenv("LLEM_NVML_REPLAY", str(TRACES / trace))
    monkeypatch.setenv("LLEM_NVML_REPLAY_SPEED", str(speed))
    if cvd is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", cvd)
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    events: list[tuple[str, dict]] = []
    cfg.setdefault("baseline", {"enabled": False})
    session = MeasurementSession(MeasurementConfig(**cfg), gpu_ids, reuse, tmp_path,
                                 lambda name, **fields: events.append((name, fields)),
                                 powercap_root=tmp_path / "no-powercap")
    return session, events


def wait_until(session: MeasurementSession, trace_t_s: float) -> None:
    """Sleep until the replay clock reaches trace time `trace_t_s`."""
    while session.backend.clock() < trace_t_s:
        time.sleep(0.002)


def measure(session: MeasurementSession, start_t_s: float, end_t_s: float):
    wait_until(session, start_t_s)
    session.start_window(lambda: None)
    wait_until(session, end_t_s)
    return session.stop_window(lambda: None)


def measure_bracketed(session: MeasurementSession, start_t_s: float, end_t_s: float):
    """`measure`, plus the span its counters can have been read over: (inner_s, outer_s).

    An edge reads the counters, then the clock: a loaded host that preempts the harness between the two
    makes `window_s` differ from the span the counters cover, by up to 10 trace ms per wall ms at 10x
    replay. The clock reads taken around `start_window` and `stop_window` bound that span whatever the
    host does: at least end_before - start_after, at most end_after - start_before.
    """
    clock = session.backend.clock
    wait_until(session, start_t_s)
    start_before = clock()
    session.start_window(lambda: None)
    start_after = clock()
    wait_until(session, end_t_s)
    end_before = clock()
    window = session.stop_window(lambda: None)
    end_after = clock()
    return window, (end_before - start_after, end_after - start_before)


def counter_energy_bounds(power_w: float, span_s: tuple[float, float], step_s: float = 0.02,
                          ripple: float = 0.01) -> tuple[float, float]:
    """The joules a replayed counter can show over a bracketed span at `power_w`.

    The counter holds its value between the trace's rows (`step_s` apart), so a delta is short by up to
    one step; the traces' 1 Hz ripple of `ripple` x power moves the mean over a part of a second by at
    most ripple x power / pi joules. Nothing else: a delta outside these bounds is a defect.
    """
    import math

    slack_s = step_s + ripple / math.pi
    return power_w * (span_s[0] - slack_s), power_w * (span_s[1] + slack_s)
