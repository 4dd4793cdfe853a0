"""Per-token times on CUDA come from events, with no host synchronise per decoding step (pytest -m gpu).

Run by bench/gpu_validation.py's `pytest -m gpu` stage; skips without CUDA torch and a GPU.
Counts `torch.cuda.synchronize` calls during one batch (the real call still runs): two, at the
batch's edges, whatever the number of steps.
"""
from __future__ import annotations

import pytest

from tests.token_timing_checks import check_batch_timing, load_transformers

pytestmark = pytest.mark.gpu


def test_cuda_token_times_come_from_events_without_a_sync_per_step(request, monkeypatch):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device visible to torch")
    adapter = load_transformers(request.getfixturevalue("tiny_model_dir"), "cuda")  # made only when it will run
    calls: list[str] = []
    real_sync = torch.cuda.synchronize

    def counted_sync(*args, **kwargs) -> None:
        calls.append("sync")
        real_sync(*args, **kwargs)

    monkeypatch.setattr(torch.cuda, "synchronize", counted_sync)
    try:
        check_batch_timing(adapter, calls)
        timing = adapter.token_timing()
        assert timing.method == "cuda_events_per_step" and timing.inside_energy_window is True
    finally:
        adapter.close()
