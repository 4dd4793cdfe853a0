"""The GPU validation's time plan (bench/gpu_validation.py): stage shares that fit a short lease, a study
sized to its share, and a stage stopped at its share reported as cut (incomplete), never as failed."""
from __future__ import annotations

import json
import sys
import time

import pytest

from tests.helpers import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "bench"))
from gpu_validation import (RESERVE_S, SHARES_S, STUDY_BATCHES, Budget, stage_outcome,  # noqa: E402
                            study_plan, study_stats)
from gpu_validation_report import rows  # noqa: E402

LEASE_S = 7.5 * 60  # one command of a 15-minute lease, the machine's start excluded


def test_gpu_shares_fit_seven_and_a_half_minutes():
    assert sum(SHARES_S["gpu"].values()) + RESERVE_S <= LEASE_S
    assert list(SHARES_S["gpu"]) == ["model", "pytest_gpu", "device", "window_overhead", "study"]


def test_a_stage_never_gets_a_later_stage_share():
    budget = Budget(450.0, SHARES_S["gpu"])
    later = sum(v for k, v in SHARES_S["gpu"].items() if k != "model")
    assert budget.limit("model") == pytest.approx(450.0 - later - RESERVE_S, abs=0.5)
    budget.end -= 30.0  # the model stage overran by 30 s: the next stage loses it, the study does not
    assert budget.limit("study") == pytest.approx(450.0 - 30.0 - RESERVE_S, abs=0.5)


def test_the_study_window_is_sized_to_its_share():
    calibration = {"new_tokens": 64, "seconds_per_batch": {"1": 0.5, "8": 0.8}}
    plan = study_plan(calibration, 5, SHARES_S["gpu"]["study"], "gpu")
    assert plan["n_runs"] == 5 * len(STUDY_BATCHES) and plan["fits"] and plan["planned_s"] <= plan["share_s"]
    assert plan["window_s"] == 8.0 and plan["n_prompts"] == {"1": 16, "8": 80}   # 8 s / 0.5 s and 0.8 s a batch
    tight = study_plan(calibration, 5, 170.0, "gpu")                              # less room: a shorter window
    assert 5.0 <= tight["window_s"] < 8.0 and tight["fits"]
    hopeless = study_plan(calibration, 20, 150.0, "gpu")                          # the floor, and it says so
    assert hopeless["window_s"] == 5.0 and hopeless["fits"] is False


def test_cut_is_not_failed():
    assert stage_outcome({"rc": 0, "timed_out": False}) == "ok"
    assert stage_outcome({"rc": -15, "timed_out": True}) == "cut"
    assert stage_outcome({"rc": 1, "timed_out": False}) == "failed"


def _study_dir(tmp_path, statuses):
    study = tmp_path / "study" / "gpu-validation_x"
    study.mkdir(parents=True)
    entries = [{"experiment_index": i, "cycle": 1, "config_summary": "c", "status": s,
                **({"error_type": "Interrupted"} if s == "interrupted" else {})} for i, s in enumerate(statuses)]
    (study / "manifest.json").write_text(json.dumps({"entries": entries}))
    return tmp_path


def test_runs_stopped_with_the_stage_are_cut_not_failed(tmp_path):
    out = _study_dir(tmp_path, ["completed"] * 6 + ["interrupted", "pending", "pending", "failed"])
    stats = study_stats(out, {"rc": -15, "timed_out": True})
    assert (stats["completed_runs"], stats["failed_runs"], stats["cut_runs"]) == (6, 1, 3)


def test_the_summary_names_the_cut_stage_and_why():
    report = {"mode": "GPU", "time_plan": {"budget_s": 450, "shares_s": SHARES_S["gpu"]},
              "stages": {"model": {"rc": 0, "timed_out": False, "wall_s": 30.0, "log": "model.log"},
                         "study": {"rc": -15, "timed_out": True, "wall_s": 200.0, "limit_s": 200.0,
                                   "log": "study.log"}},
              "study_plan": {"n_runs": 10, "window_s": 8.0, "planned_s": 185.0, "share_s": 200.0, "fits": True},
              "study": {"per_batch_size": {}, "completed_runs": 7, "failed_runs": 0, "cut_runs": 3,
                        "cross_check": {"runs": 7, "flagged": 1, "ratio_min": 0.99, "ratio_max": 1.3}}}
    table = {r[0]: r for r in rows(report)}
    cut = table["stage study"]
    assert cut[3].startswith("CUT") and "FAIL" not in cut[3] and "7 of 10 runs completed" in cut[1]
    assert "0 failed, 3 cut" in table["study runs"][1]
    assert "study 200.0/200 s" in table["time (used / share)"][1]
    assert table["cross-check in each study run"][3] == "FAIL" and "1 flagged" in table["cross-check in each study run"][1]
    assert [k for k, r in table.items() if r[3] == "FAIL"] == ["cross-check in each study run"]  # the cut is no FAIL
