"""TensorRT-LLM engine, written against the TensorRT-LLM 1.2.x LLM API (`tensorrt_llm.LLM`,
`LLM.generate`, `SamplingParams`, `llmapi.KvCacheConfig`, `llmapi.QuantConfig`).

NOT VERIFIED ON HARDWARE: TensorRT-LLM needs an NVIDIA GPU and its wheel is published on
NVIDIA's index, neither of which this project's CI can reach. The argument mapping is checked
against the parameter names of TensorRT-LLM's source (tests/fixtures/engine_signatures/).

Batching: all prompts of a batch go to one `generate` call (in-flight batching). Per-request
latency comes from TensorRT-LLM's own per-request perf metrics (`SamplingParams(
return_perf_metrics=True)` → `output.outputs[0].request_perf_metrics.timing_metrics`, whose
arrival/first/last token times are timedeltas on the executor's steady clock, i.e. CLOCK_MONOTONIC
on Linux). TTFT and TPOT come from there; ITL does not (no per-token times) and stays null.
"""
from __future__ import annotations

import time
from typing import Any

from llenergymeasure.domain import ExperimentConfig, MemoryStats, TokenTiming, token_timing
from llenergymeasure.domain.config import dtype_name

from .base import BatchOutput, completion_requests

NO_PER_TOKEN_TIMES = "TensorRT-LLM's perf metrics give first/last token times per request, not every token's"


def engine_kwargs(config: ExperimentConfig) -> dict[str, Any]:
    """Plain `tensorrt_llm.LLM(**kwargs)` arguments; the two nested configs are built in `load`."""
    t = config.tensorrt_llm
    kwargs: dict[str, Any] = {"model": config.model, "dtype": dtype_name(config.precision)}
    for key in ("max_batch_size", "max_num_tokens", "tensor_parallel_size"):
        if getattr(t, key) is not None:
            kwargs[key] = getattr(t, key)
    return kwargs


def kv_cache_kwargs(config: ExperimentConfig) -> dict[str, Any]:
    """`KvCacheConfig(**kwargs)`: KV-block reuse (TensorRT-LLM's prefix cache) follows `prefix_caching`."""
    kwargs: dict[str, Any] = {"enable_block_reuse": config.prefix_caching}
    if config.tensorrt_llm.kv_cache_free_gpu_memory_fraction is not None:
        kwargs["free_gpu_memory_fraction"] = config.tensorrt_llm.kv_cache_free_gpu_memory_fraction
    return kwargs


def sampling_kwargs(config: ExperimentConfig) -> dict[str, Any]:
    d = config.decoding
    kwargs: dict[str, Any] = {"max_tokens": config.max_output_tokens, "ignore_eos": d.ignore_eos,
                              "seed": config.random_seed, "return_perf_metrics": True}
    if d.strategy == "greedy":
        kwargs["top_k"] = 1  # SamplingParams._greedy_decoding: top_k 1 (or None) and top_p None
    else:
        kwargs.update(temperature=d.temperature, top_p=d.top_p, top_k=d.top_k or None)
    if d.ignore_eos:
        kwargs["min_tokens"] = config.max_output_tokens
    return kwargs


def request_timings(completion: Any, mono_to_perf: float) -> dict[str, Any]:
    perf = getattr(completion, "request_perf_metrics", None)
    timing = getattr(perf, "timing_metrics", None)
    if timing is None:
        return {"timing_unavailable_reason": "TensorRT-LLM returned no request_perf_metrics for this request"}
    timings = {"start_s": timing.arrival_time.total_seconds() + mono_to_perf,
               "first_token_s": timing.first_token_time.total_seconds() + mono_to_perf,
               "last_token_s": timing.last_token_time.total_seconds() + mono_to_perf,
               "timing_unavailable_reason": NO_PER_TOKEN_TIMES}
    # In-flight batching queues what exceeds max_batch_size: prefill starts at the first scheduling.
    scheduled = getattr(timing, "first_scheduled_time", None)
    scheduled_s = scheduled.total_seconds() if scheduled is not None else 0.0
    if scheduled_s > 0:
        timings["scheduled_s"] = scheduled_s + mono_to_perf
    else:
        timings["schedule_unavailable_reason"] = ("TensorRT-LLM reported no first_scheduled_time in this "
                                                  "request's timing metrics")
    return timings


class TensorRtLlmAdapter:
    name = "tensorrt_llm"

    def __init__(self, config: ExperimentConfig):
        self.config = config
        self.llm = None
        self.kwargs = engine_kwargs(config)

    def load(self) -> None:
        from tensorrt_llm import LLM
        from tensorrt_llm.llmapi import KvCacheConfig, QuantAlgo, QuantConfig

        t = self.config.tensorrt_llm
        kwargs = dict(self.kwargs)
        kwargs["kv_cache_config"] = KvCacheConfig(**kv_cache_kwargs(self.config))
        if t.quantization is not None:
            kwargs["quant_config"] = QuantConfig(quant_algo=QuantAlgo[t.quantization.upper()])
        self.llm = LLM(**kwargs)

    def fit_to_tokens(self, text: str, n_tokens: int) -> str:
        tokenizer = self.llm.tokenizer
        return tokenizer.decode(tokenizer.encode(text, add_special_tokens=False)[:n_tokens])

    def synchronize(self) -> None:
        """`LLM.generate` returns when every request has finished."""

    def generate_batch(self, prompts: list[str]) -> BatchOutput:
        from tensorrt_llm import SamplingParams

        params = SamplingParams(**sampling_kwargs(self.config))
        start = time.perf_counter()
        mono_to_perf = start - time.monotonic()
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        end = time.perf_counter()
        requests = completion_requests(outputs, lambda _, completion: request_timings(completion, mono_to_perf))
        return BatchOutput(start_s=start, end_s=end, requests=requests)

    def token_timing(self) -> TokenTiming:
        return token_timing("engine_request_metrics", note="TensorRT-LLM request_perf_metrics")

    def effective_parameters(self) -> dict[str, Any]:
        params: dict[str, Any] = {"batching": "inflight", "engine_kwargs": self.kwargs,
                                  "kv_cache_free_gpu_memory_fraction":
                                      self.config.tensorrt_llm.kv_cache_free_gpu_memory_fraction,
                                  "quantization": self.config.tensorrt_llm.quantization,
                                  "kv_cache_config": kv_cache_kwargs(self.config)}
        if self.llm is not None:
            args = self.llm.args
            params.update(max_batch_size=args.max_batch_size, max_num_tokens=args.max_num_tokens,
                          tensor_parallel_size=args.tensor_parallel_size, backend=getattr(args, "backend", None))
        return params

    def versions(self) -> dict[str, str | None]:
        import tensorrt_llm
        import torch

        return {"engine_version": tensorrt_llm.__version__, "torch_version": torch.__version__,
                "cuda_version": torch.version.cuda, "device": "cuda",
                "device_name": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}

    def model_config_dict(self) -> dict[str, Any] | None:
        import json
        from pathlib import Path

        path = Path(self.config.model) / "config.json"  # a local HF checkpoint; hub ids: no estimate
        return json.loads(path.read_text()) if path.is_file() else None

    def reset_peak_memory(self) -> None:
        """TensorRT-LLM pre-allocates its KV cache; a peak counter would show the reservation."""

    def memory(self) -> MemoryStats:
        return MemoryStats(unavailable_reason="TensorRT-LLM reserves its KV cache up front; "
                                              "peak use inside that reservation is not reported")

    def close(self) -> None:
        if self.llm is not None:
            shutdown = getattr(self.llm, "shutdown", None)
            if callable(shutdown):
                shutdown()
            self.llm = None
