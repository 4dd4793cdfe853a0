"""Study output files: CSV/Parquet round-trips, summary.csv, study_result.json, loading a study dir."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from results_factory import make_result, write_study_dir

from llenergymeasure.domain import MANIFEST_FILE, StudyResult
from llenergymeasure.errors import ConfigError
from llenergymeasure.results.load import load_study, study_result_of
from llenergymeasure.results.outputs import write_study_outputs
from llenergymeasure.results.tables import run_rows


def _results():
    return ([make_result(1, c, 2.0 + 0.1 * c, 100.0 + c) for c in (1, 2, 3)]
            + [make_result(4, c, 1.0 + 0.05 * c, None) for c in (1, 2, 3)])


def _study(tmp_path, results):
    return StudyResult(study_id="study-1", study_name="tiny", study_dir=str(tmp_path), status="completed",
                       started_at="2024-01-01T00:00:00Z", finished_at="2024-01-01T00:10:00Z", experiments=results)


def _same(a, b) -> bool:
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or (isinstance(b, float) and math.isnan(b))
    if isinstance(a, float) or isinstance(b, float):
        return b is not None and not isinstance(b, str) and math.isclose(float(a), float(b), rel_tol=1e-12)
    return a == b


def test_write_study_outputs_round_trips(tmp_path):
    results = _results()
    study = _study(tmp_path, results)
    files = write_study_outputs(tmp_path, study)
    assert files == ["study_result.json", "results.csv", "results.parquet", "summary.csv", "summary_by_gpu.csv"]
    assert study.result_files == [] and len(study.configurations) == 2
    # The factory's results carry no GPU and no assigned ids: one CPU "GPU set" per configuration.
    by_gpu = pd.read_csv(tmp_path / "summary_by_gpu.csv")
    assert list(by_gpu["n_runs"]) == [c["n_runs"] for c in study.configurations]
    assert all(g.startswith("cpu@") for g in by_gpu["gpu_set"])
    expected = run_rows(results)

    parquet = pd.read_parquet(tmp_path / "results.parquet")
    csv = pd.read_csv(tmp_path / "results.csv")
    for frame in (parquet, csv):
        assert len(frame) == 6
        assert list(frame.columns) == list(expected[0].keys())
        for required in ("run_id", "cycle", "config_hash", "config.batch_size", "config.dataset.source",
                         "energy_per_output_token_j", "energy_per_output_token_adjusted_j", "output_tokens_per_s",
                         "total_tokens_per_s", "requests_per_s", "ttft_s.p50", "e2e_latency_s.p99",
                         "energy_wh_per_1000_requests", "energy.method", "energy.unavailable_reason"):
            assert required in frame.columns, required
    for row, (_, pq_row) in zip(expected, parquet.iterrows()):
        for key, value in row.items():
            assert _same(value, pq_row[key]), (key, value, pq_row[key])
    numeric = [k for k, v in expected[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    for row, (_, csv_row) in zip(expected, csv.iterrows()):
        for key in numeric:
            assert _same(row[key], None if pd.isna(csv_row[key]) else csv_row[key]), key
        assert csv_row["run_id"] == row["run_id"]
    assert csv["energy_per_output_token_j"].iloc[:3].tolist() == pytest.approx([(100.0 + c) / 32 for c in (1, 2, 3)])
    assert csv["energy_per_output_token_j"].iloc[3:].isna().all()

    summary = pd.read_csv(tmp_path / "summary.csv")
    assert summary["config.batch_size"].tolist() == [1, 4]
    assert summary["n_runs"].tolist() == [3, 3]
    stats = study.configurations[0]["metrics"]["energy_per_output_token_j"]
    assert summary.loc[0, "energy_per_output_token_j.mean"] == pytest.approx(stats["mean"])
    assert summary.loc[0, "energy_per_output_token_j.ci95_low"] == pytest.approx(stats["ci95_low"])
    assert math.isnan(summary.loc[1, "energy_per_output_token_j.mean"])

    stored = StudyResult.model_validate(json.loads((tmp_path / "study_result.json").read_text()))
    assert len(stored.experiments) == 6 and stored.configurations == json.loads(json.dumps(study.configurations))


def test_empty_study_still_writes_files(tmp_path):
    files = write_study_outputs(tmp_path, _study(tmp_path, []))
    assert all((tmp_path / f).is_file() for f in files)
    assert list(pd.read_csv(tmp_path / "results.csv").columns)[:2] == ["run_id", "study_id"]


def test_load_study_and_errors(tmp_path):
    study_dir = write_study_dir(tmp_path, _results())
    # A run directory the manifest does not list (an abandoned attempt) is never read, even broken.
    (study_dir / "runs" / "999_abandoned").mkdir()
    (study_dir / "runs" / "999_abandoned" / "result.json").write_text("{not json")
    data = load_study(study_dir)
    assert [r.cycle for r in data.results] == [1, 2, 3, 1, 2, 3] and data.warnings == []
    # A completed entry whose result file is unreadable is skipped with a warning naming it.
    first = sorted((study_dir / "runs").iterdir())[0]
    good = (first / "result.json").read_text()
    (first / "result.json").write_text("{not json")
    data = load_study(study_dir)
    assert len(data.results) == 5
    assert len(data.warnings) == 1 and first.name in data.warnings[0]
    (first / "result.json").write_text(good)
    data = load_study(study_dir)
    rebuilt = study_result_of(data)
    assert rebuilt.study_name == "tiny" and len(rebuilt.experiments) == 6
    with pytest.raises(ConfigError, match="study directories inside it: tiny_20240101T000000"):
        load_study(tmp_path)
    with pytest.raises(ConfigError, match="no such directory"):
        load_study(tmp_path / "missing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / MANIFEST_FILE).write_text("[]")
    with pytest.raises(ConfigError, match="not a readable study manifest"):
        load_study(tmp_path / "bad")
