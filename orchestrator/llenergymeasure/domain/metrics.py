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

    Every latency runs from the request's submission (domain/latency.py, recorded in the result as
    `latency_reference`): offline, when the harness handed it to the engine (a static batch hands
    all its requests at once and they share one prefill); serving, when the HTTP request was sent.
    `e2e_latency_s` ends when the request's last token was ready. Latencies an engine does not
    report are null, with `timing_unavailable_reason`.
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
    cached_prompt_tokens: int | None = Field(
        None, description="prompt tokens the engine served from a cache; null where the engine does not say")
    prompt_repeat: int = Field(0, ge=0, description="times this prompt was already sent in the measured set")
    exceeds_max_output_tokens: bool = Field(False, description="output_tokens > max_output_tokens")
    queue_s: float | None = Field(
        None, description="submission to the engine's first scheduling of the request (waiting behind a full batch); "
        "null where the engine does not report when it scheduled the request")


class PromptCache(OpenModel):
    """Whether measured requests were served from a prompt (prefix) cache, and by how many tokens.

    `prefix_caching` is what the study asked for; the counts are what the engine reported. A
    request counted here reused a prompt prefix the engine had already computed, so its prefill
    (and TTFT) is shorter than a cold one.
    """

    prefix_caching: bool = False
    source: str | None = Field(None, description="where the cached-token counts come from")
    requests_reporting: int = Field(0, description="measured requests whose cached-token count is known")
    requests_with_cached_tokens: int | None = None
    cached_prompt_tokens_total: int | None = None
    repeated_prompt_requests: int = Field(0, description="measured requests whose prompt was sent before")
    unavailable_reason: str | None = None


def prompt_cache(requests: list[RequestRecord], prefix_caching: bool, source: str | None,
                 unavailable_reason: str | None = None) -> tuple[PromptCache, list[str]]:
    """Aggregate the per-request cached counts; a warning when a cache the study did not ask for was hit."""
    known = [r.cached_prompt_tokens for r in requests if r.cached_prompt_tokens is not None]
    report = PromptCache(
        prefix_caching=prefix_caching, source=source if known else None, requests_reporting=len(known),
        requests_with_cached_tokens=sum(1 for n in known if n > 0) if known else None,
        cached_prompt_tokens_total=sum(known) if known else None,
        repeated_prompt_requests=sum(1 for r in requests if r.prompt_repeat > 0),
        unavailable_reason=None if known else (unavailable_reason or "the engine reports no cached prompt tokens"))
    warnings = []
    if not prefix_caching and report.requests_with_cached_tokens:
        warnings.append(f"{report.requests_with_cached_tokens} measured request(s) were served {report.cached_prompt_tokens_total} "
                        "prompt tokens from a prefix cache the study did not ask for (prefix_caching: false): "
                        "their prefill energy and TTFT are understated")
    if report.repeated_prompt_requests:
        warnings.append(f"{report.repeated_prompt_requests} measured request(s) repeat a prompt already sent "
                        "(more requests than prompts): a prefix cache may serve them")
    return report, warnings


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


def wh_per_1000_requests(energy_j: float | None, n_requests: int) -> float | None:
    """Wh per 1000 requests: J x (1 Wh / 3600 J) x 1000 / requests; null without energy or requests."""
    if energy_j is None or not n_requests:
        return None
    return energy_j * WH_PER_J * 1000.0 / n_requests


def energy_normalisations(energy: EnergyResult, output_tokens: int, n_requests: int) -> dict[str, float | None]:
    """The Metrics energy fields, raw and baseline-adjusted, over the given output tokens and requests.

    Offline both counts are the window's whole work; serving passes the tokens and completed requests
    inside its steady-state window (serving/report.py): one set of formulas for both modes.
    """
    raw, adjusted = energy.gpu_energy_raw_j, energy.gpu_energy_adjusted_j
    return dict(
        energy_per_output_token_j=per_output_token_j(raw, output_tokens),
        energy_per_output_token_adjusted_j=per_output_token_j(adjusted, output_tokens),
        energy_per_request_j=_per(raw, n_requests),
        energy_per_request_adjusted_j=_per(adjusted, n_requests),
        energy_wh_per_1000_requests=wh_per_1000_requests(raw, n_requests),
        energy_wh_per_1000_requests_adjusted=wh_per_1000_requests(adjusted, n_requests))


def per_output_token_j(energy_j: float | None, output_tokens: int | None) -> float | None:
    """Energy per output token for any energy source (GPU counter, RAPL, a future meter): the one formula."""
    return _per(energy_j, output_tokens)


def window_counts(result) -> tuple[int | None, int | None]:
    """The output tokens and requests every energy of a run's window is divided by — GPU and CPU alike.

    Offline: the window holds the whole measured work (every token, every request). Serving: the
    steady-state window's tokens and completed requests (serving/report.py), or (None, None) when
    the window measured nothing (`serving.window.unmeasured_reason`).
    """
    serving = getattr(result, "serving", None)
    if serving is not None:
        window = serving.window
        if getattr(window, "unmeasured_reason", None):
            return None, None
        return window.output_tokens, window.requests_completed
    return result.output_tokens_total, result.n_requests


def compute_metrics(requests: list[RequestRecord], itl_values_s: list[float], window_s: float,
                    energy: EnergyResult, flops: FlopsEstimate | None = None,
                    memory: MemoryStats | None = None) -> Metrics:
    """Throughput and energy normalisations with explicit denominators."""
    n_requests = len(requests)
    output_tokens = sum(r.output_tokens for r in requests)
    input_tokens = sum(r.input_tokens for r in requests)
    return Metrics(
        ttft_s=distribution([r.ttft_s for r in requests if r.ttft_s is not None]),
        itl_s=distribution(itl_values_s),
        tpot_s=distribution([r.tpot_s for r in requests if r.tpot_s is not None]),
        e2e_latency_s=distribution([r.e2e_latency_s for r in requests if r.e2e_latency_s is not None]),
        output_tokens_per_s=_per(output_tokens, window_s),
        total_tokens_per_s=_per(input_tokens + output_tokens, window_s),
        requests_per_s=_per(n_requests, window_s),
        **energy_normalisations(energy, output_tokens, n_requests),
        flops=flops or FlopsEstimate(unavailable_reason="not computed"),
        memory=memory or MemoryStats(unavailable_reason="not reported"),
    )
