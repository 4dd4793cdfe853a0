"""energy.cross_check: the counter's window energy beside the trapezoid of sampled instant power.

Replayed traces (tests/fixtures/traces, synthetic): a sound counter agrees within the tolerance its
sampling explains; `counter_broken.jsonl`, whose counter advances at 0.6x the power written beside
it, is flagged with a warning; a GPU without a counter has no comparison and says why.
"""
from __future__ import annotations

import pytest

from llem_harness.measurement.cross_check import BASE_TOLERANCE, published_sensor
from tests.unit._measurement_helpers import counter_energy_bounds, measure, measure_bracketed, replay_session


def test_a_sound_counter_agrees_with_the_integrated_power(monkeypatch, tmp_path):
    session, events = replay_session(monkeypatch, tmp_path, "two_gpu_counter.jsonl")
    window, span_s = measure_bracketed(session, 6.0, 16.0)
    session.close()
    check = window.energy.cross_check
    assert check.method == "counter_vs_instant_trapezoid" and check.flagged is False
    assert check.ratio == pytest.approx(1.0, abs=0.02) and check.base_tolerance == BASE_TOLERANCE
    assert [g.gpu_index for g in check.per_gpu] == [0, 1]
    for g, watts in zip(check.per_gpu, (300.0, 200.0)):
        # Over the span the edges' counters were read over (clock reads around each edge: a loaded
        # host preempting an edge between its counters and its clock cannot fail this).
        low_j, high_j = counter_energy_bounds(watts, span_s)
        assert low_j <= g.counter_energy_j <= high_j
        assert g.ratio == pytest.approx(1.0, abs=0.02) and g.flagged is False
        assert g.n_samples >= 50 and g.sample_period_ms == pytest.approx(100.0, rel=0.3)
        # 10 s at ~100 ms: the sampling explains 2 x peak x the sampling period of the counter's energy on
        # top of the base (about 0.02); the period is the one achieved, which a loaded host lengthens.
        longest_s = max(g.sample_period_ms, g.counter_change_interval_ms or 0.0,
                        g.power_change_interval_ms or 0.0) / 1000.0
        assert BASE_TOLERANCE < g.tolerance <= BASE_TOLERANCE + 2 * watts * longest_s / low_j + 1e-9
        assert g.power_update_period_ms is None and g.sensor_averaging_share is None  # synthetic GPU: not known
    assert not any("disagree" in w for w in window.warnings)


def test_a_broken_counter_is_flagged(monkeypatch, tmp_path):
    session, events = replay_session(monkeypatch, tmp_path, "counter_broken.jsonl")
    window = measure(session, 1.0, 9.0)
    session.close()
    assert window.energy.method == "counter"     # the window energy itself still comes from the counter
    check = window.energy.cross_check
    (gpu,) = check.per_gpu
    assert gpu.ratio == pytest.approx(1 / 0.6, rel=0.03) and gpu.flagged is True and check.flagged is True
    warning = next(w for w in window.warnings if "disagree" in w)
    assert "GPU 0" in warning and "energy.cross_check" in warning
    assert any(name == "warning" and "disagree" in fields["message"] for name, fields in events)


def test_no_counter_no_comparison_with_the_reason(monkeypatch, tmp_path):
    session, _ = replay_session(monkeypatch, tmp_path, "instant_only.jsonl")
    window = measure(session, 1.0, 5.0)
    session.close()
    assert window.energy.method == "integrated_instant_power"
    check = window.energy.cross_check
    assert check.method == "unavailable" and check.flagged is None and check.ratio is None
    assert "no counter energy" in check.unavailable_reason and "not supported" in check.unavailable_reason
    assert check.per_gpu[0].instant_integral_j == pytest.approx(150.0 * window.window_s, rel=0.02)


def test_a_short_window_widens_the_tolerance(monkeypatch, tmp_path):
    """Half a second sampled every 100 ms: the edges alone can misplace a fifth of the energy or more."""
    session, _ = replay_session(monkeypatch, tmp_path, "two_gpu_counter.jsonl")
    window = measure(session, 8.0, 8.5)
    session.close()
    for g in window.energy.cross_check.per_gpu:
        assert g.tolerance > BASE_TOLERANCE + 0.2 and g.flagged is False


def test_a_window_shorter_than_one_sampling_period_is_not_judged(monkeypatch, tmp_path):
    """Only the edges' own samples: no period bounds what the sampling misplaces. Judged against the base
    tolerance alone, a sound counter was flagged ("one of the two readings is wrong") on such windows."""
    session, _ = replay_session(monkeypatch, tmp_path, "two_gpu_counter.jsonl", sampling_period_ms=500)
    window = measure(session, 8.0, 8.1)
    session.close()
    check = window.energy.cross_check
    assert check.method == "unavailable" and check.flagged is None
    for g in check.per_gpu:
        assert g.flagged is None and g.ratio is None and g.counter_energy_j > 0
        assert "none of them periodic" in g.unavailable_reason
    assert not any("disagree" in w for w in window.warnings)


def test_published_sensor_figures_only_where_known():
    period, share, source = published_sensor("NVIDIA H100 80GB HBM3")
    assert (period, share) == (100.0, 0.25) and "2312.02741" in source
    assert published_sensor("NVIDIA A100-SXM4-40GB")[1] == 0.25
    assert published_sensor("NVIDIA H200") == (None, None, None)   # not measured by the paper: not guessed
    assert published_sensor(None) == (None, None, None)
