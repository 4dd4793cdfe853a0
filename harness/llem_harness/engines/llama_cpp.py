"""llama.cpp engine through llama-cpp-python 0.3.36: `Llama(model_path=...)` on a GGUF file.

Requests run one at a time (the high-level `Llama` object holds one sequence), so each request
has its own start time and its own prefill: TTFT is per request, not per batch. Tokens come from
`Llama.generate`, which yields one token id per decoding step; the time taken right after each
yield is when that token was ready (the CPU/GPU work for it has returned). EOS counts as an output
token, as in the transformers adapter. With `prefix_caching: false` (the default) the KV cache is
reset before every request, so no request is served from llama-cpp-python's prefix match: every
measured request does its full prefill. With `prefix_caching: true` the prefix the previous request
left in the KV cache is reused (llama-cpp-python's own rule) and counted as cached prompt tokens.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from llenergymeasure.domain import ExperimentConfig, MemoryStats, TokenTiming, token_timing

from .base import BatchOutput, GeneratedRequest


def find_gguf(model: str) -> Path:
    """`model` is a .gguf file, or a directory holding exactly one .gguf file."""
    path = Path(model)
    if path.is_file() and path.suffix == ".gguf":
        return path
    if path.is_dir():
        found = sorted(path.glob("*.gguf"))
        if len(found) == 1:
            return found[0]
        detail = f"holds {len(found)} .gguf files ({', '.join(p.name for p in found)})" if found else "holds no .gguf file"
        raise FileNotFoundError(f"model '{model}' {detail}; llama_cpp needs one GGUF file: set model to its path")
    raise FileNotFoundError(f"model '{model}' is not a .gguf file or a directory with one; llama_cpp loads GGUF "
                            "files only (`llem models make-tiny DIR` writes DIR/model.gguf)")


def longest_reused_prefix(cached: list[int], prompt: list[int]) -> int:
    """Prompt tokens llama-cpp-python 0.3.36's `Llama.generate` reuses from the KV cache (its own rule:
    the common prefix, less one when the whole prompt is cached, so the last token is recomputed)."""
    n = 0
    for a, b in zip(cached, prompt):
        if a != b:
            break
        n += 1
    if cached and n == len(prompt) and len(cached) == len(prompt):
        return n  # exact hit: sampled without any decode
    return n - 1 if n == len(prompt) else n


class LlamaCppAdapter:
    name = "llama_cpp"

    def __init__(self, config: ExperimentConfig):
        self.config = config
        self.lcfg = config.llama_cpp
        self.llm = None
        self.model_file: Path | None = None
        self.n_gpu_layers = 0
        self.gpu_offload_supported = False

    def load(self) -> None:
        import llama_cpp

        self.model_file = find_gguf(self.config.model)
        self.gpu_offload_supported = bool(llama_cpp.llama_supports_gpu_offload())
        lcfg = self.lcfg
        self.n_gpu_layers = lcfg.n_gpu_layers if lcfg.n_gpu_layers is not None else (
            -1 if self.gpu_offload_supported else 0)
        kwargs: dict[str, Any] = dict(
            model_path=str(self.model_file), n_gpu_layers=self.n_gpu_layers, seed=self.config.random_seed,
            n_ctx=lcfg.n_ctx or max(512, self.config.max_input_tokens + self.config.max_output_tokens),
            n_batch=lcfg.n_batch, flash_attn=lcfg.flash_attn, verbose=False)
        if lcfg.n_threads:  # both: llama.cpp would otherwise evaluate prompts on every core
            kwargs["n_threads"] = kwargs["n_threads_batch"] = lcfg.n_threads
        for key in ("type_k", "type_v"):
            if getattr(lcfg, key):
                kwargs[key] = getattr(llama_cpp, f"GGML_TYPE_{getattr(lcfg, key).upper()}")
        self.llm = llama_cpp.Llama(**kwargs)

    def fit_to_tokens(self, text: str, n_tokens: int) -> str:
        ids = self.llm.tokenize(text.encode("utf-8"), add_bos=False)[:n_tokens]
        return self.llm.detokenize(ids).decode("utf-8", errors="ignore")

    def synchronize(self) -> None:
        """Nothing queued: llama-cpp-python's calls return when the step's work is done."""

    def _sampling(self) -> dict[str, Any]:
        d = self.config.decoding
        if d.strategy == "greedy":
            return {"temp": 0.0, "repeat_penalty": 1.0}
        # min_p 0 and no repeat penalty: the same distribution transformers samples from
        return {"temp": d.temperature, "top_p": d.top_p, "top_k": d.top_k, "min_p": 0.0, "repeat_penalty": 1.0}

    def _one(self, prompt: str) -> GeneratedRequest:
        import llama_cpp

        cfg, llm = self.config, self.llm
        tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=True)[: cfg.max_input_tokens]
        cached = longest_reused_prefix(list(llm._input_ids), tokens) if cfg.prefix_caching and llm.n_tokens else 0
        if not cfg.prefix_caching:
            llm.reset()  # no prefix-cache reuse between requests (see module docstring)
        times: list[float] = []
        finished = "length"
        start = time.perf_counter()
        for token in llm.generate(tokens, **self._sampling()):
            times.append(time.perf_counter())
            if llama_cpp.llama_vocab_is_eog(llm._model.vocab, token) and not cfg.decoding.ignore_eos:
                finished = "eos"
                break
            if len(times) >= cfg.max_output_tokens:
                break
        return GeneratedRequest(input_tokens=len(tokens), output_tokens=len(times), token_times_s=times,
                                finished_by=finished, start_s=start, cached_prompt_tokens=cached)

    def generate_batch(self, prompts: list[str]) -> BatchOutput:
        start = time.perf_counter()
        requests = [self._one(prompt) for prompt in prompts]
        return BatchOutput(start_s=start, end_s=time.perf_counter(), requests=requests)

    def token_timing(self) -> TokenTiming:
        return token_timing("host_clock_per_step", note="llama-cpp-python yields each token to the host after "
                            "sampling it there, so the step's device work (GPU offload included) had finished")

    def effective_parameters(self) -> dict[str, Any]:
        llm = self.llm
        ctx = llm.context_params if llm else None
        return {
            "model_file": str(self.model_file) if self.model_file else None,
            "batching": "sequential",
            "prefix_cache": self.config.prefix_caching,
            "n_gpu_layers": self.n_gpu_layers,
            "gpu_offload_supported": self.gpu_offload_supported,
            "n_ctx": llm.n_ctx() if llm else None,
            "n_batch": ctx.n_batch if ctx else None,
            "n_threads": ctx.n_threads if ctx else None,
            "n_threads_batch": ctx.n_threads_batch if ctx else None,
            "flash_attn": self.lcfg.flash_attn,
            "type_k": self.lcfg.type_k or "f16",
            "type_v": self.lcfg.type_v or "f16",
            "file_type": llm.metadata.get("general.file_type") if llm else None,
            "sampling": self._sampling(),
        }

    def versions(self) -> dict[str, str | None]:
        import llama_cpp

        return {"engine_version": llama_cpp.__version__,
                "device": "cuda" if self.n_gpu_layers and self.gpu_offload_supported else "cpu"}

    def model_config_dict(self) -> dict[str, Any] | None:
        """The GGUF header mapped to the config keys the FLOPs estimate reads."""
        if self.llm is None:
            return None
        meta = self.llm.metadata
        arch = meta.get("general.architecture", "llama")

        def number(key: str) -> int | None:
            value = meta.get(f"{arch}.{key}")
            return int(value) if value is not None else None

        return {"model_type": arch, "hidden_size": number("embedding_length"),
                "num_hidden_layers": number("block_count"), "num_attention_heads": number("attention.head_count"),
                "num_key_value_heads": number("attention.head_count_kv"),
                "intermediate_size": number("feed_forward_length"), "vocab_size": self.llm.n_vocab()}

    def reset_peak_memory(self) -> None:
        """llama.cpp exposes no peak-memory counter to reset."""

    def memory(self) -> MemoryStats:
        weights_mb = os.path.getsize(self.model_file) / 2**20 if self.model_file else None
        return MemoryStats(weights_mb=weights_mb,
                           unavailable_reason="llama.cpp reports no peak memory; weights_mb is the GGUF file size")

    def close(self) -> None:
        if self.llm is not None:
            self.llm.close()
            self.llm = None
