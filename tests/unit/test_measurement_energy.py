"""GPU window energy through MeasurementSession on replayed traces (real sampler thread, real clock).

Traces are synthetic (tests/fixtures/traces/make_traces.py): each energy counter is the exact
integral of the power written beside it, so the expected energy is power x window. Tolerances
cover the trace step (20 ms held values) and clock reads at the window edges.
"""
from __future__ import annotations

import pytest

from _measurement_helpers import counter_energy_bounds, measure, measure_bracketed, replay_session

UUID0 = "GPU-5e5e5e5e-0000-4000-8000-000000000000"
UUID1 = "GPU-5e5e5e5e-0000-4000-8000-000000000001"


def test_counter_deltas_across_two_gpus(monkeypatch, tmp_path):
    session, events = replay_session(monkeypatch, tmp_path, "two_gpu_counter.jsonl")
    window, span_s = measure_bracketed(session, 6.0, 16.0)
    session.close()
    energy = window.energy
    assert energy.method == "counter"
    assert [g.gpu_uuid for g in energy.per_gpu] == [UUID0, UUID1]
    assert all(g.method == "counter" for g in energy.per_gpu)
    # Each GPU's counter delta over the span its edges were read over (clock reads around each edge:
    # a loaded host preempting an edge between its counters and its clock cannot fail this).
    low_j, high_j = counter_energy_bounds(300.0, span_s)
    assert low_j <= energy.per_gpu[0].energy_j <= high_j
    low_j, high_j = counter_energy_bounds(200.0, span_s)
    assert low_j <= energy.per_gpu[1].energy_j <= high_j
    assert energy.gpu_energy_raw_j == pytest.approx(sum(g.energy_j for g in energy.per_gpu))
    assert energy.mean_power_w == pytest.approx(energy.gpu_energy_raw_j / window.window_s)
    assert span_s[0] <= window.window_s <= span_s[1]
    assert energy.gpu_energy_adjusted_j is None  # no baseline -> no adjusted value, never a guess
    assert window.sampler.n_samples >= 10
    assert not any("unavailable" in w for w in window.warnings)


def test_instant_power_fallback_without_counter(monkeypatch, tmp_path):
    session, _ = replay_session(monkeypatch, tmp_path, "instant_only.jsonl")
    window = measure(session, 1.0, 11.0)
    session.close()
    assert window.energy.method == "integrated_instant_power"
    assert window.energy.per_gpu[0].method == "integrated_instant_power"
    assert window.energy.gpu_energy_raw_j == pytest.approx(150.0 * window.window_s, rel=0.02)
    assert any("integrated from instant-power samples" in w for w in window.warnings)


def test_counter_reset_is_discarded_never_clamped(monkeypatch, tmp_path):
    session, events = replay_session(monkeypatch, tmp_path, "counter_reset.jsonl")
    window = measure(session, 1.0, 8.0)  # the counter drops to 0 at t = 3 s
    session.close()
    gpu = window.energy.per_gpu[0]
    # Not the (negative) counter delta, not zero: the instant-power integral, labelled as such.
    assert gpu.method == "integrated_instant_power"
    assert gpu.energy_j == pytest.approx(100.0 * window.window_s, rel=0.03)
    assert any("went backwards" in w for w in window.warnings)
    assert any(name == "warning" and "went backwards" in f["message"] for name, f in events)


def test_throttling_and_temperature_drift(monkeypatch, tmp_path):
    session, _ = replay_session(monkeypatch, tmp_path, "throttle_hot.jsonl")
    window = measure(session, 0.5, 5.0)
    session.close()
    throttle = window.throttle
    assert throttle.occurred
    # Each sample's reasons hold until the next sample, so a duration is off by at most the gap that
    # straddles its onset plus the one that straddles its end: twice the largest gap the sampler left
    # (~0.1 s on a quiet host; a loaded one skips deadlines, and the replay runs 10x the wall clock).
    # The trace throttles 1-3 s (power cap) and 2-3 s (thermal); what lies inside the window's edges
    # counts (a start edge a loaded host reads late may begin after 1 s).
    tolerance_s = 2 * window.sampler.max_gap_ms / 1000.0
    t0 = window.window.start.clock_s
    assert throttle.reasons_s["sw_power_cap"] == pytest.approx(3.0 - max(1.0, t0), abs=tolerance_s)
    assert throttle.reasons_s["hw_thermal_slowdown"] == pytest.approx(3.0 - max(2.0, t0), abs=tolerance_s)
    assert throttle.reasons_s["sw_power_cap"] > throttle.reasons_s["hw_thermal_slowdown"]
    assert "gpu_idle" not in throttle.reasons_s
    assert any("sw_power_cap" in w for w in window.warnings)
    thermal = window.thermal
    # 40 °C + 5 °C/s (capped at 70): the start is the start edge's own sample, read right after the
    # edge's clock (1 °C of slack = 0.2 trace s = 20 ms of wall time between two adjacent calls), so it
    # follows the edge a loaded host reads late rather than a fixed "< 45 °C"; the end is past 5 s.
    assert 40.0 + 5.0 * t0 - 0.2 <= thermal.temperature_start_c <= 40.0 + 5.0 * t0 + 1.0
    assert thermal.temperature_end_c > 60
    assert thermal.temperature_max_c >= thermal.temperature_end_c
    assert any("temperature drifted" in w for w in window.warnings)


def test_idle_gpu_event_is_not_throttling(monkeypatch, tmp_path):
    session, _ = replay_session(monkeypatch, tmp_path, "two_gpu_counter.jsonl")
    window = measure(session, 0.5, 3.0)  # GPU0 reports only the gpu_idle clock event here
    session.close()
    assert window.throttle.occurred is False
    assert window.throttle.other_events_s["gpu_idle"] > 1.5
    assert not any("throttling" in w for w in window.warnings)


def test_short_window_and_few_samples_are_flagged(monkeypatch, tmp_path):
    session, _ = replay_session(monkeypatch, tmp_path, "instant_only.jsonl", sampling_period_ms=500)
    window = measure(session, 1.0, 3.0)
    session.close()
    assert window.window_s < 10
    assert any("shorter than 10 s" in w for w in window.warnings)
    assert any("samples in the window (< 10)" in w for w in window.warnings)


def test_timeseries_parquet_columns(monkeypatch, tmp_path):
    import pyarrow.parquet as pq

    session, _ = replay_session(monkeypatch, tmp_path, "two_gpu_counter.jsonl", save_timeseries=True)
    window = measure(session, 6.0, 9.0)
    session.close()
    assert window.timeseries_file == "timeseries.parquet"
    table = pq.read_table(tmp_path / "timeseries.parquet")
    names = set(table.column_names)
    for gpu in (0, 1):
        assert {f"gpu{gpu}_power_instant_w", f"gpu{gpu}_energy_mj", f"gpu{gpu}_temperature_c",
                f"gpu{gpu}_throttle_reasons", f"gpu{gpu}_sm_clock_mhz"} <= names
    t, forced = table.column("t_s").to_pylist(), table.column("forced").to_pylist()
    # Seconds from the start edge: the start edge's own sample first, the end edge's (taken just after
    # its counters were read) last, the sampler's between them. Order, not timing: a loaded machine
    # delays each sample, never reorders them.
    assert t == sorted(t) and forced[0] and forced[-1] and not any(forced[1:-1]) and len(t) > 10
    assert 0.0 <= t[0] <= t[1] and t[-2] <= window.window_s <= t[-1]
    assert table.schema.metadata[b"gpu1_uuid"].decode() == UUID1
    assert set(table.column("gpu0_power_instant_w").to_pylist()) == {300.0}


def test_phase_energy_integrates_the_timeline(monkeypatch, tmp_path):
    session, _ = replay_session(monkeypatch, tmp_path, "instant_only.jsonl")
    window = measure(session, 1.0, 11.0)
    wall0 = window.start_unix_s
    # The window's wall-clock edges are wall-clock readings: 10 trace seconds take 1 s at speed 10.
    assert window.end_unix_s - wall0 == pytest.approx(window.window_s / 10.0, rel=0.02)
    phase = session.phase_energy([(wall0 + 0.1, wall0 + 0.2, "prefill"), (wall0 + 0.2, wall0 + 0.6, "decode")], window)
    session.close()
    assert phase.method == "timeline_integration"
    # 150 W over 0.1 s and 0.4 s of wall time = 1 s and 4 s of trace time at replay speed 10.
    assert phase.prefill_energy_j == pytest.approx(150.0, rel=0.01)
    assert phase.decode_energy_j == pytest.approx(600.0, rel=0.01)
    assert phase.prefill_time_s == pytest.approx(0.1, abs=1e-4)


def test_short_window_is_not_flagged_when_no_energy_was_measured(monkeypatch, tmp_path):
    """No GPU and no RAPL: the window's length cannot make an energy figure noisy, so no warning."""
    import time

    from llem_harness.measurement import MeasurementSession
    from llenergymeasure.domain import MeasurementConfig

    monkeypatch.delenv("LLEM_NVML_REPLAY", raising=False)
    session = MeasurementSession(MeasurementConfig(baseline={"enabled": False}), [], None, tmp_path,
                                 lambda name, **fields: None, powercap_root=tmp_path / "no-powercap")
    session.start_window(lambda: None)
    time.sleep(0.05)
    window = session.stop_window(lambda: None)
    session.close()
    assert window.energy.method == "unavailable" and window.cpu_energy.method == "unavailable"
    assert not any("shorter than" in w for w in window.warnings)
