"""Open-loop arrival process: seeded Poisson arrivals (exponential inter-arrival gaps).

A pure function so the same seed always gives the same schedule (repetitions across cycles send
requests at the same offsets) and so it can be tested without a server.
"""
from __future__ import annotations

import random


def poisson_send_offsets_s(n_requests: int, rate_per_s: float, seed: int) -> list[float]:
    """Send times in seconds after the start: the first at 0, then exponential gaps of mean 1/rate.

    The first request goes at 0 (not after a gap) so a run's clock starts with traffic, not idle.
    """
    if n_requests < 0:
        raise ValueError("n_requests must be >= 0")
    if rate_per_s <= 0:
        raise ValueError("rate_per_s must be > 0")
    rng = random.Random(seed)
    offsets: list[float] = []
    t = 0.0
    for i in range(n_requests):
        if i:
            t += rng.expovariate(rate_per_s)
        offsets.append(t)
    return offsets
