"""energy.external: an external meter's readings file, read for the measured window and set beside the counter.

The meter here is a file written by the test as a logger would (the replayed GPU is synthetic); the
window is a real MeasurementSession window on a replayed trace, so the unix edges are the run's own.
"""
from __future__ import annotations

import time

import pytest

from llem_harness.measurement.external import external_energy
from tests.unit._measurement_helpers import measure, replay_session


def _power_file(path, t0, t1, watts, period_s=0.1, header=("# meter: test riser", "# scope: gpu")):
    lines = list(header) + ["unix_s,power_w"]
    n = int(round((t1 - t0) / period_s)) + 2   # one reading past t1
    lines += [f"{t0 + i * period_s:.3f},{watts}" for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_gpu_scope_meter_that_agrees_and_one_that_does_not(tmp_path):
    ok = external_energy(_power_file(tmp_path / "m.csv", 1000.0, 1010.0, 300.0), 1000.05, 1010.05, 3000.0)
    assert ok.method == "external_power_trapezoid" and ok.energy_j == pytest.approx(3000.0, rel=1e-6)
    assert ok.ratio == pytest.approx(1.0) and ok.flagged is False and ok.meter == "test riser" and ok.scope == "gpu"
    assert ok.n_readings >= 99 and ok.reading_period_ms == pytest.approx(100.0, rel=0.01)
    high = external_energy(_power_file(tmp_path / "h.csv", 1000.0, 1010.0, 390.0), 1000.05, 1010.05, 3000.0)
    assert high.ratio == pytest.approx(1.3) and high.flagged is True


def test_a_wall_meter_is_compared_but_never_flagged(tmp_path):
    wall = external_energy(_power_file(tmp_path / "w.csv", 0.0, 10.0, 600.0, header=("# scope: node at the wall",)),
                           0.05, 10.05, 3000.0)
    assert wall.ratio == pytest.approx(2.0) and wall.flagged is None and wall.tolerance is None


def test_a_cumulative_energy_meter_is_differenced(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("unix_s,energy_j\n" + "\n".join(f"{t},{t * 250.0}" for t in range(0, 12)) + "\n")
    e = external_energy(path, 2.5, 8.5, 1500.0)
    assert e.method == "external_energy_difference" and e.energy_j == pytest.approx(1500.0) and e.ratio == pytest.approx(1)


def test_readings_that_do_not_cover_the_window_are_unavailable(tmp_path):
    late = external_energy(_power_file(tmp_path / "l.csv", 5.0, 9.0, 300.0), 1.0, 10.0, 2700.0, wait_s=0.3)
    assert late.energy_j is None and "do not cover the window" in late.unavailable_reason
    bad = tmp_path / "bad.csv"
    bad.write_text("1.0,abc\n")
    assert "bad.csv:1" in external_energy(bad, 0, 1, None, wait_s=0).unavailable_reason
    assert "unreadable" in external_energy(tmp_path / "absent.csv", 0, 1, None, wait_s=0).unavailable_reason


def test_a_replayed_run_records_the_external_meter_beside_its_counter(monkeypatch, tmp_path):
    """A logger writes 300 W readings (the trace's GPU 0 power) through the window; a 2-GPU run's counter sums
    300 + 200 W, so a GPU-scope meter of GPU 0 alone reads 0.6 of it and is flagged."""
    meter = tmp_path / "meter.csv"
    now = time.time()
    _power_file(meter, now - 1.0, now + 30.0, 300.0, period_s=0.05)
    session, _ = replay_session(monkeypatch, tmp_path, "two_gpu_counter.jsonl", external_energy_file=str(meter))
    window = measure(session, 6.0, 16.0)
    session.close()
    ext = window.energy.external
    wall_s = window.end_unix_s - window.start_unix_s        # replay runs 10x: the meter sees wall seconds
    assert ext.method == "external_power_trapezoid" and ext.energy_j == pytest.approx(300.0 * wall_s, rel=0.02)
    assert ext.counter_energy_j == pytest.approx(window.energy.gpu_energy_raw_j)
    assert ext.ratio == pytest.approx(ext.energy_j / window.energy.gpu_energy_raw_j) and ext.flagged is True
