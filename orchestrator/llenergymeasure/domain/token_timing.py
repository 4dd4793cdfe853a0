"""How a result's per-token times (TTFT, ITL, TPOT) were taken: `ExperimentResult.token_timing`.

Why it is recorded: taking a timestamp per decoding step can change the workload being measured.
On CUDA a host synchronise per step stops the host from queueing the next step's kernels while
the current ones run, so the energy window would measure a slower workload than users run. Every
engine therefore states its method, and whether the timestamps were taken inside the energy
window, so a reader can tell that the latency and energy figures come from the same, undisturbed
run. docs/metrics.md defines each method.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import OpenModel

TokenTimingMethod = Literal["host_clock_per_step", "cuda_events_per_step", "engine_request_metrics",
                            "client_stream_arrival"]

METHOD_DETAIL: dict[str, str] = {
    "host_clock_per_step": "the host clock (perf_counter) read right after each decoding step returned; the "
                           "step's work was done when it returned (no device queue), so no synchronise is added",
    "cuda_events_per_step": "a CUDA event recorded on the stream after each decoding step's token was chosen, "
                            "without a host synchronise; read after the batch's closing synchronise and mapped to "
                            "the host clock through an event recorded at the batch's synchronised start",
    "engine_request_metrics": "the engine's own per-request first/last token timestamps (no per-token times: ITL "
                              "is null); the harness adds no per-step work",
    "client_stream_arrival": "the load generator's clock at the arrival of each streamed chunk; nothing runs in "
                             "the engine's process",
}


class TokenTiming(OpenModel):
    """How per-token times were obtained, and whether they were taken inside the energy window."""

    method: TokenTimingMethod = Field(..., description="how per-token times were taken (docs/metrics.md)")
    inside_energy_window: bool = Field(
        ..., description="true: timestamps were taken during the measured workload itself, by a method that adds "
                         "no device synchronise per step; false: in separate batches outside the energy window")
    detail: str = Field("", description="the method in words, as this engine applied it")


def token_timing(method: TokenTimingMethod, inside_energy_window: bool = True, note: str = "") -> TokenTiming:
    """The record for `method`, its definition plus an engine-specific note."""
    detail = METHOD_DETAIL[method] + (f"; {note}" if note else "")
    return TokenTiming(method=method, inside_energy_window=inside_energy_window, detail=detail)
