"""Sampler period statistics and replay playback, on a real thread and a real clock."""
from __future__ import annotations

import statistics
import threading
import time

import pytest

from _measurement_helpers import TRACES
from llem_harness.measurement.devices.replay import ReplayBackend
from llem_harness.measurement.sampler import Sampler


def test_sampler_reports_achieved_period_and_count():
    backend = ReplayBackend.from_file(TRACES / "two_gpu_counter.jsonl", speed=5.0)
    sampler = Sampler(backend, backend.devices(), period_ms=100)
    before = backend.clock()
    sampler.start()
    backend.wait(threading.Event(), 5.0)  # 5 trace seconds = 1 s wall
    sampler.stop()
    after = backend.clock()
    stats = sampler.stats()
    ticks = sampler.snapshot()
    # Statistics are in device (trace) time: ~50 periodic samples of 100 ms. The replay clock runs 5x
    # the wall clock, so a period is 20 ms of wall time and a loaded host's late wake-ups show up as
    # longer gaps (skipped deadlines): the bounds come from the ticks' own times, not from constants.
    assert before <= ticks[0].t_s and ticks[-1].t_s <= after
    assert stats.n_samples == len(ticks) and not any(tk.forced for tk in ticks)
    # Deadline scheduling on a 100 ms grid laid from the thread's start (after `before`): late ticks
    # skip deadlines, never burst to catch up, so the k-th sample is no earlier than before + k periods.
    assert 35 <= stats.n_samples <= (ticks[-1].t_s - before) / 0.1 + 1 + 1e-6 and after - before >= 5.0
    assert stats.requested_period_ms == 100
    # The achieved period is measured from the ticks, not the requested value echoed back.
    gaps_ms = sorted((b.t_s - a.t_s) * 1000 for a, b in zip(ticks, ticks[1:]))
    assert stats.achieved_period_median_ms == pytest.approx(statistics.median(gaps_ms))
    assert stats.max_gap_ms == pytest.approx(gaps_ms[-1]) and gaps_ms[-1] >= stats.achieved_period_median_ms
    assert stats.achieved_period_median_ms >= 90  # bursting to catch up would make most gaps short
    assert {"power_instant_w", "energy_mj", "temperature_c", "throttle_reasons"} <= set(stats.quantities)
    ticks = sampler.snapshot()
    assert all(len(tk.samples) == 2 for tk in ticks)


def test_sampler_refuses_periods_under_50_ms():
    backend = ReplayBackend.from_file(TRACES / "instant_only.jsonl")
    with pytest.raises(ValueError, match="50 ms"):
        Sampler(backend, backend.devices(), period_ms=20)


def test_replay_is_time_driven_and_loops_with_a_rising_counter():
    backend = ReplayBackend.from_file(TRACES / "ci_idle_load.jsonl", speed=100.0)
    dev = backend.devices()[0]
    first = dev.read_energy().energy_mj
    assert dev.sample().power_instant_w == pytest.approx(60.0, rel=0.02)  # idle segment at t ~ 0
    time.sleep(0.15)  # 15 trace seconds: inside the 250 W segment
    assert dev.sample().power_instant_w == 250.0
    time.sleep(0.25)  # past the 30 s end of a looping trace
    assert backend.clock() > 30.0 and not backend.exhausted()
    later = dev.read_energy().energy_mj
    assert later > first + 60 * 10 * 1000 + 250 * 20 * 1000 * 0.99  # one full pass of energy and more


def test_replay_without_loop_reports_exhaustion():
    backend = ReplayBackend.from_file(TRACES / "instant_only.jsonl", speed=1000.0)
    time.sleep(0.05)  # 50 trace seconds > 30 s trace
    assert backend.exhausted()
    assert backend.devices()[0].read_energy().energy_mj is None
