"""Serving mode: configuration and result records (an engine's OpenAI-compatible server under load).

Why a separate module: offline and serving share the result file and the summary, but serving adds
its own load shape (closed-loop concurrency or open-loop rate with gamma arrivals), a steady-state window and
per-request server-side figures. Kept here so `config.py` and `result.py` change by one field each.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from .base import OpenModel, StrictModel


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

    concurrency: int | None = Field(None, ge=1, description="requests kept in flight (closed loop)")
    request_rate: float | None = Field(None, gt=0, description="mean arrivals per second (seeded)")
    burstiness: float = Field(
        1.0, gt=0, description="request_rate only: shape of the gamma inter-arrival distribution; 1 = Poisson, "
                               "< 1 burstier, > 1 more regular (as vllm bench serve --burstiness)")
    n_requests: int = Field(
        32, ge=2, description="requests sent in total; with fewer prompts, prompts repeat (labelled prompt_repeat, warned)")
    duration_s: float | None = Field(None, gt=0, description="cap: no new request is sent after this")
    streaming: bool = Field(True, description="stream tokens (needed for TTFT and inter-token latency)")
    ramp_requests: int | None = Field(
        None, ge=1, description="request_rate only: the window opens at this send (default: 10% of n_requests)")
    ready_timeout_s: float = Field(600.0, gt=0, description="give up if the server is not ready by then")
    port: int | None = Field(None, ge=1024, le=65535,
                             description="localhost port of the server inside the run; default: a free one")
    server_args: list[str] = Field(default_factory=list, description="extra arguments for the server command")
    slo: ServingSlo | None = None

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


class ServingWindow(OpenModel):
    """Steady-state window; times in seconds from the first request's send."""

    definition: str
    start_s: float
    end_s: float
    duration_s: float
    run_s: float = Field(..., description="first send to last response")
    steady_state_share: float = Field(..., description="duration_s / run_s")
    output_tokens: int = Field(..., description="output tokens whose arrival time lies in the window")
    requests_completed: int = Field(..., description="requests whose last token arrived in the window")
    output_token_share: float | None = Field(None, description="output_tokens / output tokens of every ok request")
    request_share: float | None = Field(None, description="requests_completed / ok requests")


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
    goodput_share: float | None = Field(None, description="share of ok requests meeting the SLO")
    goodput_unavailable_reason: str | None = None
    server_start: dict[str, Any] | None = Field(
        None, description="how the server process was started (own process group in the harness's session), "
                          "read back from the kernel: session, process group, scheduling autogroup")
    bunched_responses: int | None = Field(
        None, description="streamed ok responses with at least 3 token events that all arrived in one socket "
                          "read (a stalled server or client: their TTFT/TPOT/ITL describe the stall)")
