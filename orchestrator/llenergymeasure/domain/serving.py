"""Serving mode: configuration and result records (an engine's OpenAI-compatible server under load).

Why a separate module: offline and serving share the result file and the summary, but serving adds
its own load shape (closed-loop concurrency or open-loop rate with gamma arrivals), a steady-state window and
per-request server-side figures. Kept here so `config.py` and `result.py` change by one field each.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from .base import OpenModel, StrictModel
from .metrics import Distribution

MIN_WINDOW_REQUESTS = 2  # a rate over one completion is one request's timing, not a steady state


def min_window_requests(concurrency: int | None) -> int:
    """Completions a steady-state window must hold: closed loop, every slot turned over at least once."""
    return max(MIN_WINDOW_REQUESTS, concurrency or 1)


def unmeasured_window_reason(duration_s: float, requests_completed: int, output_tokens: int, streaming: bool,
                             concurrency: int | None, min_duration_s: float) -> str | None:
    """Why a steady-state window measured nothing publishable (its windowed figures are then null), or None.

    The rule (docs/methodology.md, "Steady state"): at least one sampling period long, at least
    `min_window_requests` completions inside it, and (streaming) at least one output token in it.
    """
    need = min_window_requests(concurrency)
    if duration_s < min_duration_s:
        return (f"the steady-state window lasted {duration_s * 1000:.0f} ms, shorter than one sampling period "
                f"({min_duration_s * 1000:.0f} ms): too short to measure")
    if requests_completed < need:
        return (f"{requests_completed} request(s) completed inside the steady-state window, fewer than the "
                f"{need} a window needs" + (f" (every one of the {concurrency} slots turned over once)"
                                            if concurrency and concurrency >= MIN_WINDOW_REQUESTS else ""))
    if streaming and output_tokens == 0:
        return "no output token arrived inside the steady-state window"
    return None


class ServingSlo(StrictModel):
    """Service-level objective for goodput: a request counts when it meets every threshold set."""

    ttft_s: float | None = Field(None, gt=0, description="time to first token at most this")
    tpot_s: float | None = Field(None, gt=0, description="time per output token at most this")
    e2e_s: float | None = Field(None, gt=0, description="end-to-end latency at most this")

    def streaming_only(self) -> list[str]:
        """Thresholds that need token arrival times (measured only when streaming)."""
        return [f"slo.{k}" for k in ("ttft_s", "tpot_s") if getattr(self, k) is not None]


class ServingConfig(StrictModel):
    """Load shape for `mode: serving`. Exactly one of `concurrency` (closed loop: C requests always in
    flight) or `request_rate` (open loop: gamma arrivals of shape `burstiness`, Poisson by default, seeded
    by `random_seed`); default C=1."""

    concurrency: int | None = Field(None, ge=1, le=1 << 16, description="requests kept in flight (closed loop)")
    request_rate: float | None = Field(None, gt=0, description="mean arrivals per second (seeded)")
    burstiness: float = Field(
        1.0, gt=0, description="request_rate only: shape of the gamma inter-arrival distribution; 1 = Poisson, "
                               "< 1 burstier, > 1 more regular (as vllm bench serve --burstiness)")
    n_requests: int = Field(
        32, ge=2, le=10_000_000, description="requests sent in total; with fewer prompts, prompts repeat (labelled prompt_repeat, warned)")
    duration_s: float | None = Field(None, gt=0, description="cap: no new request is sent after this")
    streaming: bool = Field(True, description="stream tokens (needed for TTFT and inter-token latency)")
    ramp_requests: int | None = Field(
        None, ge=1, le=10_000_000, description="request_rate only: the window opens at this send (default: 10% of n_requests)")
    ready_timeout_s: float = Field(600.0, gt=0, description="give up if the server is not ready by then")
    port: int | None = Field(None, ge=1024, le=65535,
                             description="localhost port of the server inside the run; default: a free one")
    server_args: list[str] = Field(default_factory=list, description="extra arguments for the server command")
    slo: ServingSlo | None = None
    max_error_share: float = Field(
        0.1, ge=0, le=1, description="the run fails (error.json) when more than this share of its requests "
                                     "failed: a load the server did not serve is not a measurement")

    @model_validator(mode="after")
    def _load_shape(self) -> "ServingConfig":
        if self.concurrency is not None and self.request_rate is not None:
            raise ValueError("serving: set either concurrency or request_rate, not both")
        if self.concurrency is None and self.request_rate is None:
            object.__setattr__(self, "concurrency", 1)
        if self.concurrency is not None and self.n_requests <= self.concurrency:
            raise ValueError(f"serving.n_requests ({self.n_requests}) must exceed serving.concurrency "
                             f"({self.concurrency}) so the steady-state window is not empty")
        if self.request_rate is None and self.burstiness != 1.0:
            raise ValueError("serving.burstiness shapes open-loop arrivals: set serving.request_rate or remove it")
        if self.slo is not None and not self.streaming and self.slo.streaming_only():
            raise ValueError(f"serving.{', serving.'.join(self.slo.streaming_only())} cannot be evaluated without "
                             "streaming (no token times): set serving.streaming: true or use serving.slo.e2e_s")
        if self.request_rate is not None and self.ramp() >= self.n_requests:
            raise ValueError(f"serving.ramp_requests ({self.ramp()}) must be below serving.n_requests "
                             f"({self.n_requests}) so the steady-state window is not empty")
        return self

    def ramp(self) -> int:
        """Sends before the open-loop window opens."""
        return self.ramp_requests or max(1, self.n_requests // 10)

    def window_warning(self, min_duration_s: float) -> str | None:
        """Why these settings cannot give a steady-state window with figures (`--dry-run`), or None.

        Closed loop: the window holds the completions after the first refill up to the drain, at most
        n_requests - concurrency. Open loop: it runs from send `ramp` to the last send, expected to last
        (n_requests - ramp) / request_rate seconds.
        """
        if self.concurrency is not None:
            need = min_window_requests(self.concurrency)
            if self.n_requests - self.concurrency < need:
                return (f"serving.n_requests {self.n_requests} with concurrency {self.concurrency} leaves at most "
                        f"{self.n_requests - self.concurrency} completion(s) in the steady-state window, fewer than "
                        f"the {need} it needs: its throughput and energy figures would be null (set n_requests >= "
                        f"{self.concurrency + need})")
            return None
        expected_s = (self.n_requests - self.ramp()) / self.request_rate
        if expected_s < min_duration_s:
            return (f"serving.request_rate {self.request_rate:g}/s with n_requests {self.n_requests} (ramp "
                    f"{self.ramp()}) gives a steady-state window of about {expected_s * 1000:.0f} ms, shorter than "
                    f"one sampling period ({min_duration_s * 1000:.0f} ms): its figures would be null (more "
                    "requests or a lower rate)")
        return None


class ServingWindow(OpenModel):
    """Steady-state window; times in seconds from the first request's send."""

    definition: str
    start_s: float
    end_s: float
    duration_s: float
    run_s: float = Field(..., description="first send to last response")
    steady_state_share: float = Field(..., description="duration_s / run_s")
    output_tokens: int = Field(..., description="output tokens inside the window (how: output_tokens_basis)")
    output_tokens_basis: str | None = Field(
        None, description="how tokens were placed in the window: by their arrival times (streaming), or whole "
                          "requests by their completion (streaming off)")
    requests_completed: int = Field(..., description="requests whose last token arrived in the window")
    output_token_share: float | None = Field(None, description="output_tokens / output tokens of every ok request")
    request_share: float | None = Field(None, description="requests_completed / ok requests")
    unmeasured_reason: str | None = Field(
        None, description="set when the window is too short or holds too few completions to measure: its "
                          "throughput and energy figures are then null")


class ServingResult(OpenModel):
    """What the serving run adds to result.json (latency distributions live in `metrics`)."""

    load: Literal["concurrency", "request_rate"]
    concurrency: int | None = None
    request_rate_offered_per_s: float | None = None
    server_command: list[str] = Field(default_factory=list)
    server_command_verified: bool = Field(..., description="False: written from the engine's docs, never run here")
    server_log_file: str
    server_ready_s: float | None = None
    requests_file: str = Field(..., description="JSONL, one line per request with every token time")
    n_sent: int
    n_ok: int
    n_errors: int = Field(..., description="HTTP errors, broken streams and timeouts")
    error_examples: list[str] = Field(default_factory=list)
    achieved_request_rate_per_s: float | None = Field(None, description="ok responses / run_s")
    output_tokens_per_s_run: float | None = Field(None, description="output tokens of ok requests / run_s")
    rate_denominator: str = Field("run_s: first send to last response",
                                  description="the time goodput, achieved rate and run throughput are divided by")
    requests_over_max_output_tokens: int = Field(
        0, description="ok requests whose output exceeded max_output_tokens (flagged per request)")
    output_tokens_source: str = Field(..., description="where output token counts come from")
    window: ServingWindow
    energy_per_output_token_window_j: float | None = None
    energy_per_request_window_j: float | None = Field(None, description="window energy / requests completed in it")
    energy_attribution: str = Field(..., description="how per-request energy_j in the requests file is derived")
    slo: ServingSlo | None = None
    goodput_requests_per_s: float | None = None
    goodput_share: float | None = Field(None, description="requests meeting the SLO / requests sent (a failed "
                                                          "request is not good)")
    goodput_unavailable_reason: str | None = None
    itl_definition: str | None = Field(
        None, description="what metrics.itl_s holds: 'inter-token…' where every streamed chunk was one token; "
                          "'inter-chunk' where not (metrics.itl_s is then null, the gaps are in inter_chunk_latency_s)")
    inter_chunk_latency_s: Distribution | None = Field(
        None, description="gaps between streamed chunks, where a chunk is not one token")
    itl_unavailable_reason: str | None = Field(None, description="why metrics.itl_s is null")
    server_start: dict[str, Any] | None = Field(
        None, description="how the server process was started (own process group in the harness's session), "
                          "read back from the kernel: session, process group, scheduling autogroup")
    bunched_responses: int | None = Field(
        None, description="streamed ok responses with at least 3 token events that all arrived in one socket "
                          "read (a stalled server or client: their TTFT/TPOT/ITL describe the stall)")
