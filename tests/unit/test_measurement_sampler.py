"""Sampler period statistics and replay playback, on a real thread and a real clock."""
from __future__ import annotations

import threading
import time

import pytest

from _measurement_helpers import TRACES
from llem_harness.measurement.devices.replay import ReplayBackend
from llem_harness.measurement.sampler import Sampler


def test_sampler_reports_achieved_period_and_count():
    backend = ReplayBackend.from_file(TRACES / "two_gpu_counter.jsonl", speed=10.0)
    sampler = Sampler(backend, backend.devices(), period_ms=100)
    sampler.start()
    backend.wait(threading.Event(), 5.0)  # 5 trace seconds = 0.5 s wall
    sampler.stop()
    stats = sampler.stats()
    # Statistics are in device (trace) time: ~50 periodic samples of 100 ms.
    assert 35 <= stats.n_samples <= 52
    assert stats.requested_period_ms == 100
    assert 90 <= stats.achieved_period_median_ms <= 130
    assert stats.max_gap_ms >= stats.achieved_period_median_ms
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
