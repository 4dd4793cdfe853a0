"""A run measures the GPUs it uses, and only those: a study on a replayed 4-GPU node.

The trace (`tests/fixtures/traces/four_gpu_one_busy.jsonl`, synthetic) has GPU 0 busy at 300 W and
GPUs 1-3 idle at 60 W. A one-GPU run must publish GPU 0's energy alone (before, the sequential
executor assigned nothing and the harness summed all four GPUs: 300 + 3 x 60 W). A run given two
GPUs measures both and says that the second stayed idle.
"""
from __future__ import annotations

import pytest

from llenergymeasure import run_study
from llenergymeasure.domain import StudyConfig
from tests.helpers import REPO_ROOT

pytestmark = pytest.mark.slow
TRACE = REPO_ROOT / "tests" / "fixtures" / "traces" / "four_gpu_one_busy.jsonl"
GPU = "GPU-5e5e5e5e-0000-4000-8000-00000000000{}"
COUNTER_STEP_S = 0.02  # the trace's sample period: its counter moves in steps of this many seconds


def assert_mean_power(energy, expected_w: float) -> None:
    """The window's mean power is `expected_w` within the 1 % ripple plus what the counter's steps allow:
    each edge can miss up to one step of energy, a fixed number of joules that a short window (a busy
    CI machine changes its length) divides into a larger share."""
    step_w = 2 * expected_w * 1.01 * COUNTER_STEP_S / energy.window_s
    assert abs(energy.mean_power_w - expected_w) <= 0.01 * expected_w + step_w, (energy.mean_power_w, energy.window_s)


def _study(tiny_model_dir, results_dir, execution: dict) -> StudyConfig:
    return StudyConfig.model_validate({
        "name": "four-gpus", "results_dir": str(results_dir),
        "base": {"model": str(tiny_model_dir), "n_prompts": 48, "max_output_tokens": 64, "batch_size": 4,
                 "decoding": {"ignore_eos": True},
                 "measurement": {"baseline": {"duration_s": 0.5},
                                 "warmup": {"min_batches": 1, "max_batches": 2, "window": 2}}},
        "execution": execution})


@pytest.fixture(scope="module")
def replayed(tiny_model_dir, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("LLEM_NVML_REPLAY", str(TRACE))  # read by llem (which GPUs exist) and by the harness
    mp.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    try:
        one = run_study(_study(tiny_model_dir, tmp_path_factory.mktemp("one"), {}))
        two = run_study(_study(tiny_model_dir, tmp_path_factory.mktemp("two"), {"gpus_per_run": 2}))
        yield one, two
    finally:
        mp.undo()


def test_a_one_gpu_run_publishes_the_busy_gpus_energy_only(replayed):
    one, _ = replayed
    assert one.summary.completed == 1
    r = one.experiments[0]
    assert r.assigned_gpu_ids == [GPU.format(0)]
    assert r.energy.gpu_uuids == [GPU.format(0)]
    assert [g.gpu_uuid for g in r.energy.per_gpu] == [GPU.format(0)]
    # 300 W (1 % ripple): the three idle GPUs (180 W together) are not in it.
    assert r.energy.window_s > 0.3  # the step allowance (< 14 %) still tells 300 W from 480 W
    assert_mean_power(r.energy, 300.0)
    assert r.energy.gpu_energy_raw_j == pytest.approx(r.energy.mean_power_w * r.energy.window_s)
    assert r.metrics.energy_per_output_token_j * r.output_tokens_total == pytest.approx(r.energy.gpu_energy_raw_j)
    assert r.energy.idle_gpu_uuids == []
    assert [g.uuid for g in r.environment.gpus] == [GPU.format(0)]
    assert r.baseline.gpu_uuids == [GPU.format(0)]
    assert not any("stayed idle" in w for w in r.measurement_warnings)


def test_a_two_gpu_run_measures_both_and_flags_the_idle_one(replayed):
    _, two = replayed
    assert two.summary.completed == 1
    r = two.experiments[0]
    assert r.assigned_gpu_ids == [GPU.format(0), GPU.format(1)]
    assert [g.gpu_uuid for g in r.energy.per_gpu] == [GPU.format(0), GPU.format(1)]
    assert_mean_power(r.energy, 360.0)
    assert r.energy.window_s > 0.3  # the step allowance (< 14 %) still tells 360 W from 540 W
    assert r.energy.idle_gpu_uuids == [GPU.format(1)]
    assert any("GPU 1" in w and "stayed idle" in w for w in r.measurement_warnings)
