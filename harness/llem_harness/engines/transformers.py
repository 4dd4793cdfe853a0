"""Transformers engine: AutoModelForCausalLM / AutoTokenizer, static batches, left padding.

Per-step timestamps come from a stopping-criterion hook: `generate` calls it once per decoding
step, right after the step's token was chosen. The hook never synchronises the device
(step_clock.py): on CPU it reads perf_counter, on CUDA it records an event that marks when the
step's kernels finished, read after the batch. Under static batching every request of a
batch shares one prefill, so each request's time to first token is the batch's (docs/metrics.md).
"""
from __future__ import annotations

import time
from typing import Any

from llenergymeasure.domain import ExperimentConfig, MemoryStats, TokenTiming, token_timing
from llenergymeasure.domain.config import dtype_name

from .base import BatchOutput, GeneratedRequest
from .step_clock import open_batch, step_clock


class TransformersAdapter:
    name = "transformers"

    def __init__(self, config: ExperimentConfig):
        self.config = config
        self.tcfg = config.transformers
        self.model = None
        self.tokenizer = None
        self.device = "cpu"
        self.dtype_name = "float32"
        self._clock = None

    def load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.manual_seed(self.config.random_seed)
        want = self.tcfg.device
        self.device = "cuda" if (want == "cuda" or (want == "auto" and torch.cuda.is_available())) else "cpu"
        self.dtype_name = self._resolve_dtype(torch)
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # keep harness output to JSON progress lines and logs
        tok = AutoTokenizer.from_pretrained(self.config.model)
        tok.padding_side = "left"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        kwargs: dict[str, Any] = {"dtype": getattr(torch, self.dtype_name)}
        if self.tcfg.attn_implementation:
            kwargs["attn_implementation"] = self.tcfg.attn_implementation
        model = AutoModelForCausalLM.from_pretrained(self.config.model, **kwargs)
        model.to(self.device)
        model.eval()
        if self.tcfg.torch_compile:
            model.forward = torch.compile(model.forward)
        self.model, self.tokenizer = model, tok

    def _resolve_dtype(self, torch: Any) -> str:
        precision = self.config.precision
        if precision != "auto":
            return dtype_name(precision)
        if self.device == "cuda":
            return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        return "float32"

    def fit_to_tokens(self, text: str, n_tokens: int) -> str:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"][:n_tokens]
        return self.tokenizer.decode(ids)

    def synchronize(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()

    def step_hook(self) -> Any:
        """The stopping criterion `generate_batch` passes to `generate`: never stops, marks the step clock once
        per step (bench/measurement_overhead.py times it alone). A stopping criterion rather than a logits
        processor: `generate` calls it right after the step's token was chosen, and its list does not inspect
        each member's signature on every step as the logits-processor list does (tens of microseconds)."""
        import torch
        from transformers import StoppingCriteria

        if self._clock is None:
            self._clock = step_clock(self.device, torch, self.config.max_output_tokens)
        clock = self._clock
        never: dict[tuple, Any] = {}  # one all-False answer per (batch, device), made once

        class _StepClock(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):  # noqa: ANN001 - transformers' signature
                clock.mark()  # never a device synchronise (module docstring)
                key = (input_ids.shape[0], input_ids.device)
                if key not in never:
                    never[key] = torch.zeros(key[0], dtype=torch.bool, device=key[1])
                return never[key]

        return _StepClock()

    def generate_batch(self, prompts: list[str]) -> BatchOutput:
        import torch
        from transformers import StoppingCriteriaList

        cfg = self.config
        hook = self.step_hook()
        clock = self._clock
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, truncation=True,
                             max_length=cfg.max_input_tokens).to(self.device)
        gen_kwargs: dict[str, Any] = {
            "max_new_tokens": cfg.max_output_tokens,
            "do_sample": cfg.decoding.strategy == "sample",
            "pad_token_id": self.tokenizer.pad_token_id,
            "use_cache": self.tcfg.use_cache,
            "stopping_criteria": StoppingCriteriaList([hook]),
        }
        if cfg.decoding.strategy == "sample":
            gen_kwargs.update(temperature=cfg.decoding.temperature, top_p=cfg.decoding.top_p,
                              top_k=cfg.decoding.top_k or None)
        else:  # explicit, so a model's generation_config cannot switch greedy decoding to sampling
            gen_kwargs.update(temperature=None, top_p=None, top_k=None)
        if cfg.decoding.ignore_eos:
            gen_kwargs["min_new_tokens"] = cfg.max_output_tokens
        start = open_batch(clock, self.synchronize)  # origin event, one synchronise, then the host clock
        with torch.inference_mode():
            out = self.model.generate(**enc, **gen_kwargs)
        self.synchronize()
        end = time.perf_counter()
        return BatchOutput(start_s=start, end_s=end,
                           requests=self._split(enc, out, clock.times_s()))

    def token_timing(self) -> TokenTiming:
        if self.device == "cuda":
            return token_timing("cuda_events_per_step", note="transformers stopping-criterion hook")
        return token_timing("host_clock_per_step", note="transformers stopping-criterion hook")

    def _split(self, enc: Any, out: Any, step_times: list[float]) -> list[GeneratedRequest]:
        """Real per-request counts: input = non-pad tokens; output = up to and including EOS."""
        eos_ids = self._eos_ids()
        input_len = enc["input_ids"].shape[1]
        generated = out[:, input_len:].tolist()
        attention = enc["attention_mask"].sum(dim=1).tolist()
        requests = []
        for row, n_in in zip(generated, attention):
            n_out, finished = len(row), "length"
            for pos, token in enumerate(row):
                if token in eos_ids:
                    n_out, finished = pos + 1, "eos"
                    break
            # generate() keeps no cache across calls: every prompt token is computed (0 cached).
            requests.append(GeneratedRequest(input_tokens=int(n_in), output_tokens=n_out,
                                             token_times_s=step_times[:n_out], finished_by=finished,
                                             cached_prompt_tokens=0))
        return requests

    def _eos_ids(self) -> set[int]:
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        return set(eos if isinstance(eos, list) else [eos]) - {None}

    def effective_parameters(self) -> dict[str, Any]:
        model = self.model
        return {
            "device": self.device,
            "dtype": self.dtype_name,
            "attn_implementation": getattr(model.config, "_attn_implementation", None) if model else None,
            "padding_side": "left",
            "batching": "static",
            "use_cache": self.tcfg.use_cache,
            "torch_compile": self.tcfg.torch_compile,
            "n_parameters": sum(p.numel() for p in model.parameters()) if model else None,
        }

    def versions(self) -> dict[str, str | None]:
        import torch
        import transformers

        return {"engine_version": transformers.__version__, "torch_version": torch.__version__,
                "transformers_version": transformers.__version__,
                "cuda_version": torch.version.cuda, "device": self.device,
                "device_name": torch.cuda.get_device_name(0) if self.device == "cuda" else None}

    def model_config_dict(self) -> dict[str, Any] | None:
        return self.model.config.to_dict() if self.model is not None else None

    def reset_peak_memory(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.reset_peak_memory_stats()

    def memory(self) -> MemoryStats:
        weights_mb = None
        if self.model is not None:
            weights_mb = sum(p.numel() * p.element_size() for p in self.model.parameters()) / 2**20
        if self.device != "cuda":
            return MemoryStats(weights_mb=weights_mb,
                               unavailable_reason="peak device memory is reported only on CUDA devices")
        import torch

        return MemoryStats(weights_mb=weights_mb, peak_allocated_mb=torch.cuda.max_memory_allocated() / 2**20)

    def close(self) -> None:
        self.model = None
        self._clock = None
        if self.device == "cuda":
            import torch

            torch.cuda.empty_cache()
