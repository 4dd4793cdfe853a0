"""Cycle statistics never pool runs measured by different methods; each metric counts its own n."""
from __future__ import annotations

import statistics

import pytest

from llenergymeasure.domain import CpuEnergy
from llenergymeasure.results.stats import configuration_stats
from results_factory import make_result


def _with_method(result, method: str, subtracted: str | None = "loaded_idle"):
    result.energy.method = method
    result.energy.baseline_subtracted = subtracted
    return result


def test_counter_and_integrated_runs_are_not_pooled():
    counter = [_with_method(make_result(1, c, 1.0, e), "counter") for c, e in ((1, 100.0), (2, 102.0), (3, 104.0))]
    integrated = [_with_method(make_result(1, c, 1.0, e), "integrated_instant_power") for c, e in ((4, 300.0), (5, 310.0))]
    conf = configuration_stats(counter + integrated)[0]
    raw = conf["metrics"]["energy.gpu_energy_raw_j"]
    assert raw["n"] == 3 and raw["method"] == "counter"
    assert raw["mean"] == pytest.approx(102.0)  # pooled, it would be 183.2 over n=5
    assert raw["by_method"]["integrated_instant_power"]["n"] == 2
    assert raw["by_method"]["integrated_instant_power"]["mean"] == pytest.approx(305.0)
    assert raw["mixed_methods"] == {"counter": 3, "integrated_instant_power": 2}
    assert any(f.startswith("energy.gpu_energy_raw_j: runs measured by different methods") for f in conf["flags"])
    assert "energy_per_output_token_j" in conf["mixed_method_metrics"]
    # Metrics that are not energy pool every run.
    assert conf["metrics"]["window_s"]["n"] == 5 and "method" not in conf["metrics"]["window_s"]
    # The largest group wins; a tie goes to the counter.
    tie = configuration_stats(counter[:2] + integrated)[0]["metrics"]["energy.gpu_energy_raw_j"]
    assert tie["method"] == "counter" and tie["n"] == 2


def test_adjusted_figures_do_not_pool_different_subtracted_idles():
    runs = [_with_method(make_result(1, c, 1.0, 100.0 + c), "counter", "loaded_idle") for c in (1, 2, 3)]
    runs.append(_with_method(make_result(1, 4, 1.0, 100.0, baseline_w=50.0), "counter", "pre_load_idle"))
    conf = configuration_stats(runs)[0]
    adjusted = conf["metrics"]["energy.gpu_energy_adjusted_j"]
    assert adjusted["method"] == "counter-loaded_idle" and adjusted["n"] == 3
    assert adjusted["mean"] == pytest.approx(statistics.fmean([91.0, 92.0, 93.0]))
    assert adjusted["by_method"]["counter-pre_load_idle"]["mean"] == pytest.approx(50.0)
    assert conf["metrics"]["energy.gpu_energy_raw_j"]["n"] == 4  # raw energy: one method, all runs


def test_few_runs_flag_counts_each_metrics_own_n():
    runs = [make_result(1, 1, 1.0, 100.0), make_result(1, 2, 1.0, 101.0), make_result(1, 3, 1.0, None)]
    conf = configuration_stats(runs)[0]
    assert conf["n_runs"] == 3 and conf["few_runs"] is False
    energy = conf["metrics"]["energy_per_output_token_j"]
    assert energy["n"] == 2 and energy["few_runs"] is True
    assert any(f.startswith("energy_per_output_token_j: n=2 < 3") for f in conf["flags"])
    assert "energy_per_output_token_j" in conf["few_runs_metrics"]
    assert conf["metrics"]["output_tokens_per_s"]["few_runs"] is False
    assert "output_tokens_per_s" not in conf["few_runs_metrics"]
    # A run without energy is counted as its own group, not silently dropped.
    four = configuration_stats(runs + [make_result(1, 4, 1.0, 102.0)])[0]
    energy = four["metrics"]["energy_per_output_token_j"]
    assert energy["n"] == 3 and energy["mixed_methods"] == {"counter": 3, "unavailable": 1}
    assert "by_method" not in energy  # only one measured method: nothing to choose between
    assert any(f.startswith("energy_per_output_token_j: runs measured by different methods (counter: 3, "
                            "unavailable: 1)") for f in four["flags"])


def test_cpu_package_energy_per_token_is_its_own_metric_with_its_reason():
    runs = [make_result(1, c, 1.0, 100.0) for c in (1, 2, 3)]
    for r, joules in zip(runs, (3.2, 3.3, 3.4)):
        r.cpu_energy = CpuEnergy(method="rapl", package_energy_j=joules, package_energy_per_output_token_j=joules / 32)
    metric = configuration_stats(runs)[0]["metrics"]["cpu_energy.package_energy_per_output_token_j"]
    assert metric["n"] == 3 and metric["method"] == "rapl"
    assert metric["mean"] == pytest.approx(3.3 / 32)
    unread = [make_result(1, c, 1.0, 100.0) for c in (1, 2, 3)]
    for r in unread:
        r.cpu_energy = CpuEnergy(unavailable_reason="RAPL unavailable: energy_uj unreadable (PermissionError)")
    metric = configuration_stats(unread)[0]["metrics"]["cpu_energy.package_energy_per_output_token_j"]
    assert metric["n"] == 0 and "PermissionError" in metric["unavailable_reason"]


def test_loaded_idle_and_contention_are_columns_of_the_run_table():
    from llenergymeasure.domain import BaselineResult, ContentionResult
    from llenergymeasure.results.tables import run_row

    result = make_result(1, 1, 1.0, 100.0)
    result.loaded_idle = BaselineResult(kind="loaded", power_mean_w=80.0, power_std_w=1.0, n_samples=20,
                                        method="counter_delta", gpu_uuids=["GPU-1"])
    result.contention = ContentionResult(host_cpu_foreign_cores=0.8, significant=True, reasons=["busy host"])
    row = run_row(result)
    assert row["loaded_idle.power_mean_w"] == 80.0 and row["loaded_idle.kind"] == "loaded"
    assert "loaded_idle.gpu_uuids" not in row
    assert row["contention.significant"] is True and row["contention.host_cpu_foreign_cores"] == 0.8
    assert row["contention.reasons"] == '["busy host"]'


def test_how_latencies_were_taken_is_in_every_run_row():
    """A row read alone (results.csv) says what its TTFT means and whether the prompt cache served it."""
    from llenergymeasure.domain import PromptCache
    from llenergymeasure.domain.token_timing import token_timing
    from llenergymeasure.results.tables import run_row

    result = make_result(1, 1, 1.0, 100.0)
    result.latency_reference = "request_submission"
    result.harness_start = "forked"
    result.prompt_cache = PromptCache(prefix_caching=True, source="engine", requests_reporting=4,
                                      requests_with_cached_tokens=3, cached_prompt_tokens_total=96)
    result.token_timing = token_timing("host_clock_per_step")
    row = run_row(result)
    assert row["latency_reference"] == "request_submission" and row["harness_start"] == "forked"
    assert row["prompt_cache.requests_with_cached_tokens"] == 3 and row["prompt_cache.prefix_caching"] is True
    assert row["token_timing.method"] == "host_clock_per_step" and row["token_timing.inside_energy_window"] is True
    assert "engine_import_s" in row
