"""--dry-run learns from runs measured on this host: a real run writes the duration history, and
the dry run of the same study then estimates from it and says so. Runner and image per engine."""
from __future__ import annotations

import json
import re

import pytest
import yaml

from llenergymeasure import run_study
from tests.helpers import quickstart_data, run_llem

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def measured(tiny_model_dir, tmp_path_factory):
    """One real run of the quickstart's first configuration, with its own history file."""
    work = tmp_path_factory.mktemp("history")
    data = quickstart_data(tiny_model_dir, work / "results", n_cycles=1)
    data["sweep"] = {"batch_size": [4]}
    study_yaml = work / "study.yaml"
    study_yaml.write_text(yaml.safe_dump(data))
    history = work / "run-history.jsonl"
    mp = pytest.MonkeyPatch()
    mp.setenv("LLEM_HISTORY", str(history))
    try:
        result = run_study(str(study_yaml))
    finally:
        mp.undo()
    assert result.summary.completed == 1
    return study_yaml, history, data


def test_a_completed_run_is_recorded_with_its_measured_durations(measured):
    _, history, _ = measured
    lines = [json.loads(line) for line in history.read_text().splitlines()]
    assert len(lines) == 1
    record = lines[0]
    assert record["engine"] == "transformers" and record["runner"] == "local" and record["batch_size"] == 4
    assert record["wall_s"] > record["window_s"] > 0 and record["output_tokens"] > 0


def test_the_dry_run_estimates_from_the_run_measured_here_and_says_so(measured):
    study_yaml, history, _ = measured
    wall_s = json.loads(history.read_text().splitlines()[0])["wall_s"]
    proc = run_llem("run", str(study_yaml), "--dry-run", env={"LLEM_HISTORY": str(history)})
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.strip().startswith("#0:") and "per run" in ln)
    assert "median of 1 runs of this configuration here" in line
    assert int(re.search(r"(\d+) s per run", line).group(1)) == round(wall_s)
    assert "1 runs measured on this host" in proc.stdout
    assert "transformers: local (auto); engine installed here: yes" in proc.stdout


def test_a_larger_workload_is_scaled_from_the_measured_run(measured, tmp_path):
    study_yaml, history, data = measured
    data = {**data, "base": {**data["base"], "n_prompts": 80}}
    bigger = tmp_path / "bigger.yaml"
    bigger.write_text(yaml.safe_dump(data))
    proc = run_llem("run", str(bigger), "--dry-run", env={"LLEM_HISTORY": str(history)})
    assert proc.returncode == 0, proc.stderr
    record = json.loads(history.read_text().splitlines()[0])
    expected = (record["wall_s"] - record["window_s"]) + record["window_s"] / record["output_tokens"] * 80 * 16
    line = next(ln for ln in proc.stdout.splitlines() if "per run" in ln)
    assert "scaled from 1 runs of this model here at batch size 4" in line
    assert int(re.search(r"(\d+) s per run", line).group(1)) == pytest.approx(expected, abs=1)


def test_without_history_the_estimate_says_it_is_assumed(measured, tmp_path):
    study_yaml, _, _ = measured
    proc = run_llem("run", str(study_yaml), "--dry-run", env={"LLEM_HISTORY": str(tmp_path / "none.jsonl")})
    assert proc.returncode == 0, proc.stderr
    assert "assumed constants (no run of this engine measured on this host yet)" in proc.stdout
    assert "partly assumed" in proc.stdout
