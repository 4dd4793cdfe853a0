"""Checks shared by the CPU and the CUDA test of per-token timing (tests/integration, tests/gpu)."""
from __future__ import annotations

from pathlib import Path

OUTPUT_TOKENS = 12


def load_transformers(model_dir: Path, device: str):
    from llem_harness.engines.base import create_adapter
    from llenergymeasure.domain import ExperimentConfig

    config = ExperimentConfig(model=str(model_dir), batch_size=2, max_input_tokens=16,
                              max_output_tokens=OUTPUT_TOKENS, decoding={"ignore_eos": True},
                              transformers={"device": device})
    adapter = create_adapter(config)
    adapter.load()
    return adapter


def check_batch_timing(adapter, sync_calls: list) -> None:
    """One batch: the device is synchronised at the batch's two edges only, and every request has one
    increasing timestamp per output token, between the batch's start and end."""
    prompts = ["the quick brown fox jumps over", "a grey morning in the basement of the"]
    adapter.generate_batch(prompts)  # first call allocates what the clock needs
    sync_calls.clear()
    out = adapter.generate_batch(prompts)
    assert len(sync_calls) == 2, f"{len(sync_calls)} device synchronisations in one batch of {OUTPUT_TOKENS} steps"
    for req in out.requests:
        times = req.token_times_s
        assert req.output_tokens == OUTPUT_TOKENS and len(times) == OUTPUT_TOKENS
        assert out.start_s < times[0] and times[-1] <= out.end_s + 1e-4
        assert all(b > a for a, b in zip(times, times[1:]))
