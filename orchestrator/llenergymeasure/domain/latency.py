"""Per-request latency: the one definition of TTFT, e2e latency, TPOT and ITL for every engine and mode.

Why one module: offline batches and serving traces used to compute these figures in two places
with different reference points (batch start, the request's own start, engine arrival). Every
latency now runs from the same reference, `LATENCY_REFERENCE`, written into each result:

- offline: the moment the harness handed the request to the engine (a static batch hands all its
  requests at once, so its members share TTFT because they physically share one prefill; an engine
  that takes requests one at a time hands each when it starts it; vLLM/TensorRT-LLM record the
  arrival of each request in the engine);
- serving: the moment the load generator sent the HTTP request.

TTFT ends at the first output token; e2e at the last output token (or, without per-token times, at
the complete response); TPOT = (e2e - TTFT) / (output tokens - 1); ITL = every gap between
consecutive token arrivals. docs/metrics.md defines each figure with its unit.
"""
from __future__ import annotations

from dataclasses import dataclass, field

LATENCY_REFERENCE = "submission"
LATENCY_REFERENCE_DEFINITION = {
    "offline": "from when the harness handed the request to the engine (a static batch's requests are handed "
               "together and share one prefill)",
    "serving": "from when the load generator sent the HTTP request",
}


@dataclass
class RequestLatency:
    """Latencies of one request in seconds; None where the engine gave no time to measure it."""

    ttft_s: float | None = None
    e2e_latency_s: float | None = None
    tpot_s: float | None = None
    itl_s: list[float] = field(default_factory=list)


def request_latency(submitted_s: float, output_tokens: int, token_times_s: list[float] | tuple = (),
                    first_token_s: float | None = None, last_token_s: float | None = None,
                    done_s: float | None = None) -> RequestLatency:
    """Latencies of one request from its submission time (same clock as the other times).

    `token_times_s`: the arrival of every output token (streaming engines); otherwise
    `first_token_s`/`last_token_s` (engines that report only those), or `done_s` alone (a
    non-streamed response: e2e only).
    """
    times = list(token_times_s)
    if times:
        first_token_s, last_token_s = times[0], times[-1]
    ttft = None if first_token_s is None else first_token_s - submitted_s
    end_s = last_token_s if last_token_s is not None else done_s
    e2e = None if end_s is None else end_s - submitted_s
    tpot = None
    if ttft is not None and e2e is not None and output_tokens > 1:
        tpot = (e2e - ttft) / (output_tokens - 1)
    return RequestLatency(ttft_s=ttft, e2e_latency_s=e2e, tpot_s=tpot,
                          itl_s=[b - a for a, b in zip(times, times[1:])])
