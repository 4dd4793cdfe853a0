"""Cross-cycle statistics against values computed independently (stdlib `statistics`, t tables)."""
from __future__ import annotations

import math
import statistics

import pytest
from results_factory import make_result

from llenergymeasure.errors import ConfigError
from llenergymeasure.results.stats import check_metric, configuration_stats, describe

# Student's t, two-sided 95%, from published tables (t_{0.975, df}).
T_975 = {1: 12.7062047362, 2: 4.3026527297, 4: 2.7764451052}


def _by_batch(configurations):
    return {c["config"]["batch_size"]: c for c in configurations}


def test_the_interval_does_not_import_scipy_stats():
    """Every study ends by computing these intervals; importing scipy.stats for one t quantile took
    about a second of each study's wall time on a loaded host (bench/orchestration_overhead.py)."""
    import subprocess
    import sys

    code = ("import sys; from llenergymeasure.results.stats import describe; d = describe([2.0, 4.0, 9.0]); "
            "assert d['ci95_half_width'] is not None; print('scipy.stats' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "False"


def test_describe_matches_hand_formulas():
    values = [2.0, 4.0, 9.0]
    stats = describe(values)
    mean = sum(values) / 3
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / 2)
    half = T_975[2] * std / math.sqrt(3)
    assert stats["n"] == 3
    assert stats["mean"] == pytest.approx(mean)
    assert stats["std"] == pytest.approx(std)
    assert stats["ci95_half_width"] == pytest.approx(half, rel=1e-9)
    assert (stats["ci95_low"], stats["ci95_high"]) == pytest.approx((mean - half, mean + half))
    assert stats["cv"] == pytest.approx(std / mean)
    assert stats["cv_exceeds_threshold"] is True
    one = describe([5.0, None, float("nan")])
    assert (one["n"], one["mean"], one["std"], one["ci95_low"], one["cv"]) == (1, 5.0, None, None, None)
    assert describe([])["mean"] is None


def test_energy_per_token_and_throughput_across_cycles():
    energies, windows = [100.0, 110.0, 120.0], [2.0, 2.2, 2.4]
    results = [make_result(1, c + 1, windows[c], energies[c]) for c in range(3)]
    results += [make_result(4, c + 1, 1.0, 50.0 + c) for c in range(3)]
    confs = configuration_stats(results)
    assert [c["config"]["batch_size"] for c in confs] == [1, 4]
    conf = _by_batch(confs)[1]
    assert conf["n_runs"] == 3 and conf["cycles"] == [1, 2, 3]
    # 4 requests x 8 output tokens = 32 output tokens per run
    per_token = [e / 32 for e in energies]
    e = conf["metrics"]["energy_per_output_token_j"]
    assert e["mean"] == pytest.approx(statistics.fmean(per_token))
    assert e["std"] == pytest.approx(statistics.stdev(per_token))
    assert e["ci95_half_width"] == pytest.approx(T_975[2] * statistics.stdev(per_token) / math.sqrt(3))
    assert e["cv"] == pytest.approx(statistics.stdev(per_token) / statistics.fmean(per_token))
    adjusted = [(energies[c] - 10.0 * windows[c]) / 32 for c in range(3)]
    assert conf["metrics"]["energy_per_output_token_adjusted_j"]["mean"] == pytest.approx(statistics.fmean(adjusted))
    throughput = [32 / w for w in windows]
    tput = conf["metrics"]["output_tokens_per_s"]
    assert tput["mean"] == pytest.approx(statistics.fmean(throughput))
    assert tput["std"] == pytest.approx(statistics.stdev(throughput))
    assert conf["metrics"]["total_tokens_per_s"]["mean"] == pytest.approx(statistics.fmean([(32 + 64) / w for w in windows]))
    assert conf["metrics"]["requests_per_s"]["mean"] == pytest.approx(statistics.fmean([4 / w for w in windows]))
    wh = conf["metrics"]["energy_wh_per_1000_requests"]["mean"]
    assert wh == pytest.approx(statistics.fmean([e_j / 3600 * 1000 / 4 for e_j in energies]))
    # ttft of request i in cycle c is 0.01*(i+1)*c; per run p50 of [1,2,3,4]*0.01*c = 0.025*c
    ttft = conf["metrics"]["ttft_s.p50"]
    assert ttft["mean"] == pytest.approx(statistics.fmean([0.025 * c for c in (1, 2, 3)]))
    # numpy 'linear' p90 of 0.01*c*[1,2,3,4] is 0.01*c*3.7
    assert conf["metrics"]["ttft_s.p90"]["mean"] == pytest.approx(statistics.fmean([0.037 * c for c in (1, 2, 3)]))
    assert conf["metrics"]["e2e_latency_s.p99"]["n"] == 3


def test_flags_for_few_runs_and_high_cv():
    results = [make_result(1, 1, 1.0, 100.0), make_result(1, 2, 1.0, 104.0)]
    results += [make_result(2, c + 1, 1.0, e) for c, e in enumerate([100.0, 200.0, 300.0])]
    confs = _by_batch(configuration_stats(results))
    few = confs[1]
    assert any(f.startswith("n=2 < 3") for f in few["flags"])
    e = few["metrics"]["energy_per_output_token_j"]
    assert e["ci95_half_width"] == pytest.approx(T_975[1] * statistics.stdev([100 / 32, 104 / 32]) / math.sqrt(2))
    noisy = confs[2]
    assert not any(f.startswith("n=") for f in noisy["flags"])
    assert noisy["metrics"]["energy_per_output_token_j"]["cv"] == pytest.approx(0.5)
    assert any(f.startswith("energy_per_output_token_j: CV 0.500 > 0.1") for f in noisy["flags"])
    relaxed = _by_batch(configuration_stats(results, cv_threshold=0.6))[2]
    assert not any(f.startswith("energy_per_output_token_j") for f in relaxed["flags"])


def test_unmeasured_energy_has_reason_not_value():
    confs = configuration_stats([make_result(1, c, 1.0, None) for c in (1, 2, 3)])
    e = confs[0]["metrics"]["energy_per_output_token_j"]
    assert e["n"] == 0 and e["mean"] is None
    assert "NVML unavailable" in e["unavailable_reason"]
    assert confs[0]["metrics"]["output_tokens_per_s"]["n"] == 3
    no_baseline = configuration_stats([make_result(1, c, 1.0, 90.0, baseline_w=None) for c in (1, 2, 3)])
    adj = no_baseline[0]["metrics"]["energy_per_output_token_adjusted_j"]
    assert adj["mean"] is None and adj["unavailable_reason"] == "not measured in any run"


def test_check_metric_rejects_unknown_names():
    assert check_metric("ttft_s.p90") == "ttft_s.p90"
    with pytest.raises(ConfigError, match="did you mean 'energy_per_output_token_j'"):
        check_metric("energy_per_output_token")


def test_by_gpu_splits_one_configuration_by_the_gpus_that_ran_it():
    from llenergymeasure.domain.measurement import GpuInfo

    results = [make_result(4, c, 1.0 + 0.1 * c, 2.0 + c) for c in (1, 2, 3, 4)]
    for result in results:  # cycles 1, 3 on one GPU, 2, 4 on another
        result.environment.gpus = [GpuInfo(index=result.cycle % 2, uuid=f"GPU-{result.cycle % 2}aaa")]
    pooled = configuration_stats(results)
    split = configuration_stats(results, by_gpu=True)
    assert len(pooled) == 1 and pooled[0]["n_runs"] == 4 and "gpu_set" not in pooled[0]
    assert [(c["gpu_set"], c["cycles"]) for c in split] == [("GPU-1aaa", [1, 3]), ("GPU-0aaa", [2, 4])]
    assert split[0]["metrics"]["window_s"]["mean"] == pytest.approx(1.2)
    assert split[1]["metrics"]["window_s"]["mean"] == pytest.approx(1.3)
