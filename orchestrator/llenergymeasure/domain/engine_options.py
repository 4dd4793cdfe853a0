"""Options of the GPU-only engines (vLLM, TensorRT-LLM): the knobs users tune, typed and bounded.

None means "the engine's own default"; the value the engine actually used is recorded in the
result's `effective` parameters. The names follow each engine's own API so that users can look
them up there (vLLM `EngineArgs`, TensorRT-LLM `LlmArgs`).
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import StrictModel


class VllmConfig(StrictModel):
    """Passed to `vllm.LLM(...)` (vLLM 0.33.0 EngineArgs names)."""

    gpu_memory_utilization: float | None = Field(
        None, gt=0, le=1, description="fraction of GPU memory vLLM may use (CPU build: of host memory, KV cache included)")
    max_num_seqs: int | None = Field(None, ge=1, le=1 << 20, description="maximum concurrent sequences per step")
    max_model_len: int | None = Field(None, ge=16, le=1 << 24, description="context length; default: the model's")
    enforce_eager: bool | None = Field(None, description="disable CUDA graphs")
    kv_cache_dtype: Literal["auto", "fp8", "fp8_e4m3", "fp8_e5m2", "bfloat16"] | None = None
    enable_prefix_caching: bool | None = Field(
        None, description="may only repeat the study's prefix_caching, which decides (offline and serving)")
    enable_chunked_prefill: bool | None = None
    tensor_parallel_size: int | None = Field(None, ge=1, le=1024)
    quantization: str | None = Field(None, min_length=1, description="vLLM quantization method, e.g. awq, gptq, fp8")


TrtQuantization = Literal["fp8", "fp8_block_scales", "nvfp4", "w4a16_awq", "w4a8_awq", "w8a16", "w4a16",
                          "w8a8_sq_per_channel"]


class TensorRtLlmConfig(StrictModel):
    """Passed to `tensorrt_llm.LLM(...)` (TensorRT-LLM 1.2.x LLM API names)."""

    max_batch_size: int | None = Field(None, ge=1, le=1 << 20)
    max_num_tokens: int | None = Field(None, ge=1, le=1 << 24, description="tokens per engine step across all requests")
    tensor_parallel_size: int | None = Field(None, ge=1, le=1024)
    kv_cache_free_gpu_memory_fraction: float | None = Field(
        None, gt=0, le=1, description="KvCacheConfig.free_gpu_memory_fraction")
    quantization: TrtQuantization | None = Field(None, description="QuantConfig.quant_algo (a QuantAlgo name)")
