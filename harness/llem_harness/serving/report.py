"""From request traces to the result: per-request records, latency metrics, the window figures.

Energy attribution (docs/metrics.md, labelled in the result):
`output_token_share_in_window` — the counter's window energy is split over requests in
proportion to the output tokens each received inside the window (a request's energy_j =
its tokens in the window x window J/token). Requests with no token in the window get 0. It is an
attribution, not a per-request measurement: concurrent requests share the device.

Tokens, not chunks: a request's output tokens are the server's usage.completion_tokens where it sends
them; its tokens inside the window are that count times the share of its streamed token arrivals
that fall in the window (a chunk may carry several tokens). Without streaming there are no arrival
times: a request's tokens count, whole, where its response completed (`output_tokens_basis` says so),
never as 0. For the same reason ITL holds only the gaps of requests whose arrivals were one token
each; other gaps are inter-chunk and reported apart (`itl_definition`).

Goodput's share counts every request sent: a failed request is not good. A window too short or too
empty to measure (domain/serving.py `unmeasured_window_reason`) nulls its rates and energy figures.
"""
from __future__ import annotations

import json
from pathlib import Path

from llenergymeasure.domain import (EnergyResult, Metrics, RequestRecord, ServingConfig, ServingResult,
                                    ServingWindow, compute_metrics)
from llenergymeasure.domain.latency import request_latency
from llenergymeasure.domain.metrics import MemoryStats, distribution, energy_normalisations
from llenergymeasure.domain.serving import unmeasured_window_reason

from .loadgen import RequestTrace
from .process import SERVER_LOG_FILE

REQUESTS_FILE = "requests.jsonl"
ATTRIBUTION = "output_token_share_in_window"


def output_tokens(trace: RequestTrace) -> int:
    usage = trace.usage or {}
    if usage.get("completion_tokens") is not None:
        return int(usage["completion_tokens"])
    return len(trace.token_times_s)


TOKENS_BY_ARRIVAL = "token arrivals inside the window (each request's token count x its share of arrivals inside)"
TOKENS_BY_COMPLETION = ("tokens of the requests completed inside the window (streaming off: no token times, "
                        "a request's tokens count where its response completed)")


def tokens_in_window(trace: RequestTrace, start_s: float, end_s: float) -> float:
    """Output tokens of a request inside [start_s, end_s]: its token count x the share of its token
    arrivals in the window (equal to the arrivals when each chunk is one token). Without token times
    (streaming off) all its tokens count where the response completed: inside the window or not at all."""
    times = trace.token_times_s
    if not times:
        done = trace.done_s
        return float(output_tokens(trace)) if trace.ok and done is not None and start_s <= done <= end_s else 0.0
    inside = sum(1 for x in times if start_s <= x <= end_s)
    return output_tokens(trace) * inside / len(times)


def one_token_per_arrival(trace: RequestTrace) -> bool:
    """The server's token count equals the request's streamed arrivals: each gap is between two tokens."""
    return bool(trace.token_times_s) and (trace.usage or {}).get("completion_tokens") == len(trace.token_times_s)


def itl_split(traces: list[RequestTrace]) -> tuple[list[float], list[float], int, int]:
    """(inter-token gaps, every inter-arrival gap, requests with one token per arrival, streamed requests).

    Inter-token gaps come only from requests whose arrivals are one token each by the server's count;
    where a chunk carries several tokens (or the server sends no count) a gap is inter-chunk.
    """
    streamed = [t for t in traces if t.ok and t.token_times_s]
    per_token = [t for t in streamed if one_token_per_arrival(t)]

    def gaps(ts: list[RequestTrace]) -> list[float]:
        return [b - a for t in ts for a, b in zip(t.token_times_s, t.token_times_s[1:])]

    return gaps(per_token), gaps(streamed), len(per_token), len(streamed)


def cached_tokens(trace: RequestTrace) -> int | None:
    """usage.prompt_tokens_details.cached_tokens (OpenAI field; vLLM with --enable-prompt-tokens-details)."""
    details = (trace.usage or {}).get("prompt_tokens_details") or {}
    value = details.get("cached_tokens")
    return None if value is None else int(value)


def to_records(traces: list[RequestTrace], prompt_tokens: list[int | None],
               max_output_tokens: int) -> tuple[list[RequestRecord], list[float]]:
    """RequestRecords (ok requests only) with latencies from the send time, and all inter-token gaps."""
    records: list[RequestRecord] = []
    itl: list[float] = []
    seen: dict[int, int] = {}
    for tr in sorted(traces, key=lambda t: t.send_s):
        repeat = seen.get(tr.prompt_index, 0)
        seen[tr.prompt_index] = repeat + 1
        if not tr.ok:
            continue
        n_out = output_tokens(tr)
        usage = tr.usage or {}
        n_in = usage.get("prompt_tokens", prompt_tokens[tr.prompt_index]) or 0
        lat = request_latency(tr.send_s, n_out, tr.token_times_s, done_s=tr.done_s)
        itl.extend(lat.itl_s)
        records.append(RequestRecord(
            index=tr.index, batch_index=tr.index, input_tokens=int(n_in), output_tokens=n_out, ttft_s=lat.ttft_s,
            e2e_latency_s=lat.e2e_latency_s, tpot_s=lat.tpot_s,
            finished_by={"stop": "eos", "length": "length"}.get(tr.finish_reason or "", "unknown"),
            timing_unavailable_reason=None if tr.token_times_s else "streaming off: no token times",
            cached_prompt_tokens=cached_tokens(tr), prompt_repeat=repeat,
            exceeds_max_output_tokens=n_out > max_output_tokens))
    return sorted(records, key=lambda r: r.index), itl


def window_figures(traces: list[RequestTrace], start_s: float, end_s: float, definition: str) -> ServingWindow:
    ok = [t for t in traces if t.ok]
    first = min(t.send_s for t in traces)
    # The end edge is read just after the completion that starts the drain: with one request in flight
    # that is the last response, and the run ends at the later of the two instants.
    last = max([t.done_s for t in traces if t.done_s is not None] + [end_s])
    run_s = last - first
    tokens = round(sum(tokens_in_window(t, start_s, end_s) for t in ok))
    all_tokens = sum(output_tokens(t) for t in ok)
    completed = sum(1 for t in ok if t.done_s is not None and start_s <= t.done_s <= end_s)
    duration = end_s - start_s
    by_arrival = any(t.token_times_s for t in ok)
    return ServingWindow(definition=definition, start_s=start_s - first, end_s=end_s - first, duration_s=duration,
                         run_s=run_s, steady_state_share=duration / run_s if run_s > 0 else 0.0,
                         output_tokens=tokens, requests_completed=completed,
                         output_tokens_basis=TOKENS_BY_ARRIVAL if by_arrival else TOKENS_BY_COMPLETION,
                         output_token_share=tokens / all_tokens if all_tokens else None,
                         request_share=completed / len(ok) if ok else None)


def check_window(window: ServingWindow, cfg: ServingConfig, min_duration_s: float) -> ServingWindow:
    """The window with `unmeasured_reason` set when it is too short or too empty to publish figures from."""
    reason = unmeasured_window_reason(window.duration_s, window.requests_completed, window.output_tokens,
                                      cfg.streaming, cfg.concurrency, min_duration_s)
    return window.model_copy(update={"unmeasured_reason": reason})


def serving_metrics(records: list[RequestRecord], itl: list[float], window: ServingWindow,
                    energy: EnergyResult) -> Metrics:
    """Latency distributions over every ok request; throughput and energy over the window only
    (null, never 0, when the window measured nothing: `window.unmeasured_reason`). `itl`: the
    inter-token gaps only (`itl_split`); inter-chunk gaps go to `serving.inter_chunk_latency_s`."""
    metrics = compute_metrics(records, itl, window.run_s, energy, None,
                              MemoryStats(unavailable_reason="model runs in the server process"))

    def per(x, d):
        return None if x is None or not d else x / d

    normalised = energy_normalisations(energy, window.output_tokens, window.requests_completed)
    if window.unmeasured_reason is not None:
        normalised = {key: None for key in normalised}
    return metrics.model_copy(update=dict(
        output_tokens_per_s=None if window.unmeasured_reason else per(window.output_tokens, window.duration_s),
        total_tokens_per_s=None,  # input tokens are not spread over time by the server: not defined here
        requests_per_s=None if window.unmeasured_reason else per(window.requests_completed, window.duration_s),
        **normalised))


def goodput(records: list[RequestRecord], cfg: ServingConfig, run_s: float, n_sent: int | None = None):
    """(requests/s meeting every SLO threshold set, their share, reason when not computed).

    The rate is over `run_s`, the same denominator as the achieved request rate. The share is over
    every request sent (`n_sent`): a failed request is not good, as in `vllm bench serve`. A request
    that lacks the figure a threshold tests (no TPOT for a one-token answer, no TTFT) does not meet it.
    SLOs that need streaming are refused at config time when streaming is off.
    """
    slo = cfg.slo
    if slo is None or (slo.ttft_s is None and slo.tpot_s is None and slo.e2e_s is None):
        return None, None, "no serving.slo set"
    if not records:
        return None, None, "no successful request"

    def within(value: float | None, limit: float | None) -> bool:
        return limit is None or (value is not None and value <= limit)

    good = sum(1 for r in records if within(r.ttft_s, slo.ttft_s) and within(r.tpot_s, slo.tpot_s)
               and within(r.e2e_latency_s, slo.e2e_s))
    return (good / run_s if run_s > 0 else None), good / max(n_sent or 0, len(records)), None


def itl_fields(traces: list[RequestTrace]) -> dict:
    """What the serving result says about inter-token latency: which gaps `metrics.itl_s` holds, and the
    inter-chunk gaps apart where a chunk is not one token (`metrics.itl_s` then covers only the requests
    whose arrivals were one token each, or is null with the reason)."""
    _token_gaps, all_gaps, n_per_token, n_streamed = itl_split(traces)
    if not n_streamed:
        return dict(itl_definition=None, itl_unavailable_reason="streaming off: no token times")
    if n_per_token == n_streamed:
        return dict(itl_definition="inter-token: the server's token count equals the streamed arrivals of every "
                                   "request, so each gap is between two tokens")
    inter_chunk = dict(inter_chunk_latency_s=distribution(all_gaps))
    if n_per_token:
        return dict(itl_definition=f"inter-token, over the {n_per_token} of {n_streamed} streamed requests whose "
                                   "arrivals were one token each (the server's count); the others' gaps are "
                                   "inter-chunk (serving.inter_chunk_latency_s)", **inter_chunk)
    return dict(itl_definition="inter-chunk", **inter_chunk,
                itl_unavailable_reason="no streamed request had one arrival per token by the server's count (a chunk "
                                       "carries several tokens, or the server sends no count): the gaps are "
                                       "inter-chunk (serving.inter_chunk_latency_s), not inter-token")


def serving_result(load: str, cfg: ServingConfig, server_def, ready_s: float, traces: list[RequestTrace],
                   records: list[RequestRecord], sw: ServingWindow, metrics: Metrics) -> ServingResult:
    """The serving section of the result: load, server, request counts, run and window figures, goodput."""
    errors = [t for t in traces if not t.ok]
    n_out_total = sum(output_tokens(t) for t in traces if t.ok)
    usage_seen = any(t.usage and t.usage.get("completion_tokens") is not None for t in traces)
    good_rate, good_share, good_reason = goodput(records, cfg, sw.run_s, len(traces))
    return ServingResult(
        load=load, concurrency=cfg.concurrency, request_rate_offered_per_s=cfg.request_rate,
        server_command=server_def.argv, server_command_verified=server_def.verified,
        server_log_file=SERVER_LOG_FILE, server_ready_s=ready_s, requests_file=REQUESTS_FILE,
        n_sent=len(traces), n_ok=len(records), n_errors=len(errors),
        error_examples=list(dict.fromkeys(t.error for t in errors))[:5],
        achieved_request_rate_per_s=len(records) / sw.run_s if sw.run_s > 0 else None,
        output_tokens_per_s_run=n_out_total / sw.run_s if sw.run_s > 0 else None,
        requests_over_max_output_tokens=sum(r.exceeds_max_output_tokens for r in records),
        output_tokens_source="server usage.completion_tokens" if usage_seen
        else "streamed chunks carrying a choice (the server sends no usage while streaming)",
        window=sw, energy_per_output_token_window_j=metrics.energy_per_output_token_j,
        energy_per_request_window_j=metrics.energy_per_request_j, energy_attribution=ATTRIBUTION,
        slo=cfg.slo, goodput_requests_per_s=good_rate, goodput_share=good_share,
        goodput_unavailable_reason=good_reason, **itl_fields(traces))


def write_requests_file(path: Path, traces: list[RequestTrace],
                        start_s: float, end_s: float, energy_per_token_j: float | None) -> None:
    """One JSON line per request: the raw trace plus its token count in the window and energy share."""
    first = min(t.send_s for t in traces)
    with open(path, "w", encoding="utf-8") as fh:
        for tr in traces:
            in_window = tokens_in_window(tr, start_s, end_s)
            fh.write(json.dumps({
                "index": tr.index, "prompt_index": tr.prompt_index, "status": tr.status, "error": tr.error,
                "send_s": tr.send_s - first, "done_s": None if tr.done_s is None else tr.done_s - first,
                "token_times_s": [x - first for x in tr.token_times_s], "stream_token_events": len(tr.token_times_s), "stream_chunks": len(tr.chunk_times_s),
                "empty_chunks": tr.empty_chunks,
                "usage": tr.usage, "finish_reason": tr.finish_reason, "output_tokens_in_window": in_window,
                "energy_j": None if energy_per_token_j is None else in_window * energy_per_token_j,
                "energy_attribution": ATTRIBUTION}) + "\n")
