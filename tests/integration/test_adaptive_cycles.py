"""Adaptive cycles on real runs of the tiny model: skipped runs carry the reason, and a resume keeps them.

On a CPU host no energy is measured, so no interval can narrow: each configuration stops after its
minimum cycles with that reason (the decisions with chosen variance are tests/unit/test_adaptive.py).
"""
from __future__ import annotations

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
