"""Open-loop arrival process: seeded gamma arrivals; burstiness 1 is a Poisson process.

As `vllm bench serve --burstiness`: inter-arrival gaps follow a gamma distribution of shape
`burstiness` and mean 1/rate, so the offered rate is the same whatever the burstiness; below 1 the
arrivals come in bursts, above 1 more evenly. A pure function so the same seed always gives the
same schedule (repetitions across cycles send requests at the same offsets) and so it can be tested
without a server.
"""
from __future__ import annotations

import random


def send_offsets_s(n_requests: int, rate_per_s: float, seed: int, burstiness: float = 1.0) -> list[float]:
    """Send times in seconds after the start: the first at 0, then gaps of mean 1/rate.

    The first request goes at 0 (not after a gap) so a run's clock starts with traffic, not idle.
    """
    if n_requests < 0:
        raise ValueError("n_requests must be >= 0")
    if rate_per_s <= 0:
        raise ValueError("rate_per_s must be > 0")
    if burstiness <= 0:
        raise ValueError("burstiness must be > 0")
    rng = random.Random(seed)
    offsets: list[float] = []
    t = 0.0
    for i in range(n_requests):
        if i:  # exponential (the Poisson schedule of earlier versions) is gamma of shape 1
            t += rng.expovariate(rate_per_s) if burstiness == 1.0 else \
                rng.gammavariate(burstiness, 1.0 / (rate_per_s * burstiness))
        offsets.append(t)
    return offsets


def poisson_send_offsets_s(n_requests: int, rate_per_s: float, seed: int) -> list[float]:
    """Poisson arrivals (burstiness 1)."""
    return send_offsets_s(n_requests, rate_per_s, seed)
