"""Per-token timing adds no device synchronise inside the measured window (transformers on CPU, for real).

The adapter's `synchronize` is counted (the real one still runs): the timing hook used to call it
on every decoding step, which on CUDA stops the host from queueing the next step's kernels. The
CUDA path is checked the same way on a GPU by tests/gpu/test_token_timing_cuda.py.
"""
from __future__ import annotations

from tests.token_timing_checks import check_batch_timing, load_transformers


def test_transformers_synchronises_at_the_batch_edges_only_and_times_every_token(tiny_model_dir):
    adapter = load_transformers(tiny_model_dir, "cpu")
    calls: list[str] = []
    real_sync = adapter.synchronize

    def counted_sync() -> None:
        calls.append("sync")
        real_sync()

    adapter.synchronize = counted_sync
    try:
        check_batch_timing(adapter, calls)
        timing = adapter.token_timing()
        assert timing.method == "host_clock_per_step" and timing.inside_energy_window is True
    finally:
        adapter.close()
