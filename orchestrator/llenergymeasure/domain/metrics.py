"""Derived metrics: latency distributions, throughput and energy normalisations.

Every name carries its unit and its denominator. The same function computes them in the
harness and wherever the host recomputes, so the result, summary, CLI and plots agree.
"""
from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from .base import OpenModel
from .measurement import EnergyResult

WH_PER_J = 1.0 / 3600.0


class RequestRecord(OpenModel):
    """One request as measured: real token counts (EOS stops count) and its timings.

    Timings are relative to when the request was submitted: for static batches, the start of
    its batch (every request shares the batch's prefill, so TTFT is the time until the batch's
    first generated token); for engines that take requests one at a time, the request's own
    start. `e2e_latency_s` ends when the request's last token was ready. Latencies an engine
    does not report are null, with `timing_unavailable_reason`.
    """

    index: int
    batch_index: int
    input_tokens: int
    output_tokens: int
    ttft_s: float | None = None
    e2e_latency_s: float | None = None
    tpot_s: float | None = Field(None, description="(e2e - ttft) / (output_tokens - 1); null for 1 token")
    finished_by: Literal["eos", "length", "unknown"] = "unknown"
    timing_unavailable_reason: str | None = None


class Distribution(OpenModel):
    n: int = 0
    mean: float | None = None
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None


class FlopsEstimate(OpenModel):
    """An *estimate* from the model config (see README: FLOPs); not a measurement."""

    method: Literal["estimate_from_config", "unavailable"] = "unavailable"
    unavailable_reason: str | None = None
    prefill_flops: float | None = None
    decode_flops: float | None = None
    total_flops: float | None = None
    flops_per_output_token: float | None = None
    mlp_kind: Literal["gated", "standard"] | None = Field(None, description="MLP shape the estimate assumed")
    parameters_estimate: int | None = Field(None, description="weights counted from the config (estimate)")


class MemoryStats(OpenModel):
    weights_mb: float | None = None
    peak_allocated_mb: float | None = Field(None, description="peak device memory allocated in the window")
    unavailable_reason: str | None = None


class Metrics(OpenModel):
    """Per-run figures. Latencies in seconds; energies in joules unless the name says Wh."""

    ttft_s: Distribution = Field(default_factory=Distribution)
    itl_s: Distribution = Field(default_factory=Distribution, description="inter-token latency, all gaps")
    tpot_s: Distribution = Field(default_factory=Distribution, description="time per output token, per request")
    e2e_latency_s: Distribution = Field(default_factory=Distribution)
    output_tokens_per_s: float | None = None
    total_tokens_per_s: float | None = Field(None, description="(input + output) tokens / window_s")
    requests_per_s: float | None = None
    energy_per_output_token_j: float | None = None
    energy_per_output_token_adjusted_j: float | None = None
    energy_per_request_j: float | None = None
    energy_per_request_adjusted_j: float | None = None
    energy_wh_per_1000_requests: float | None = None
    energy_wh_per_1000_requests_adjusted: float | None = None
    flops: FlopsEstimate = Field(default_factory=FlopsEstimate)
    memory: MemoryStats = Field(default_factory=MemoryStats)


def distribution(values: list[float]) -> Distribution:
    """Mean and nearest-rank-interpolated percentiles (numpy's default 'linear' definition)."""
    clean = sorted(v for v in values if v is not None and not math.isnan(v))
    if not clean:
        return Distribution()

    def pct(q: float) -> float:
        pos = (len(clean) - 1) * q
        lo = math.floor(pos)
        hi = min(lo + 1, len(clean) - 1)
        return clean[lo] + (clean[hi] - clean[lo]) * (pos - lo)

    return Distribution(n=len(clean), mean=sum(clean) / len(clean), p50=pct(0.5), p90=pct(0.9), p99=pct(0.99))


def _per(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def compute_metrics(requests: list[RequestRecord], itl_values_s: list[float], window_s: float,
                    energy: EnergyResult, flops: FlopsEstimate | None = None,
                    memory: MemoryStats | None = None) -> Metrics:
    """Throughput and energy normalisations with explicit denominators."""
    n_requests = len(requests)
    output_tokens = sum(r.output_tokens for r in requests)
    input_tokens = sum(r.input_tokens for r in requests)
    raw, adjusted = energy.gpu_energy_raw_j, energy.gpu_energy_adjusted_j
    return Metrics(
        ttft_s=distribution([r.ttft_s for r in requests if r.ttft_s is not None]),
        itl_s=distribution(itl_values_s),
        tpot_s=distribution([r.tpot_s for r in requests if r.tpot_s is not None]),
        e2e_latency_s=distribution([r.e2e_latency_s for r in requests if r.e2e_latency_s is not None]),
        output_tokens_per_s=_per(output_tokens, window_s),
        total_tokens_per_s=_per(input_tokens + output_tokens, window_s),
        requests_per_s=_per(n_requests, window_s),
        energy_per_output_token_j=_per(raw, output_tokens),
        energy_per_output_token_adjusted_j=_per(adjusted, output_tokens),
        energy_per_request_j=_per(raw, n_requests),
        energy_per_request_adjusted_j=_per(adjusted, n_requests),
        energy_wh_per_1000_requests=None if raw is None else raw * WH_PER_J * 1000.0 / n_requests,
        energy_wh_per_1000_requests_adjusted=None if adjusted is None else adjusted * WH_PER_J * 1000.0 / n_requests,
        flops=flops or FlopsEstimate(unavailable_reason="not computed"),
        memory=memory or MemoryStats(unavailable_reason="not reported"),
    )
