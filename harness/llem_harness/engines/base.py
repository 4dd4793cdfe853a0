"""The engine adapter protocol: load, generate a batch, report what was used, close.

Each adapter returns per-request token counts and per-step timestamps so that latency
metrics (TTFT, inter-token latency) are measured the same way for every engine.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from llenergymeasure.domain import ExperimentConfig, MemoryStats, TokenTiming


@dataclass
class GeneratedRequest:
    """One request of a batch. Times are perf_counter seconds (adapters convert engine clocks).

    Engines that stream give `token_times_s` (every output token's time: TTFT, ITL, TPOT).
    Engines that only report first/last token times per request (e.g. vLLM's request metrics)
    set `first_token_s`/`last_token_s` instead, so TTFT and TPOT are measured but ITL is not.
    When an engine reports neither, `timing_unavailable_reason` says why the latencies are null:
    they are never derived from a batch total.
    """

    input_tokens: int
    output_tokens: int
    token_times_s: list[float] = field(default_factory=list)  # when each output token was ready
    finished_by: str = "unknown"
    start_s: float | None = None         # when this request was submitted; None = its batch's start
    first_token_s: float | None = None   # only when token_times_s is empty
    last_token_s: float | None = None    # only when token_times_s is empty
    timing_unavailable_reason: str | None = None
    cached_prompt_tokens: int | None = None  # prompt tokens served from the engine's cache; None = not reported
    # When the engine first scheduled the request: its prefill starts there, not at submission (an
    # engine that batches continuously queues what exceeds its batch). None with no reason: the engine
    # starts every request when handed it (a static batch, one request at a time).
    scheduled_s: float | None = None
    schedule_unavailable_reason: str | None = None  # the engine may queue it and does not say when it ran

    def first_and_last_s(self) -> tuple[float | None, float | None]:
        if self.token_times_s:
            return self.token_times_s[0], self.token_times_s[-1]
        return self.first_token_s, self.last_token_s


def completion_requests(outputs, timing) -> list[GeneratedRequest]:
    """Requests from engines whose offline `generate` returns vLLM-shaped outputs (vLLM, TensorRT-LLM):
    `prompt_token_ids`, and `outputs[0]` with `token_ids` and `finish_reason`. Real counts: the
    token ids the engine returned. `timing(output, completion)` gives the timing fields.
    `RequestOutput.num_cached_tokens` (vLLM) is the count of prompt tokens served from the prefix cache."""
    requests = []
    for out in outputs:
        completion = out.outputs[0]
        requests.append(GeneratedRequest(
            input_tokens=len(out.prompt_token_ids or []), output_tokens=len(completion.token_ids),
            finished_by={"stop": "eos", "length": "length"}.get(str(completion.finish_reason), "unknown"),
            cached_prompt_tokens=getattr(out, "num_cached_tokens", None), **timing(out, completion)))
    return requests


@dataclass
class BatchOutput:
    start_s: float
    end_s: float
    requests: list[GeneratedRequest]


class EngineAdapter(Protocol):
    name: str

    def load(self) -> None: ...

    def fit_to_tokens(self, text: str, n_tokens: int) -> str:
        """Cut `text` to about `n_tokens` tokens of this engine's tokenizer (synthetic prompts)."""

    def generate_batch(self, prompts: list[str]) -> BatchOutput: ...

    def synchronize(self) -> None: ...

    def token_timing(self) -> TokenTiming:
        """How `generate_batch` takes per-token times; it must add no device synchronise per step."""

    def effective_parameters(self) -> dict[str, Any]: ...

    def versions(self) -> dict[str, str | None]: ...

    def model_config_dict(self) -> dict[str, Any] | None: ...

    def reset_peak_memory(self) -> None: ...

    def memory(self) -> MemoryStats: ...

    def close(self) -> None: ...


ADAPTERS = {"transformers": ("transformers", "TransformersAdapter"), "llama_cpp": ("llama_cpp", "LlamaCppAdapter"),
            "vllm": ("vllm", "VllmAdapter"), "tensorrt_llm": ("tensorrt_llm", "TensorRtLlmAdapter")}


def create_adapter(config: ExperimentConfig) -> EngineAdapter:
    """Adapters are imported lazily: each lives in its own image with its own engine library."""
    import importlib

    module_name, class_name = ADAPTERS[config.engine]
    module = importlib.import_module(f"{__package__}.{module_name}")
    return getattr(module, class_name)(config)
