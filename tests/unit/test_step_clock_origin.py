"""The CUDA step clock's origin: recorded, then the one opening synchronise, then the host clock.

No GPU here: the CUDA event clock runs on a stand-in for `torch.cuda.Event` that logs when it is
recorded, and the real transformers adapter generates a real batch on the tiny model with that
clock, so the order of the batch edge is checked in the adapter's own code path. What a GPU adds
(the origin's execution time against the host reading) is not observable on a CPU.
"""
from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from llenergymeasure.domain import ExperimentConfig
from llem_harness.engines.step_clock import CudaEventStepClock


class _Event:
    def __init__(self, log):
        self.log, self.recorded_s = log, None

    def record(self):
        self.recorded_s = time.perf_counter()
        self.log.append(("record", self.recorded_s))

    def elapsed_time(self, other):  # ms, as torch reports it
        return (other.recorded_s - self.recorded_s) * 1000.0


def _fake_cuda(log):
    return SimpleNamespace(cuda=SimpleNamespace(Event=lambda enable_timing: _Event(log)))


@pytest.fixture(scope="module")
def adapter(tiny_model_dir):
    from llem_harness.engines.transformers import TransformersAdapter

    a = TransformersAdapter(ExperimentConfig(model=str(tiny_model_dir), max_output_tokens=4, max_input_tokens=16,
                                             decoding={"ignore_eos": True}))
    a.load()
    return a


def test_the_origin_is_recorded_before_the_batchs_one_synchronise(adapter, monkeypatch):
    log: list[tuple[str, float]] = []
    adapter.step_hook()  # builds the host clock; replaced by the CUDA clock below
    adapter._clock = CudaEventStepClock(_fake_cuda(log), adapter.config.max_output_tokens)
    monkeypatch.setattr(adapter, "synchronize", lambda: log.append(("sync", time.perf_counter())))
    out = adapter.generate_batch(["a prompt", "another prompt"])
    kinds = [kind for kind, _ in log]
    # Origin event, the one opening synchronise, the steps' events, the closing synchronise.
    assert kinds[:2] == ["record", "sync"] and kinds[-1] == "sync" and kinds.count("sync") == 2
    origin_s, opening_sync_s = log[0][1], log[1][1]
    assert origin_s <= opening_sync_s <= out.start_s  # the host clock is read after the synchronise
    # Token times are the origin's host time plus each step event's offset from the origin.
    steps = [t for kind, t in log[2:-1] if kind == "record"]
    assert len(steps) == 4
    assert out.requests[0].token_times_s == pytest.approx([out.start_s + (t - origin_s) for t in steps])
