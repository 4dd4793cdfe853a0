"""Parallel studies on one host: fake GPU ids on this CPU machine, real harness, real tiny model.

The fake ids are honest about what they are: plain strings passed to the local harness as
CUDA_VISIBLE_DEVICES (torch sees no CUDA here, so runs stay on CPU and energy stays null with its
reason). What is tested is the machinery: disjoint sets, one manifest writer, same results.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from llenergymeasure import run_study
from llenergymeasure.domain import StudyConfig, StudyManifest
from llenergymeasure.errors import ConfigError
from llenergymeasure.study.observer import StudyObserver
from tests.helpers import quickstart_data, run_llem

pytestmark = pytest.mark.slow


def _study(tiny_model_dir: Path, results_dir: Path, **execution) -> StudyConfig:
    return StudyConfig.model_validate(quickstart_data(tiny_model_dir, results_dir, **execution))


class _Notices(StudyObserver):
    def __init__(self):
        self.messages: list[str] = []

    def notice(self, message: str) -> None:
        self.messages.append(message)


def _shape(study_dir: Path) -> list[tuple]:
    manifest = StudyManifest.model_validate_json((study_dir / "manifest.json").read_text())
    assert manifest.status == "completed"
    return sorted((e.experiment_index, e.cycle, e.status, e.config_hash) for e in manifest.entries)


def test_parallel_cpu_refused_for_measurement_studies(tiny_model_dir, tmp_path):
    with pytest.raises(ConfigError, match="allow_parallel_cpu"):
        run_study(_study(tiny_model_dir, tmp_path, parallel=2, gpus=["fake0", "fake1"]))
    assert not any(tmp_path.iterdir())  # refused before a study directory was created


def test_parallel_two_matches_sequential(tiny_model_dir, tmp_path):
    sequential = run_study(_study(tiny_model_dir, tmp_path / "seq"))
    notices = _Notices()
    parallel = run_study(_study(tiny_model_dir, tmp_path / "par", parallel=2, gpus=["fake0", "fake1"],
                                allow_parallel_cpu=True, experiment_gap_s=0.1, cycle_gap_s=0.2), observer=notices)
    # Gaps are kept per GPU set: every run but the first on each set waits (4 runs on 2 sets: 2 waits).
    waits = [m for m in notices.messages if m.startswith("waiting ")]
    assert len(waits) == 2 and all(m in ("waiting 0.1 s before the next run", "waiting 0.2 s before the next run")
                                   for m in waits), notices.messages
    assert _shape(Path(sequential.study_dir)) == _shape(Path(parallel.study_dir))
    assert parallel.summary.completed == sequential.summary.completed == 4
    used = []
    for rel in parallel.result_files:
        spec = json.loads((Path(parallel.study_dir) / rel).with_name("experiment.json").read_text())
        assert len(spec["gpu_ids"]) == 1  # one disjoint set per run
        used.append(spec["gpu_ids"][0])
    assert set(used) <= {"fake0", "fake1"}

    # Each result says which GPU set produced it; the by-GPU summary compares a configuration across sets.
    assert {r.assigned_gpu_ids[0] for r in parallel.experiments} == set(used)
    by_gpu = pd.read_csv(Path(parallel.study_dir) / "summary_by_gpu.csv")
    assert set(by_gpu["gpu_set"]) == {f"assigned:{g}" for g in used}
    for config_hash, rows in by_gpu.groupby("config_hash"):
        assert rows["n_runs"].sum() == 2  # the two cycles of each configuration, split over the sets
    assert len(parallel.configurations_by_gpu) == len(by_gpu)
    assert list(pd.read_csv(Path(parallel.study_dir) / "results.csv")["gpu_set"].str.startswith("assigned:")) \
        == [True] * 4
    assert sequential.experiments[0].assigned_gpu_ids is None  # nothing assigned: all visible devices
    seq_by_gpu = pd.read_csv(Path(sequential.study_dir) / "summary_by_gpu.csv")
    assert len(seq_by_gpu) == 2 and all(g.startswith("cpu@") for g in seq_by_gpu["gpu_set"])
    compare = run_llem("results", "compare", "--by-gpu", parallel.study_dir)
    assert compare.returncode == 0 and "on assigned:fake" in compare.stdout, compare.stderr


def test_parallel_circuit_breaker_stops_dispatching(tmp_path):
    (tmp_path / "model-not-there").mkdir()  # exists (so runs start) but holds no model: every run fails
    study = _study(tmp_path / "model-not-there", tmp_path, parallel=2, gpus=["fake0", "fake1"],
                   allow_parallel_cpu=True, max_consecutive_failures=2)
    result = run_study(study)
    manifest = StudyManifest.model_validate_json((Path(result.study_dir) / "manifest.json").read_text())
    statuses = [e.status for e in manifest.entries]
    assert manifest.status == "stopped" and "2 runs failed in a row" in manifest.stop_reason
    # Runs already dispatched finish; none starts after the trip, so at least one run stays pending.
    assert statuses.count("failed") >= 2 and statuses.count("pending") >= 1
    assert set(statuses) == {"failed", "pending"}
