"""Bunched streams: responses whose tokens all arrived in one socket read.

A streamed response is read with one arrival time per socket read (http_stream.py), so a response
whose token events all share one time came off the socket whole: the server (or the client) was
stalled while it was generated and its TTFT, TPOT and ITL describe the stall, not the engine (a
server scheduled apart from its client on a busy host did this to most responses: process.py). A
few such responses can be chance (a very fast server, short answers); many are a warning in the run.
"""
from __future__ import annotations

from .loadgen import RequestTrace

MIN_EVENTS = 3          # fewer token events can share a read by chance (a token and its closing chunk)
WARN_SHARE = 0.10       # of the streamed ok responses with MIN_EVENTS or more


def bunched(trace: RequestTrace) -> bool:
    times = trace.token_times_s
    return trace.ok and len(times) >= MIN_EVENTS and times[0] == times[-1]


def bunched_streams(traces: list[RequestTrace]) -> tuple[int, str | None]:
    """(responses that arrived whole, a warning when they are at least WARN_SHARE of those that could)."""
    eligible = [t for t in traces if t.ok and len(t.token_times_s) >= MIN_EVENTS]
    n = sum(bunched(t) for t in eligible)
    if not eligible or n / len(eligible) < WARN_SHARE:
        return n, None
    return n, (f"{n} of {len(eligible)} streamed responses arrived whole in one socket read (every token at "
               "one time): the server or the load generator was stalled, and TTFT/TPOT/ITL describe the stall; "
               "see docs/serving.md#bunched-streams")
