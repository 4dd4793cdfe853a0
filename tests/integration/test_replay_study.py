"""A study through the GPU code path on a CPU machine: NVML replaced by a replayed trace.

The trace (`tests/fixtures/traces/ci_idle_load.jsonl`) is synthetic and says so; it exercises the
orchestrator's side of measurement: baselines reused across runs, cool-down between runs,
energy normalisations in the results, time series files.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from llenergymeasure import run_study
from llenergymeasure.domain import StudyConfig
from tests.helpers import REPO_ROOT

pytestmark = pytest.mark.slow
TRACE = REPO_ROOT / "tests" / "fixtures" / "traces" / "ci_idle_load.jsonl"


@pytest.fixture(scope="module")
def replay_result(tiny_model_dir, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("LLEM_NVML_REPLAY", str(TRACE))  # inherited by the harness processes
    try:
        study = StudyConfig.model_validate({
            "name": "replay", "results_dir": str(tmp_path_factory.mktemp("results")),
            # A window of about a second: the trace's counter, like NVML's, moves in ~100 ms steps.
            "base": {"model": str(tiny_model_dir), "n_prompts": 32, "max_output_tokens": 64,
                     "decoding": {"ignore_eos": True},
                     "measurement": {"baseline": {"duration_s": 1.0, "reuse_ttl_s": 900},
                                     "warmup": {"min_batches": 1, "max_batches": 2, "window": 2},
                                     "save_timeseries": True}},
            "sweep": {"batch_size": [1, 2]},
            "execution": {"cooldown_to_idle": True, "cooldown_max_s": 1.0, "cooldown_delta_c": 0.5}})
        yield run_study(study)
    finally:
        mp.undo()


def test_energy_is_measured_by_counter_with_consistent_normalisations(replay_result):
    assert replay_result.summary.completed == 2
    for r in replay_result.experiments:
        e = r.energy
        assert e.method == "counter" and e.gpu_energy_raw_j > 0
        assert r.metrics.energy_per_output_token_j * r.output_tokens_total == pytest.approx(e.gpu_energy_raw_j)
        assert r.metrics.energy_per_request_j * r.n_requests == pytest.approx(e.gpu_energy_raw_j)
        # Adjusted subtracts the loaded idle (model resident, before warm-up), reported beside the pre-load one.
        assert r.loaded_idle.kind == "loaded" and r.loaded_idle.fresh is True and r.loaded_idle.n_samples > 0
        assert r.baseline.kind == "pre_load" and e.baseline_subtracted == "loaded_idle"
        expected_adjusted = e.gpu_energy_raw_j - r.loaded_idle.power_mean_w * r.energy.window_s
        assert e.gpu_energy_adjusted_j == pytest.approx(expected_adjusted, rel=1e-6)
        assert r.contention.gpu_process_samples >= 2 and r.contention.gpu_foreign_processes == []
        assert r.sampler.n_samples >= 1
        check = r.energy.cross_check  # the counter beside the integrated instant power of the same window
        assert check.method == "counter_vs_instant_trapezoid" and check.flagged is False
        assert check.per_gpu[0].n_samples >= 2 and check.per_gpu[0].ratio == pytest.approx(1.0, abs=check.per_gpu[0].tolerance)
        assert (Path(replay_result.study_dir) / "runs" / r.run_id / "timeseries.parquet").is_file()
    assert replay_result.summary.gpu_energy_raw_j == pytest.approx(
        sum(r.energy.gpu_energy_raw_j for r in replay_result.experiments))


def test_baseline_is_measured_once_then_reused_with_its_age(replay_result):
    first, second = replay_result.experiments
    assert first.baseline.fresh is True and first.baseline.n_samples > 0
    assert second.baseline.fresh is False and second.baseline.age_s > 0
    assert second.baseline.power_mean_w == first.baseline.power_mean_w


def test_cooldown_wait_is_recorded_in_the_next_run(replay_result):
    first, second = replay_result.experiments
    assert first.thermal.cooldown_wait_s is None
    assert second.thermal.cooldown_wait_s is not None and second.thermal.cooldown_wait_s >= 0


def test_replayed_readings_are_labelled_as_such(replay_result):
    for r in replay_result.experiments:
        assert "synthetic trace" in r.energy.readings_source
        assert any("replayed" in w and "not a measurement of this machine" in w for w in r.measurement_warnings)
