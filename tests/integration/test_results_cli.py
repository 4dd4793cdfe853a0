"""A real 2-configuration x 3-cycle study of the tiny model, then `llem results` on its directory.

The study runs the real harness through the local runner. When the repository's NVML replay trace
is present, GPU energy comes from it (LLEM_NVML_REPLAY), so the energy figures and the power
timeline are exercised end to end; without it, energy must be null with a reason.
"""
from __future__ import annotations

import json
import math
import statistics
import struct
from pathlib import Path

import pandas as pd
import pytest

from llenergymeasure import run_study
from llenergymeasure.domain import StudyConfig, StudyManifest, StudyResult
from llenergymeasure.domain.estimates import estimate_flops, read_local_model_config
from tests.helpers import REPO_ROOT, run_llem

pytestmark = pytest.mark.slow

REPLAY_TRACE = REPO_ROOT / "tests" / "fixtures" / "traces" / "ci_idle_load.jsonl"
PNG_SIZE = (800, 500)  # results.plots: 8 x 5 in at 100 dpi


@pytest.fixture(scope="session")
def results_study(tmp_path_factory):
    """(StudyResult, model dir) of one real study: batch sizes 1 and 4, 3 cycles, 4 prompts x 8 tokens."""
    from llenergymeasure.models.tiny import make_tiny_model

    root = tmp_path_factory.mktemp("results-study")
    model = make_tiny_model(root / "tiny-llm", seed=0)
    study = StudyConfig.model_validate({
        "name": "results-it", "results_dir": str(root / "results"),
        "base": {"model": str(model), "n_prompts": 4, "max_input_tokens": 16, "max_output_tokens": 8,
                 "measurement": {"baseline": {"duration_s": 0.5}, "save_timeseries": True,
                                 "warmup": {"min_batches": 1, "max_batches": 3, "window": 2}}},
        "sweep": {"batch_size": [1, 4]},
        "execution": {"n_cycles": 3},
    })
    with pytest.MonkeyPatch.context() as mp:
        if REPLAY_TRACE.is_file():
            mp.setenv("LLEM_NVML_REPLAY", str(REPLAY_TRACE))
        result = run_study(study)
    return result, model


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", path
    return struct.unpack(">II", data[16:24])


def test_study_writes_every_output_file(results_study):
    result, _ = results_study
    study_dir = Path(result.study_dir)
    manifest = StudyManifest.model_validate_json((study_dir / "manifest.json").read_text())
    assert manifest.status == "completed" and [e.status for e in manifest.entries] == ["completed"] * 6
    for name in ("study_result.json", "results.csv", "results.parquet", "summary.csv"):
        assert (study_dir / name).is_file(), name
    stored = StudyResult.model_validate_json((study_dir / "study_result.json").read_text())
    assert len(stored.experiments) == 6 and len(stored.configurations) == 2
    assert [c["n_runs"] for c in stored.configurations] == [3, 3]


def test_every_metric_present_and_consistent(results_study):
    result, model = results_study
    model_config = read_local_model_config(str(model))
    for run in result.experiments:
        m = run.metrics
        assert run.output_tokens_total == sum(r.output_tokens for r in run.requests) > 0
        assert run.input_tokens_total == sum(r.input_tokens for r in run.requests) > 0
        for dist in (m.ttft_s, m.e2e_latency_s, m.tpot_s, m.itl_s):
            assert dist.n > 0 and None not in (dist.mean, dist.p50, dist.p90, dist.p99)
            assert dist.p50 <= dist.p90 <= dist.p99
        assert m.output_tokens_per_s * run.window_s == pytest.approx(run.output_tokens_total)
        assert m.total_tokens_per_s * run.window_s == pytest.approx(run.input_tokens_total + run.output_tokens_total)
        assert m.requests_per_s * run.window_s == pytest.approx(run.n_requests)
        flops = estimate_flops(model_config, [r.input_tokens for r in run.requests],
                               [r.output_tokens for r in run.requests])
        assert m.flops.method == "estimate_from_config" and m.flops.total_flops == flops.total_flops
        assert m.memory.weights_mb and m.memory.weights_mb > 0
        assert m.memory.peak_allocated_mb is not None or m.memory.unavailable_reason
        raw, adjusted = run.energy.gpu_energy_raw_j, run.energy.gpu_energy_adjusted_j
        if raw is None:
            assert run.energy.unavailable_reason and m.energy_per_output_token_j is None
            continue
        assert m.energy_per_output_token_j * run.output_tokens_total == pytest.approx(raw)
        assert m.energy_per_request_j * run.n_requests == pytest.approx(raw)
        assert m.energy_wh_per_1000_requests == pytest.approx(raw / 3600 * 1000 / run.n_requests)
        if adjusted is not None:
            assert m.energy_per_output_token_adjusted_j * run.output_tokens_total == pytest.approx(adjusted)
            assert m.energy_wh_per_1000_requests_adjusted == pytest.approx(adjusted / 3600 * 1000 / run.n_requests)
        phase = run.phase_energy
        assert phase.method == "timeline_integration" or phase.unavailable_reason
        if phase.method == "timeline_integration":
            assert phase.prefill_energy_j > 0 and phase.decode_energy_j > 0


def test_summary_statistics_recomputed_independently(results_study):
    from scipy import stats as sps

    result, _ = results_study
    summary = pd.read_csv(Path(result.study_dir) / "summary.csv")
    assert len(summary) == 2 and sorted(summary["config.batch_size"]) == [1, 4]
    for _, row in summary.iterrows():
        runs = [r for r in result.experiments if r.config_hash == row["config_hash"]]
        assert len(runs) == row["n_runs"] == 3
        for metric, getter in (("output_tokens_per_s", lambda r: r.metrics.output_tokens_per_s),
                               ("ttft_s.p50", lambda r: r.metrics.ttft_s.p50),
                               ("e2e_latency_s.p99", lambda r: r.metrics.e2e_latency_s.p99),
                               ("energy_per_output_token_j", lambda r: r.metrics.energy_per_output_token_j)):
            values = [getter(r) for r in runs]
            methods = [r.energy.method for r in runs]
            if metric.startswith("energy") and None not in values and len(set(methods)) > 1:
                # A window shorter than the counter's update period falls back to instant power: the
                # summary never pools methods; it describes the most common one's runs (ties: counter).
                common = min(set(methods), key=lambda m: (-methods.count(m), m != "counter"))
                values = [v for v, m in zip(values, methods) if m == common]
                assert "different methods" in row["flags"]
            if None in values:
                assert math.isnan(row[f"{metric}.mean"])
                continue
            mean, std = statistics.fmean(values), statistics.stdev(values)
            half = sps.t.ppf(0.975, len(values) - 1) * std / math.sqrt(len(values))
            assert row[f"{metric}.mean"] == pytest.approx(mean)
            assert row[f"{metric}.std"] == pytest.approx(std)
            assert (row[f"{metric}.ci95_low"], row[f"{metric}.ci95_high"]) == pytest.approx((mean - half, mean + half))
            if mean == 0:  # e.g. no counter step inside a very short replayed window: CV undefined
                assert math.isnan(row[f"{metric}.cv"])
            else:
                assert row[f"{metric}.cv"] == pytest.approx(std / abs(mean))


def test_results_tables_round_trip(results_study):
    result, _ = results_study
    study_dir = Path(result.study_dir)
    csv = pd.read_csv(study_dir / "results.csv")
    parquet = pd.read_parquet(study_dir / "results.parquet")
    assert list(csv.columns) == list(parquet.columns) and len(csv) == len(parquet) == 6
    by_run = {r.run_id: r for r in result.experiments}
    for frame in (csv, parquet):
        for _, row in frame.iterrows():
            run = by_run[row["run_id"]]
            assert row["config.batch_size"] == run.config.batch_size
            assert row["output_tokens_total"] == run.output_tokens_total
            assert row["output_tokens_per_s"] == pytest.approx(run.metrics.output_tokens_per_s)
            assert row["ttft_s.p90"] == pytest.approx(run.metrics.ttft_s.p90)
            expected = run.metrics.energy_per_output_token_j
            assert (math.isnan(row["energy_per_output_token_j"]) if expected is None
                    else row["energy_per_output_token_j"] == pytest.approx(expected))


def test_results_show_sort_and_errors(results_study, tmp_path):
    result, _ = results_study
    study_dir = result.study_dir
    hashes = {r.config.batch_size: r.config_hash for r in result.experiments}
    proc = run_llem("results", "show", study_dir)
    assert proc.returncode == 0, proc.stderr
    assert "bs=1" in proc.stdout and "bs=4" in proc.stdout and "J/out tok" in proc.stdout
    proc = run_llem("results", "show", study_dir, "--sort", "output_tokens_per_s", "--descending")
    assert proc.returncode == 0, proc.stderr
    confs = {c["config_hash"]: c["metrics"]["output_tokens_per_s"]["mean"] for c in result.configurations}
    fastest, slowest = sorted(confs, key=confs.get, reverse=True)
    assert proc.stdout.index(fastest) < proc.stdout.index(slowest)
    assert set(confs) == set(hashes.values())
    bad_metric = run_llem("results", "show", study_dir, "--sort", "joules")
    assert bad_metric.returncode == 2 and "unknown metric 'joules'" in bad_metric.stderr
    not_study = run_llem("results", "show", str(tmp_path))
    assert not_study.returncode == 2 and "is not a study directory" in not_study.stderr


def test_results_compare_shows_intervals(results_study):
    study_dir = results_study[0].study_dir
    proc = run_llem("results", "compare", study_dir, study_dir, "-m", "output_tokens_per_s", "-m", "ttft_s.p50")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("results-it #1") == 2 and proc.stdout.count("results-it #2") == 2
    assert "[output tokens/s]" in proc.stdout and "± " in proc.stdout
    bad = run_llem("results", "compare", study_dir, "-m", "nope")
    assert bad.returncode == 2 and "unknown metric" in bad.stderr


def test_results_export_formats(results_study, tmp_path):
    study_dir = results_study[0].study_dir
    for fmt in ("csv", "parquet", "json"):
        out = tmp_path / f"runs.{fmt}"
        proc = run_llem("results", "export", study_dir, "--format", fmt, "-o", str(out))
        assert proc.returncode == 0, proc.stderr
        assert str(out) in proc.stdout
    assert len(pd.read_csv(tmp_path / "runs.csv")) == 6
    assert len(pd.read_parquet(tmp_path / "runs.parquet")) == 6
    exported = StudyResult.model_validate_json((tmp_path / "runs.json").read_text())
    assert len(exported.experiments) == 6 and len(exported.configurations) == 2
    proc = run_llem("results", "export", study_dir, "--format", "json", "--table", "summary")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((Path(study_dir) / "export" / "summary.json").read_text())
    assert [c["n_runs"] for c in summary] == [3, 3]
    assert run_llem("results", "export", study_dir, "--format", "xlsx").returncode == 2


def test_results_plot_renders_pngs(results_study, tmp_path):
    result, _ = results_study
    proc = run_llem("results", "plot", result.study_dir, "-o", str(tmp_path / "plots"))
    assert proc.returncode == 0, proc.stderr
    written = sorted((tmp_path / "plots").glob("*.png"))
    names = {p.name for p in written}
    assert "configuration_bars.png" in names
    measured = any(r.energy.gpu_energy_raw_j is not None for r in result.experiments)
    assert ("energy_vs_throughput.png" in names) == measured
    with_timeseries = any((Path(result.study_dir) / "runs" / r.run_id / "timeseries.parquet").is_file()
                          for r in result.experiments)
    assert any(n.startswith("power_timeline_") for n in names) == with_timeseries
    if not measured:
        assert "energy vs throughput skipped" in proc.stdout
    for path in written:
        assert _png_size(path) == PNG_SIZE and path.stat().st_size > 5000
        assert f"wrote {path}" in proc.stdout
