"""One definition per metric on the real harness with the tiny model: transformers and llama.cpp offline.

GPU readings come from a replayed trace (tests/fixtures/traces/ci_idle_load.jsonl, synthetic: we
have no GPU here) so that phase energy exists and its invariants can be checked; tokens, latencies
and caches are real.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from llenergymeasure import run_study
from llenergymeasure.domain import ExperimentResult, StudyConfig
from tests.helpers import REPO_ROOT, small_measurement

pytestmark = pytest.mark.slow
TRACE = REPO_ROOT / "tests" / "fixtures" / "traces" / "ci_idle_load.jsonl"


def _results(study: StudyConfig) -> list[ExperimentResult]:
    result = run_study(study, runner="local")
    assert result.summary.failed == 0, result.summary
    return [ExperimentResult.model_validate_json((Path(result.study_dir) / rel).read_text())
            for rel in result.result_files]


@pytest.fixture(scope="module")
def offline_runs(tiny_model_dir, tmp_path_factory):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is installed by scripts/setup.sh")
    mp = pytest.MonkeyPatch()
    mp.setenv("LLEM_NVML_REPLAY", str(TRACE))
    try:
        study = StudyConfig.model_validate({
            "name": "semantics", "results_dir": str(tmp_path_factory.mktemp("results")),
            "base": {"model": str(tiny_model_dir), "n_prompts": 8, "batch_size": 4, "max_input_tokens": 16,
                     "max_output_tokens": 8, "decoding": {"ignore_eos": True}, "measurement": small_measurement()},
            "sweep": {"engine": ["transformers", "llama_cpp"]}})
        yield {r.config.engine: r for r in _results(study)}
    finally:
        mp.undo()


def test_every_result_says_its_latency_reference_and_batches_report_consistent_ttft(offline_runs):
    for engine, res in offline_runs.items():
        assert res.latency_reference == "submission" and "handed the request" in res.effective["latency_reference"]
        for b in (0, 1):
            batch = [r for r in res.requests if r.batch_index == b]
            assert len(batch) == 4 and all(r.ttft_s > 0 and r.e2e_latency_s >= r.ttft_s for r in batch)
            if engine == "transformers":  # one static batch, handed together: one shared prefill
                assert len({r.ttft_s for r in batch}) == 1
        if engine == "llama_cpp":
            # One request at a time, each timed from its own hand-over: the requests' [submission, last token]
            # intervals are disjoint, so they fit in the window. Timed from the batch start they would add up
            # to about 2.5 windows (request k would include the k requests before it).
            assert res.effective["batching"] == "sequential"
            assert sum(r.e2e_latency_s for r in res.requests) <= res.window_s


def test_every_result_says_how_per_token_times_were_taken(offline_runs):
    """Taken in the measured workload itself by a method that adds no device synchronise per step: on a
    CPU the host clock right after each step (the step's work is done when it returns)."""
    for engine, res in offline_runs.items():
        timing = res.token_timing
        assert timing is not None, f"{engine}: result.json says nothing about how its token times were taken"
        assert timing.method == "host_clock_per_step" and timing.inside_energy_window is True
        assert "no synchronise" in timing.detail


def test_phase_energy_is_a_partition_of_the_window(offline_runs):
    for res in offline_runs.values():
        phase = res.phase_energy
        assert phase.method == "timeline_integration", phase.unavailable_reason
        assert phase.prefill_energy_j + phase.decode_energy_j <= res.energy.gpu_energy_raw_j * (1 + 1e-9)
        assert phase.prefill_time_s + phase.decode_time_s <= res.window_s + 1e-6
        assert phase.prefill_samples is not None and phase.decode_samples is not None
        assert phase.overlap_attribution


def test_measured_requests_hit_no_cache_llem_primed(offline_runs):
    for res in offline_runs.values():
        cache = res.prompt_cache
        assert cache.prefix_caching is False and res.effective["prefix_caching"] is False
        assert cache.requests_reporting == res.n_requests == 8
        assert cache.cached_prompt_tokens_total == 0 and cache.requests_with_cached_tokens == 0
        assert all(r.cached_prompt_tokens == 0 and not r.exceeds_max_output_tokens for r in res.requests)
        assert not any("prefix cache" in w for w in res.measurement_warnings)


def shared_prefix_prompts(path: Path, n: int) -> Path:
    """Prompts sharing a long first sentence (a system prompt): what a prefix cache reuses."""
    head = "You are a careful assistant who measures the energy of every token with great precision. "
    path.write_text("".join(json.dumps({"prompt": head + f"Question {i}: what is {i} plus {i}?"}) + "\n"
                            for i in range(n)))
    return path


@pytest.mark.parametrize("prefix_caching", [False, True])
def test_llama_cpp_reports_cached_prompt_tokens_only_when_asked(tiny_model_dir, tmp_path, prefix_caching):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is installed by scripts/setup.sh")
    study = StudyConfig.model_validate({
        "name": "cache", "results_dir": str(tmp_path / "results"),
        "base": {"model": str(tiny_model_dir), "engine": "llama_cpp", "n_prompts": 4, "max_input_tokens": 48,
                 "max_output_tokens": 4, "prefix_caching": prefix_caching,
                 "dataset": str(shared_prefix_prompts(tmp_path / "p.jsonl", 4)), "measurement": small_measurement()}})
    (res,) = _results(study)
    cache = res.prompt_cache
    assert cache.prefix_caching is prefix_caching and cache.requests_reporting == 4
    if prefix_caching:  # each request reuses the shared head the previous one left in the KV cache
        assert cache.requests_with_cached_tokens == 4 and cache.cached_prompt_tokens_total > 4 * 10
    else:
        assert cache.cached_prompt_tokens_total == 0
