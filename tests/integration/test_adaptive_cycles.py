"""Adaptive cycles on real runs of the tiny model: skipped runs carry the reason, and a resume keeps them.

On a CPU host no energy is measured, so no interval can narrow: each configuration stops after its
minimum cycles with that reason (the decisions with chosen variance are tests/unit/test_adaptive.py).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from llenergymeasure import run_study
from llenergymeasure.domain import StudyConfig, StudyManifest

pytestmark = pytest.mark.slow


def test_adaptive_stop_is_recorded_and_survives_a_resume(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("LLEM_NVML_REPLAY", raising=False)
    study = StudyConfig.model_validate({
        "name": "adaptive", "results_dir": str(tmp_path / "results"),
        "base": {"model": str(tiny_model_dir), "n_prompts": 2, "max_output_tokens": 4,
                 "measurement": {"baseline": {"enabled": False}, "warmup": {"enabled": False}}},
        "sweep": {"batch_size": [1, 2]},
        "execution": {"n_cycles": 2, "target_ci_pct": 5, "max_cycles": 4}})
    result = run_study(study)
    study_dir = Path(result.study_dir)
    manifest = StudyManifest.model_validate_json((study_dir / "manifest.json").read_text())
    assert [e.status for e in manifest.entries] == ["completed"] * 4 + ["skipped"] * 4
    assert all(e.error_type == "AdaptiveStop" and "not measurable" in e.error_message
               for e in manifest.entries[4:])
    assert [(a["experiment_index"], a["runs"]) for a in manifest.adaptive] == [(0, 2), (1, 2)]
    assert result.status == "completed" and result.summary.completed == 4
    from llenergymeasure.executors import for_study
    from llenergymeasure.study.study_run import StudyRun

    again = StudyRun(study).execute(for_study(study), resume_dir=study_dir)  # nothing left to run
    after = StudyManifest.model_validate_json((study_dir / "manifest.json").read_text())
    assert [e.status for e in after.entries] == [e.status for e in manifest.entries]
    assert again.summary.completed == 4 and after.adaptive == manifest.adaptive


def test_adaptive_cycles_under_the_parallel_executor(tiny_model_dir, tmp_path, monkeypatch):
    """Two runs at once on fake GPU ids: each run is decided as it starts, from the runs finished by then.
    No energy on this host, so each configuration stops as not measurable once 2 runs finished; runs of
    it already in flight then still finish, and the record counts them."""
    monkeypatch.delenv("LLEM_NVML_REPLAY", raising=False)
    study = StudyConfig.model_validate({
        "name": "adaptive-parallel", "results_dir": str(tmp_path / "results"),
        "base": {"model": str(tiny_model_dir), "n_prompts": 2, "max_output_tokens": 4,
                 "measurement": {"baseline": {"enabled": False}, "warmup": {"enabled": False}}},
        "sweep": {"batch_size": [1, 2]},
        "execution": {"n_cycles": 2, "target_ci_pct": 5, "max_cycles": 5, "parallel": 2,
                      "gpus": ["fake0", "fake1"], "allow_parallel_cpu": True}})
    result = run_study(study)
    manifest = StudyManifest.model_validate_json((Path(result.study_dir) / "manifest.json").read_text())
    assert manifest.executor == "local" and result.status == "completed"
    statuses = [e.status for e in manifest.entries]
    assert "pending" not in statuses and set(statuses) == {"completed", "skipped"}
    assert statuses.count("skipped") >= 2  # of 10 planned, at most 2 + 2 in flight per configuration ran
    completed = {i: sum(1 for e in manifest.entries if e.experiment_index == i and e.status == "completed")
                 for i in (0, 1)}
    assert all(2 <= n <= 4 for n in completed.values()), completed
    assert [a["experiment_index"] for a in manifest.adaptive] == [0, 1]
    for a in manifest.adaptive:
        assert "not measurable" in a["reason"] and a["runs"] == completed[a["experiment_index"]]
        decided_after = int(re.search(r"stopped after (\d+) runs", a["reason"]).group(1))
        assert decided_after >= 2 and a["runs"] == decided_after + a.get("runs_in_flight_at_stop", 0)
    assert all(e.error_type == "AdaptiveStop" for e in manifest.entries if e.status == "skipped")
    assert result.summary.completed == sum(completed.values())
