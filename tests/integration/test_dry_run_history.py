"""--dry-run learns from runs measured on this host: a real run writes the duration history, and
the dry run of the same study then estimates from it and says so. Runner and image per engine."""
from __future__ import annotations

import json
import re
import time

import pytest
import yaml

from llenergymeasure import run_study
from tests.helpers import quickstart_data, run_llem

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def measured(tiny_model_dir, tmp_path_factory):
    """One real run of the quickstart's first configuration, with its own history file, and the
    study's wall time as its caller saw it."""
    work = tmp_path_factory.mktemp("history")
    data = quickstart_data(tiny_model_dir, work / "results", n_cycles=1)
    data["sweep"] = {"batch_size": [4]}
    study_yaml = work / "study.yaml"
    study_yaml.write_text(yaml.safe_dump(data))
    history = work / "run-history.jsonl"
    mp = pytest.MonkeyPatch()
    mp.setenv("LLEM_HISTORY", str(history))
    try:
        start = time.monotonic()
        result = run_study(str(study_yaml))
        study_wall_s = time.monotonic() - start
    finally:
        mp.undo()
    assert result.summary.completed == 1
    return study_yaml, history, data, study_wall_s


def _records(history):
    lines = [json.loads(line) for line in history.read_text().splitlines()]
    return [r for r in lines if r.get("kind") != "study"], [r for r in lines if r.get("kind") == "study"]


def _dry_run(path, history):
    proc = run_llem("run", str(path), "--dry-run", env={"LLEM_HISTORY": str(history)})
    assert proc.returncode == 0, proc.stderr
    total = float(re.search(r"Estimated study wall time: [\d.]+ min \((\d+) s;", proc.stdout).group(1))
    return proc.stdout, total


def test_a_completed_run_is_recorded_with_its_measured_durations(measured):
    _, history, _, study_wall_s = measured
    runs, studies = _records(history)
    assert len(runs) == 1 and len(studies) == 1
    record = runs[0]
    assert record["engine"] == "transformers" and record["runner"] == "local" and record["batch_size"] == 4
    assert record["wall_s"] > record["window_s"] > 0 and record["output_tokens"] > 0
    assert record["warmup_batches"] >= 1 and 0 < record["warmup_s"] < record["wall_s"]
    assert record["measurement"]["warmup"]["max_batches"] == 2
    assert 0 < studies[0]["overhead_s"] < study_wall_s - record["wall_s"] + 0.5


def test_the_dry_run_of_the_same_study_estimates_its_measured_wall_time(measured):
    """The estimate counts the run as measured here and the study's own overhead (pre-flight,
    manifest, outputs): it matches the wall time the study took, within a second or 10 %."""
    study_yaml, history, _, study_wall_s = measured
    wall_s = _records(history)[0][0]["wall_s"]
    out, total = _dry_run(study_yaml, history)
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("#1:") and "per run" in ln)
    assert "median of 1 runs of this configuration here" in line
    assert int(re.search(r"(\d+) s per run", line).group(1)) == round(wall_s)
    assert "1 runs measured on this host" in out and "median of 1 studies here" in out
    assert abs(total - study_wall_s) <= max(1.0, 0.1 * study_wall_s), (total, study_wall_s)
    assert "transformers: local (auto); engine installed here: yes" in out


def test_cycles_gaps_and_overhead_add_to_the_estimate(measured, tmp_path):
    study_yaml, history, data, _ = measured
    runs, studies = _records(history)
    data = {**data, "execution": {**data["execution"], "n_cycles": 2, "cycle_gap_s": 7}}
    longer = tmp_path / "longer.yaml"
    longer.write_text(yaml.safe_dump(data))
    out, total = _dry_run(longer, history)
    assert "gaps 7 s" in out
    assert total == pytest.approx(2 * runs[0]["wall_s"] + 7 + studies[0]["overhead_s"], abs=1)


def test_a_larger_workload_is_scaled_part_by_part_from_the_measured_run(measured, tmp_path):
    study_yaml, history, data, _ = measured
    data = {**data, "base": {**data["base"], "n_prompts": 80}}
    bigger = tmp_path / "bigger.yaml"
    bigger.write_text(yaml.safe_dump(data))
    out, _ = _dry_run(bigger, history)
    r = _records(history)[0][0]
    per_token = r["window_s"] / r["output_tokens"]
    startup = r["wall_s"] - r["window_s"] - r["warmup_s"] - r["baseline_s"]
    expected = startup + r["baseline_s"] + r["warmup_batches"] * per_token * 4 * 16 + per_token * 80 * 16
    line = next(ln for ln in out.splitlines() if "per run" in ln)
    assert "scaled from 1 runs of this model here at batch size 4" in line
    assert f"({r['warmup_batches']} batches)" in line
    assert int(re.search(r"(\d+) s per run", line).group(1)) == pytest.approx(expected, abs=1)


def test_without_history_the_estimate_says_it_is_assumed(measured, tmp_path):
    study_yaml, _, _, _ = measured
    out, _ = _dry_run(study_yaml, tmp_path / "none.jsonl")
    assert "assumed constants (no run of this engine measured on this host yet)" in out
    assert "partly assumed" in out and "no study measured here yet" in out
