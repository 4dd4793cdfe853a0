"""vLLM engine, written against vLLM 0.33.0's offline API (`vllm.LLM`, `LLM.generate`, `SamplingParams`).

NOT VERIFIED ON HARDWARE: vLLM needs an NVIDIA GPU, which this project's CI does not have. The
argument mapping (`engine_kwargs`, `sampling_kwargs`) is checked against the real signatures of
vLLM 0.33.0 (tests/fixtures/engine_signatures/vllm-0.33.0.json, extracted from the wheel).

Batching: all prompts of a batch go to one `generate` call; vLLM schedules them continuously.
Per-request latency comes from vLLM's own request metrics (`RequestOutput.metrics`, a
`RequestStateStats`), which the offline `LLM` fills only with `disable_log_stats=False` (its
default is True): `arrival_time` is wall-clock, `first_token_latency` is measured by vLLM from
arrival, and `first_token_ts`/`last_token_ts` are the engine core's monotonic clock. TTFT and
TPOT therefore come from vLLM; ITL does not (no per-token times offline) and stays null.
"""
from __future__ import annotations

import time
from typing import Any

from llenergymeasure.domain import ExperimentConfig, MemoryStats

from .base import BatchOutput, completion_requests

_DTYPES = {"auto": "auto", "fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
NO_PER_TOKEN_TIMES = "vLLM's offline API reports first/last token times per request, not every token's"


def engine_kwargs(config: ExperimentConfig) -> dict[str, Any]:
    """`vllm.LLM(**kwargs)` from the config; None options are left to vLLM."""
    options = {k: v for k, v in config.vllm.model_dump().items() if v is not None}
    return {"model": config.model, "dtype": _DTYPES[config.precision], "seed": config.random_seed,
            "disable_log_stats": False, "enable_prefix_caching": config.prefix_caching, **options}


def sampling_kwargs(config: ExperimentConfig) -> dict[str, Any]:
    d = config.decoding
    kwargs: dict[str, Any] = {"max_tokens": config.max_output_tokens, "ignore_eos": d.ignore_eos,
                              "seed": config.random_seed}
    if d.strategy == "greedy":
        kwargs["temperature"] = 0.0
    else:
        kwargs.update(temperature=d.temperature, top_p=d.top_p, top_k=d.top_k)
    if d.ignore_eos:
        kwargs["min_tokens"] = config.max_output_tokens
    return kwargs


def request_timings(metrics: Any, to_perf: float) -> dict[str, Any]:
    """GeneratedRequest timing fields from a RequestStateStats (None: reason instead)."""
    if metrics is None or not getattr(metrics, "first_token_ts", 0):
        return {"timing_unavailable_reason": "vLLM returned no request metrics (RequestOutput.metrics is None)"}
    start_s = metrics.arrival_time + to_perf
    first_s = start_s + metrics.first_token_latency
    return {"start_s": start_s, "first_token_s": first_s,
            "last_token_s": first_s + (metrics.last_token_ts - metrics.first_token_ts),
            "timing_unavailable_reason": NO_PER_TOKEN_TIMES}


class VllmAdapter:
    name = "vllm"

    def __init__(self, config: ExperimentConfig):
        self.config = config
        self.llm = None
        self.kwargs = engine_kwargs(config)

    def load(self) -> None:
        from vllm import LLM

        self.llm = LLM(**self.kwargs)

    def fit_to_tokens(self, text: str, n_tokens: int) -> str:
        tokenizer = self.llm.get_tokenizer()
        return tokenizer.decode(tokenizer.encode(text, add_special_tokens=False)[:n_tokens])

    def synchronize(self) -> None:
        """`LLM.generate` returns when every request has finished on the GPU."""

    def generate_batch(self, prompts: list[str]) -> BatchOutput:
        from vllm import SamplingParams

        params = SamplingParams(**sampling_kwargs(self.config))
        start = time.perf_counter()
        to_perf = start - time.time()
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        end = time.perf_counter()
        requests = completion_requests(outputs, lambda out, _: request_timings(out.metrics, to_perf))
        return BatchOutput(start_s=start, end_s=end, requests=requests)

    def effective_parameters(self) -> dict[str, Any]:
        params: dict[str, Any] = {"batching": "continuous", "engine_kwargs": self.kwargs}
        if self.llm is not None:
            cfg = self.llm.llm_engine.vllm_config
            params.update(dtype=str(cfg.model_config.dtype), max_model_len=cfg.model_config.max_model_len,
                          tensor_parallel_size=cfg.parallel_config.tensor_parallel_size,
                          gpu_memory_utilization=cfg.cache_config.gpu_memory_utilization,
                          kv_cache_dtype=cfg.cache_config.cache_dtype,
                          enable_prefix_caching=cfg.cache_config.enable_prefix_caching)
        return params

    def versions(self) -> dict[str, str | None]:
        import torch
        import vllm

        return {"engine_version": vllm.__version__, "torch_version": torch.__version__,
                "cuda_version": torch.version.cuda, "device": "cuda",
                "device_name": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}

    def model_config_dict(self) -> dict[str, Any] | None:
        if self.llm is None:
            return None
        return self.llm.llm_engine.vllm_config.model_config.hf_config.to_dict()

    def reset_peak_memory(self) -> None:
        """vLLM pre-allocates its KV cache; a peak counter would show the reservation, not use."""

    def memory(self) -> MemoryStats:
        return MemoryStats(unavailable_reason="vLLM reserves gpu_memory_utilization of the GPU up front; "
                                              "peak use inside that reservation is not reported")

    def close(self) -> None:
        self.llm = None
