"""From request traces to the result: per-request records, latency metrics, the window figures.

Energy attribution (documented in README "Serving mode", labelled in the result):
`output_token_share_in_window` — the counter's window energy is split over requests in
proportion to the output tokens each received inside the window (a request's energy_j =
its tokens in the window x window J/token). Requests with no token in the window get 0. It is an
attribution, not a per-request measurement: concurrent requests share the device.
"""
from __future__ import annotations

import json
from pathlib import Path

from llenergymeasure.domain import (EnergyResult, Metrics, RequestRecord, ServingConfig, ServingWindow,
                                    compute_metrics)
from llenergymeasure.domain.metrics import MemoryStats

from .loadgen import RequestTrace

REQUESTS_FILE = "requests.jsonl"
ATTRIBUTION = "output_token_share_in_window"


def output_tokens(trace: RequestTrace) -> int:
    usage = trace.usage or {}
    if usage.get("completion_tokens") is not None:
        return int(usage["completion_tokens"])
    return len(trace.token_times_s)


def to_records(traces: list[RequestTrace], prompt_tokens: list[int | None]) -> tuple[list[RequestRecord], list[float]]:
    """RequestRecords (ok requests only) with latencies from the send time, and all inter-token gaps."""
    records: list[RequestRecord] = []
    itl: list[float] = []
    for tr in traces:
        if not tr.ok:
            continue
        n_out = output_tokens(tr)
        usage = tr.usage or {}
        n_in = usage.get("prompt_tokens", prompt_tokens[tr.prompt_index]) or 0
        times = tr.token_times_s
        ttft = times[0] - tr.send_s if times else None
        e2e = (times[-1] if times else tr.done_s) - tr.send_s
        tpot = (e2e - ttft) / (n_out - 1) if ttft is not None and n_out > 1 else None
        itl.extend(b - a for a, b in zip(times, times[1:]))
        records.append(RequestRecord(
            index=tr.index, batch_index=tr.index, input_tokens=int(n_in), output_tokens=n_out, ttft_s=ttft,
            e2e_latency_s=e2e, tpot_s=tpot,
            finished_by={"stop": "eos", "length": "length"}.get(tr.finish_reason or "", "unknown"),
            timing_unavailable_reason=None if times else "streaming off: no token times"))
    return records, itl


def window_figures(traces: list[RequestTrace], start_s: float, end_s: float, definition: str) -> ServingWindow:
    ok = [t for t in traces if t.ok]
    first = min(t.send_s for t in traces)
    last = max(t.done_s for t in traces if t.done_s is not None)
    run_s = last - first
    tokens = sum(1 for t in ok for x in t.token_times_s if start_s <= x <= end_s)
    completed = sum(1 for t in ok if t.done_s is not None and start_s <= t.done_s <= end_s)
    duration = end_s - start_s
    return ServingWindow(definition=definition, start_s=start_s - first, end_s=end_s - first, duration_s=duration,
                         run_s=run_s, steady_state_share=duration / run_s if run_s > 0 else 0.0,
                         output_tokens=tokens, requests_completed=completed)


def serving_metrics(records: list[RequestRecord], itl: list[float], window: ServingWindow,
                    energy: EnergyResult) -> Metrics:
    """Latency distributions over every ok request; throughput and energy over the window only."""
    metrics = compute_metrics(records, itl, window.run_s, energy, None,
                              MemoryStats(unavailable_reason="model runs in the server process"))

    def per(x, d):
        return None if x is None or not d else x / d

    raw, adj = energy.gpu_energy_raw_j, energy.gpu_energy_adjusted_j
    return metrics.model_copy(update=dict(
        output_tokens_per_s=per(window.output_tokens, window.duration_s),
        total_tokens_per_s=None,  # input tokens are not spread over time by the server: not defined here
        requests_per_s=per(window.requests_completed, window.duration_s),
        energy_per_output_token_j=per(raw, window.output_tokens),
        energy_per_output_token_adjusted_j=per(adj, window.output_tokens),
        energy_per_request_j=per(raw, window.requests_completed),
        energy_per_request_adjusted_j=per(adj, window.requests_completed),
        energy_wh_per_1000_requests=None if per(raw, window.requests_completed) is None
        else per(raw, window.requests_completed) / 3.6,
        energy_wh_per_1000_requests_adjusted=None if per(adj, window.requests_completed) is None
        else per(adj, window.requests_completed) / 3.6))


def goodput(records: list[RequestRecord], cfg: ServingConfig, run_s: float):
    """(requests/s meeting the SLO, their share, reason when not computed)."""
    if cfg.slo is None or (cfg.slo.ttft_s is None and cfg.slo.tpot_s is None):
        return None, None, "no serving.slo set"
    if not records:
        return None, None, "no successful request"
    if cfg.slo.ttft_s is not None and not cfg.streaming:
        return None, None, "serving.slo.ttft_s needs streaming: TTFT is not measured without it"

    def meets(r: RequestRecord) -> bool:
        if cfg.slo.ttft_s is not None and (r.ttft_s is None or r.ttft_s > cfg.slo.ttft_s):
            return False
        return cfg.slo.tpot_s is None or r.tpot_s is None or r.tpot_s <= cfg.slo.tpot_s

    good = sum(1 for r in records if meets(r))
    return (good / run_s if run_s > 0 else None), good / len(records), None


def write_requests_file(path: Path, traces: list[RequestTrace],
                        start_s: float, end_s: float, energy_per_token_j: float | None) -> None:
    """One JSON line per request: the raw trace plus its token count in the window and energy share."""
    first = min(t.send_s for t in traces)
    with open(path, "w", encoding="utf-8") as fh:
        for tr in traces:
            in_window = sum(1 for x in tr.token_times_s if start_s <= x <= end_s)
            fh.write(json.dumps({
                "index": tr.index, "prompt_index": tr.prompt_index, "status": tr.status, "error": tr.error,
                "send_s": tr.send_s - first, "done_s": None if tr.done_s is None else tr.done_s - first,
                "token_times_s": [x - first for x in tr.token_times_s], "stream_token_events": len(tr.token_times_s),
                "usage": tr.usage, "finish_reason": tr.finish_reason, "output_tokens_in_window": in_window,
                "energy_j": None if energy_per_token_j is None else in_window * energy_per_token_j,
                "energy_attribution": ATTRIBUTION}) + "\n")
