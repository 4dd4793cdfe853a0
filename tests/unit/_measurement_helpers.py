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
