"""A study with a replayed run and a contended run: `llem results show` flags both, by run id.

Real: the study loop, the local runner, the harness, the tiny model, `llem results show` as a user
runs it. Cycle 1 reads a recorded GPU trace (LLEM_NVML_REPLAY, set only for that run); cycle 2 runs
beside a real CPU-bound process that is not ours (foreign load). Neither run is comparable with a
clean measurement: the statistics must say so wherever they appear, naming the runs.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from llenergymeasure import run_study
from llenergymeasure.domain import StudyConfig
from llenergymeasure.study.observer import StudyObserver
from tests.foreign_load import start_foreign_spinner, stop
from tests.helpers import REPO_ROOT, run_llem

pytestmark = pytest.mark.slow
TRACE = REPO_ROOT / "tests" / "fixtures" / "traces" / "ci_idle_load.jsonl"


class ReplayThenContend(StudyObserver):
    """Cycle 1: replayed readings. Cycle 2: no replay, a foreign spinner for the whole run."""

    def __init__(self):
        self.spinner: int | None = None

    def run_started(self, position, n_runs, entry) -> None:
        if entry.cycle == 1:
            os.environ["LLEM_NVML_REPLAY"] = str(TRACE)
        else:
            os.environ.pop("LLEM_NVML_REPLAY", None)
            self.spinner = start_foreign_spinner(300)

    def run_finished(self, entry, outcome) -> None:
        if self.spinner is not None:
            stop(self.spinner)
            self.spinner = None


@pytest.fixture(scope="module")
def study_dir(tiny_model_dir, tmp_path_factory):
    study = StudyConfig.model_validate({
        "name": "comparable", "results_dir": str(tmp_path_factory.mktemp("results")),
        "base": {"model": str(tiny_model_dir), "n_prompts": 8, "max_output_tokens": 32,
                 "decoding": {"ignore_eos": True},
                 "measurement": {"baseline": {"duration_s": 0.5}, "warmup": {"enabled": False}}},
        "execution": {"n_cycles": 2, "cycle_order": "sequential"}})
    observer = ReplayThenContend()
    saved = os.environ.get("LLEM_NVML_REPLAY")
    try:
        result = run_study(study, observer=observer)
    finally:
        if observer.spinner is not None:
            stop(observer.spinner)
        os.environ.pop("LLEM_NVML_REPLAY", None)
        if saved is not None:
            os.environ["LLEM_NVML_REPLAY"] = saved
    assert result.summary.completed == 2
    return Path(result.study_dir), {r.cycle: r for r in result.experiments}


def test_the_runs_are_what_the_test_made_them(study_dir):
    _, runs = study_dir
    assert not runs[1].energy.readings_source.startswith("NVML")  # a replayed trace
    assert runs[2].energy.readings_source is None and runs[2].contention.significant


def test_results_show_flags_the_replayed_and_the_contended_run(study_dir):
    path, runs = study_dir
    proc = run_llem("results", "show", str(path))
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())
    assert "REPLAYED readings" in out and "[replayed]" in out
    line = next(line for line in proc.stdout.splitlines() if "not comparable with a clean measurement" in line)
    assert f"{runs[1].run_id} (replayed readings" in line and f"{runs[2].run_id} (" in line
    assert "contended" in line.split(runs[2].run_id, 1)[1]


def test_exclude_flagged_leaves_them_out_and_says_which(study_dir):
    path, runs = study_dir
    proc = run_llem("results", "show", str(path), "--exclude-flagged")
    assert proc.returncode == 0, proc.stderr
    line = next(line for line in proc.stdout.splitlines() if "left out of these statistics" in line)
    assert runs[1].run_id in line and runs[2].run_id in line


def test_the_csv_tables_carry_the_labels(study_dir):
    import csv

    path, runs = study_dir
    rows = {r["run_id"]: r for r in csv.DictReader((path / "results.csv").open())}
    assert rows[runs[1].run_id]["readings"] == "replayed"
    assert "contended" in rows[runs[2].run_id]["comparability_flags"]
    (summary,) = csv.DictReader((path / "summary.csv").open())
    assert summary["readings"] == "replayed"
    assert set(summary["flagged_runs"].split(",")) == {runs[1].run_id, runs[2].run_id}
    assert "not comparable" in summary["flags"]


def test_compare_labels_the_replayed_figures_and_names_the_runs(study_dir):
    path, runs = study_dir
    proc = run_llem("results", "compare", str(path))
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())
    assert "[replayed]" in out and "REPLAYED readings" in out and "not comparable" in out
