"""Pre-load and loaded idle, which one `adjusted` subtracts, and the temperature gate (NVML replay).

The traces are synthetic, written per test (no GPU here): the energy counter is the exact integral
of the power beside it, so the expected watts are known.
"""
from __future__ import annotations

import pytest

from _measurement_helpers import counter_energy_bounds, measure, measure_bracketed, replay_session, wait_until
from llem_harness.measurement import idle_power as baseline_module
from llem_harness.measurement.devices.replay import write_trace

UUID = "GPU-1d1e1d1e-0000-4000-8000-000000000000"
PERIOD_S = 0.1


def _trace(path, segments, loop=False):
    """segments: [(t_end_s, watts, temp_start_c, temp_end_c)], one GPU, counter = integral of power."""
    rows, energy_mj, t, start = [], 1_000_000.0, 0.0, 0.0
    for t_end, watts, temp0, temp1 in segments:
        while t < t_end - 1e-9:
            temp = temp0 + (temp1 - temp0) * (t - start) / (t_end - start)
            rows.append({"t_s": round(t, 3), "gpu": 0, "energy_mj": int(energy_mj), "power_instant_w": watts,
                         "power_avg_w": watts, "temperature_c": round(temp), "throttle_reasons": 0})
            energy_mj += watts * PERIOD_S * 1000
            t += PERIOD_S
        start = t_end
    header = {"source": "synthetic", "gpu_model": "synthetic", "loop": loop,
              "gpus": [{"index": 0, "uuid": UUID, "name": "Synthetic GPU (no real device)", "processes": []}]}
    write_trace(path, header, rows)
    return path.name


def test_loaded_idle_is_measured_after_load_and_is_what_adjusted_subtracts(monkeypatch, tmp_path):
    # 0-5 s pre-load idle 60 W at 40 °C; 5-8 s loading 150 W warming to 47 °C; 8-12 s loaded idle
    # 80 W cooling 47 -> 43 °C; 12-20 s loaded idle steady at 43 °C; 20-40 s work at 300 W.
    name = _trace(tmp_path / "load.jsonl", [(5, 60.0, 40, 40), (8, 150.0, 40, 47), (12, 80.0, 47, 43),
                                            (20, 80.0, 43, 43), (40, 300.0, 43, 50)])
    monkeypatch.setattr("_measurement_helpers.TRACES", tmp_path)
    session, _ = replay_session(monkeypatch, tmp_path, name, baseline={"enabled": True, "duration_s": 2.0})
    pre = session.measure_pre_load_idle()
    # The replayed counter steps every 0.1 s: over a 2 s baseline one step is 5 % of the delta.
    assert pre.kind == "pre_load" and pre.power_mean_w == pytest.approx(60.0, rel=0.055)
    assert pre.temperature_settled is True and pre.temperature_drift_c == 0.0
    # Settled at once: no second 2 s attempt (what precedes and follows the one attempt is overhead
    # that a loaded host stretches, 0.1 trace s per 10 ms of wall time).
    assert pre.temperature_wait_s < 2.0
    wait_until(session, 8.2)  # the model has just loaded: the GPU is still cooling from the load
    before = session.backend.clock()
    loaded = session.measure_loaded_idle()
    assert loaded.kind == "loaded" and loaded.method == "counter_delta"
    assert loaded.power_mean_w == pytest.approx(80.0, rel=0.055)
    assert loaded.power_std_w is not None and loaded.n_samples >= 10 and loaded.idle_temperature_c == 43.0
    # The gate re-measured while the range exceeded 1 °C (8.2-10.2 s, 10.2-12.2 s), then accepted.
    # Bounds from the trace, not from how late a loaded host starts each attempt: the trace's rows
    # (0.1 s apart) read 45 °C up to 10.4-10.5 s and 44 °C after, 43 °C from 12 s, so an attempt whose
    # first sample comes before then is rejected and one after is accepted. The accepted attempt starts
    # `wait` after the call (0.1 s of slack: the clock reads around the call's first one), and the
    # rejected one before it started before 10.6 s and lasted its 2 s (plus 1 trace s = 100 ms of wall
    # time to end it and start the next).
    assert loaded.temperature_settled is True and loaded.temperature_drift_c <= 1.0
    assert loaded.temperature_wait_s >= 2.0
    assert 10.4 - 0.1 <= before + loaded.temperature_wait_s < 10.6 + 2.0 + 1.0
    window, span_s = measure_bracketed(session, 21.0, 29.0)
    session.close()
    energy = window.energy
    assert energy.baseline_subtracted == "loaded_idle" and energy.baseline_power_w == loaded.power_mean_w
    assert energy.gpu_energy_adjusted_j == pytest.approx(energy.gpu_energy_raw_j - loaded.power_mean_w
                                                         * window.window_s, rel=1e-12)
    # 300 W less the loaded idle's 80 W, over the span the edges' counters were read over (this trace's
    # counter steps every 0.1 s and has no ripple).
    low_j, high_j = counter_energy_bounds(300.0, span_s, step_s=PERIOD_S, ripple=0.0)
    idle_j = loaded.power_mean_w * window.window_s
    assert low_j - idle_j <= energy.gpu_energy_adjusted_j <= high_j - idle_j


def test_pre_load_idle_is_subtracted_when_no_loaded_idle_was_measured(monkeypatch, tmp_path):
    name = _trace(tmp_path / "flat.jsonl", [(5, 60.0, 40, 40), (20, 300.0, 40, 40)])
    monkeypatch.setattr("_measurement_helpers.TRACES", tmp_path)
    session, _ = replay_session(monkeypatch, tmp_path, name, baseline={"enabled": True, "duration_s": 2.0})
    pre = session.measure_pre_load_idle()
    window = measure(session, 6.0, 12.0)
    session.close()
    assert window.energy.baseline_subtracted == "pre_load_idle"
    assert window.energy.baseline_power_w == pre.power_mean_w


def test_temperature_gate_is_bounded_and_flags_a_baseline_that_never_settles(monkeypatch, tmp_path):
    name = _trace(tmp_path / "cooling.jsonl", [(30, 70.0, 80, 50)])  # cools 1 °C/s throughout
    monkeypatch.setattr("_measurement_helpers.TRACES", tmp_path)
    session, events = replay_session(monkeypatch, tmp_path, name, baseline={"enabled": True, "duration_s": 2.0,
                                                                            "temperature_max_wait_s": 7.0})
    pre = session.measure_pre_load_idle()
    session.close()
    assert pre.temperature_settled is False and pre.temperature_drift_c >= 2.0
    # Never shorter than asked; a loaded host ends it late (the replay runs 10x the wall clock), a second
    # span is a defect.
    assert 2.0 - 1e-9 <= pre.duration_s < 4.0
    # Attempts of 2 s while the next one still fits in 7 s: 0-2, 2-4, 4-6 on a quiet host, the wait is
    # the first two. Structurally (a loaded host starts each attempt late): at least one attempt was
    # measured again, the gate gave up only when one more would not fit in the 7 s, and started none
    # after them.
    assert pre.temperature_wait_s >= 2.0
    # (The gate's own check reads the clock just after the wait's: 0.1 trace s of slack between them.)
    assert pre.temperature_wait_s + pre.duration_s > 7.0 - 2.0 - 0.1 and pre.temperature_wait_s < 7.0
    # kept, flagged — not discarded; the counter is read at edges a loaded host delays (as above: 5.5 %)
    assert pre.power_mean_w == pytest.approx(70.0, rel=0.055)
    assert any("temperature still moving" in w for w in session.warnings())
    assert any(name == "warning" and "temperature still moving" in f["message"] for name, f in events)


def test_temperature_gate_bound_of_zero_measures_once(monkeypatch, tmp_path):
    """A short lease bounds the gate (`temperature_max_wait_s`): 0 keeps the first baseline, flagged."""
    name = _trace(tmp_path / "cooling.jsonl", [(30, 70.0, 80, 50)])
    monkeypatch.setattr("_measurement_helpers.TRACES", tmp_path)
    session, _ = replay_session(monkeypatch, tmp_path, name, baseline={"enabled": True, "duration_s": 2.0,
                                                                       "temperature_max_wait_s": 0})
    pre = session.measure_pre_load_idle()
    session.close()
    assert pre.temperature_settled is False and pre.temperature_wait_s < 2.0  # no second 2 s attempt
    assert baseline_module.TEMPERATURE_MAX_WAIT_S == 60.0   # the default bound, unchanged


def test_loaded_idle_without_gpu_is_unavailable_and_disabled_is_none(monkeypatch, tmp_path):
    from llem_harness.measurement import MeasurementSession
    from llenergymeasure.domain import MeasurementConfig

    monkeypatch.delenv("LLEM_NVML_REPLAY", raising=False)
    session = MeasurementSession(MeasurementConfig(), None, None, tmp_path, lambda *a, **k: None)
    if session.backend is not None:
        session.close()
        pytest.skip("a GPU is visible here: this test is about machines without one")
    loaded = session.measure_loaded_idle()
    assert loaded.kind == "loaded" and loaded.method == "unavailable" and loaded.unavailable_reason
    off = MeasurementSession(MeasurementConfig(baseline={"enabled": False}), None, None, tmp_path,
                             lambda *a, **k: None)
    assert off.measure_loaded_idle() is None
