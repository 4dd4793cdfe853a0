"""Serving mode's pure parts: seeded Poisson arrivals and the steady-state window on synthetic traces."""
from __future__ import annotations

import statistics

import pytest

from llem_harness.serving.arrivals import poisson_send_offsets_s
from llem_harness.serving.window import WindowTracker, window_from_trace


def test_poisson_arrivals_are_seeded_and_have_the_asked_rate():
    a = poisson_send_offsets_s(2000, rate_per_s=5.0, seed=7)
    assert a == poisson_send_offsets_s(2000, rate_per_s=5.0, seed=7)
    assert a != poisson_send_offsets_s(2000, rate_per_s=5.0, seed=8)
    assert a[0] == 0.0 and all(b > x for x, b in zip(a, a[1:]))
    gaps = [b - x for x, b in zip(a, a[1:])]
    assert statistics.mean(gaps) == pytest.approx(0.2, rel=0.08)      # mean gap 1/rate
    assert statistics.stdev(gaps) == pytest.approx(0.2, rel=0.12)     # exponential: sd == mean


@pytest.mark.parametrize("n, rate", [(-1, 1.0), (3, 0.0)])
def test_poisson_arrivals_refuse_bad_arguments(n, rate):
    with pytest.raises(ValueError):
        poisson_send_offsets_s(n, rate, 0)


def test_closed_loop_window_opens_at_the_first_refill_and_closes_at_the_drain():
    # C=2, 4 requests: sends at 0 and 1 (the first wave, cold prefills); r0 ends at 3 -> r2 sent at 3:
    # the first refill opens the window; r1 ends at 4 -> r3 (last) sent at 4; r2 ends at 6: nothing
    # left to send and 1 < 2 -> drain.
    sends = [0.0, 1.0, 3.0, 4.0]
    dones = [3.0, 4.0, 6.0, 7.0]
    assert window_from_trace(sends, dones, target_concurrency=2) == (3.0, 6.0)


def test_closed_loop_completion_then_refill_at_the_same_instant_is_not_a_drain():
    sends = [0.0, 0.0, 2.0, 2.0]
    dones = [2.0, 2.0, 5.0, 5.5]
    assert window_from_trace(sends, dones, target_concurrency=2) == (2.0, 5.0)


def test_closed_loop_never_reaching_the_target_has_no_window():
    assert window_from_trace([0.0, 2.0], [1.0, 3.0], target_concurrency=2) == (None, None)


def test_open_loop_window_runs_from_the_ramp_send_to_the_last_send():
    sends = [0.0, 0.5, 0.9, 1.7, 2.0, 2.6]
    dones = [0.4, 1.5, 2.2, 2.5, 3.9, 4.0]
    assert window_from_trace(sends, dones, target_concurrency=None, ramp_sends=2) == (0.5, 2.6)


def test_failed_request_is_done_at_its_send_and_the_window_still_closes():
    sends = [0.0, 0.0, 1.0, 2.0]
    dones = [1.0, 2.0, None, 4.0]   # r2 failed immediately; r3 is the last send
    start, end = window_from_trace(sends, dones, target_concurrency=2)
    assert start == 1.0 and end == 4.0


def test_duration_cap_closes_arrivals_early():
    tracker = WindowTracker(target_concurrency=2, n_total=100)
    assert tracker.on_send(0.0) is None
    assert tracker.on_send(0.1) is None          # the first wave: not yet steady
    assert tracker.on_done(1.0) is None          # more to send: a slot frees, not a drain
    assert tracker.on_send(1.0) == "start"       # the first refill
    assert tracker.close_arrivals(1.5) is None   # 2 still in flight
    assert tracker.on_done(2.0) == "end"
    assert (tracker.start_s, tracker.end_s) == (1.0, 2.0)


def test_open_loop_cap_ends_the_window_when_arrivals_stop():
    tracker = WindowTracker(target_concurrency=None, ramp_sends=1, n_total=10)
    assert tracker.on_send(0.0) == "start"
    tracker.on_send(0.3)
    assert tracker.close_arrivals(0.8) == "end"
    assert tracker.end_s == 0.8
