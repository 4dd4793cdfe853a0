"""Idle baseline: measurement, subtraction from the window energy, and reuse within a study."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from _measurement_helpers import counter_energy_bounds, measure, measure_bracketed, replay_session
from llem_harness.measurement.idle_power import try_reuse
from llenergymeasure.domain import BaselineResult

UUIDS = ["GPU-5e5e5e5e-0000-4000-8000-000000000000", "GPU-5e5e5e5e-0000-4000-8000-000000000001"]
BASELINE_ON = {"enabled": True, "duration_s": 3.0}


def test_baseline_measured_then_subtracted_beside_raw(monkeypatch, tmp_path):
    session, _ = replay_session(monkeypatch, tmp_path, "two_gpu_counter.jsonl", baseline=BASELINE_ON)
    before = session.backend.clock()
    base = session.measure_pre_load_idle()  # trace seconds 0-3: idle, 60 W + 50 W with a 1 % ripple
    after = session.backend.clock()
    assert base.method == "counter_delta"
    assert base.fresh is True and base.age_s == 0.0
    assert base.power_mean_w == pytest.approx(110.0, rel=0.02)
    assert 0 < base.power_std_w < 3.0
    # Periodic samples only (the edges' own are not idle statistics): deadline scheduling takes at most
    # one per 100 ms period of the span, plus the one at its start; a late wake-up skips, never bursts.
    assert 20 <= base.n_samples <= base.duration_s / 0.1 + 1
    # The span between the edges: never shorter than asked, and inside the clock reads around the call.
    # How late a loaded host ends it is not a property of the baseline (the replay clock runs with the
    # wall clock, 10x faster: 60 ms of lateness is 0.6 trace s), so only a second span is excluded.
    assert 3.0 - 1e-9 <= base.duration_s <= after - before and base.duration_s < 2 * 3.0
    assert sorted(base.gpu_uuids) == UUIDS
    assert base.idle_temperature_c == 40.0
    assert set(base.idle_temperature_per_gpu_c) == set(UUIDS)

    window, span_s = measure_bracketed(session, 6.0, 16.0)
    session.close()
    energy = window.energy
    # Adjusted = raw - baseline_power_w * window_s, reported beside raw (never instead of it). Raw is
    # 500 W over the span the edges' counters were read over (clock reads around each edge: a loaded
    # host preempting an edge between its counters and its clock cannot fail this).
    low_j, high_j = counter_energy_bounds(500.0, span_s)
    assert low_j <= energy.gpu_energy_raw_j <= high_j
    assert energy.gpu_energy_adjusted_j == pytest.approx(
        energy.gpu_energy_raw_j - base.power_mean_w * window.window_s, rel=1e-12)
    idle_j = base.power_mean_w * window.window_s  # ~110 W: 390 W of 500 W is left
    assert low_j - idle_j <= energy.gpu_energy_adjusted_j <= high_j - idle_j
    assert energy.baseline_power_w == base.power_mean_w


def test_baseline_from_instant_samples_without_counter(monkeypatch, tmp_path):
    session, _ = replay_session(monkeypatch, tmp_path, "instant_only.jsonl", baseline=BASELINE_ON)
    base = session.measure_pre_load_idle()
    session.close()
    assert base.method == "instant_power_samples"
    assert base.power_mean_w == pytest.approx(150.0)
    assert base.power_std_w == pytest.approx(0.0)


def _earlier(age_s: float, uuids=UUIDS) -> BaselineResult:
    when = datetime.now(timezone.utc) - timedelta(seconds=age_s)
    return BaselineResult(power_mean_w=123.0, power_std_w=1.0, n_samples=30, duration_s=3.0, method="counter_delta",
                          gpu_uuids=list(uuids), measured_at=when.isoformat(timespec="seconds"))


def test_try_reuse_fresh_reused_and_stale():
    reused, why = try_reuse(_earlier(60), list(reversed(UUIDS)), ttl_s=900)
    assert reused is not None and reused.fresh is False and reused.age_s == pytest.approx(60, abs=2)
    assert reused.power_mean_w == 123.0 and "reused" in why
    stale, why = try_reuse(_earlier(1000), UUIDS, ttl_s=900)
    assert stale is None and "stale" in why
    other, why = try_reuse(_earlier(60, UUIDS[:1]), UUIDS, ttl_s=900)
    assert other is None and "other GPUs" in why
    disabled, why = try_reuse(_earlier(1), UUIDS, ttl_s=0)
    assert disabled is None and "disabled" in why
    unmeasured, _ = try_reuse(BaselineResult(method="unavailable", gpu_uuids=UUIDS), UUIDS, ttl_s=900)
    assert unmeasured is None


def test_session_reuses_a_young_baseline_and_remeasures_a_stale_one(monkeypatch, tmp_path):
    session, _ = replay_session(monkeypatch, tmp_path, "two_gpu_counter.jsonl", baseline=BASELINE_ON,
                                reuse=_earlier(120))
    reused = session.measure_pre_load_idle()
    window = measure(session, 6.0, 9.0)
    session.close()
    assert reused.fresh is False and reused.age_s == pytest.approx(120, abs=2) and reused.power_mean_w == 123.0
    assert window.energy.gpu_energy_adjusted_j == pytest.approx(
        window.energy.gpu_energy_raw_j - 123.0 * window.window_s)

    session, _ = replay_session(monkeypatch, tmp_path, "two_gpu_counter.jsonl",
                                baseline={**BASELINE_ON, "reuse_ttl_s": 60}, reuse=_earlier(120))
    fresh = session.measure_pre_load_idle()
    session.close()
    assert fresh.fresh is True and fresh.power_mean_w == pytest.approx(110.0, rel=0.02)


def test_baseline_disabled_returns_none(monkeypatch, tmp_path):
    session, _ = replay_session(monkeypatch, tmp_path, "two_gpu_counter.jsonl")
    assert session.measure_pre_load_idle() is None
    session.close()
