"""The search's loop, driven as the sequential executor drives it, on a landscape whose optimum is known.

Every run the search lets through is 'run' by writing its result.json (results_factory: data, not
mocks) and marking the entry completed through the one manifest writer; the search decides from those
files and the manifest alone, so a fresh controller over the same directory continues it (resume).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from llenergymeasure.domain import StudyConfig
from llenergymeasure.domain.io import write_json_atomic
from llenergymeasure.study.manifest import ManifestWriter, new_manifest
from llenergymeasure.study.search import HISTORY_FILE
from llenergymeasure.study.study_run import StudyRun
from tests.unit.results_factory import make_result

pytest.importorskip("optuna")
BATCH, TOKENS = [1, 2, 4, 8], [4, 8, 16, 32]
N_REQUESTS = 4


def joules_per_token(bs: int, tokens: int) -> float:
    """A smooth bowl with its minimum at batch_size=4, max_output_tokens=16."""
    return 1.0 + (math.log2(bs) - 2.3) ** 2 + 0.3 * (math.log2(tokens) - 4.2) ** 2


def make_study(tmp_path: Path, **search) -> StudyConfig:
    return StudyConfig.model_validate({
        "name": "search", "results_dir": str(tmp_path),
        "base": {"model": "org/tiny", "n_prompts": N_REQUESTS},
        "sweep": {"batch_size": BATCH, "max_output_tokens": TOKENS},
        "search": {"objective": "energy_per_output_token", "budget": {"runs": 8}, **search}})


def drive(study: StudyConfig, study_dir: Path, stop_after: int | None = None):
    """Run what the search proposes; `stop_after` runs: stop as a kill would (no cleanup)."""
    run = StudyRun(study)
    order, planned = run.planned_entries()
    path = study_dir / "manifest.json"
    if path.is_file():
        from llenergymeasure.domain import StudyManifest

        manifest = StudyManifest.model_validate_json(path.read_text())
    else:
        (study_dir / "runs").mkdir(parents=True)
        manifest = new_manifest("s", "search", study_dir, 1, "interleaved", planned)
    writer = ManifestWriter(manifest, path)
    todo = [i for i, e in enumerate(manifest.entries) if e.status == "pending"]
    ran = []
    for index in run.decided_todo(writer, order, todo, study_dir):
        exp, cycle = order[index]
        bs, tokens = BATCH[exp // len(TOKENS)], TOKENS[exp % len(TOKENS)]
        result = make_result(bs, cycle, window_s=1.0, energy_j=joules_per_token(bs, tokens) * tokens * N_REQUESTS,
                             output_tokens=tokens, n_requests=N_REQUESTS, experiment_index=exp)
        (study_dir / "runs" / result.run_id).mkdir()
        write_json_atomic(study_dir / "runs" / result.run_id / "result.json", result)
        writer.update(index, status="completed", run_id=result.run_id, result_file=f"runs/{result.run_id}/result.json")
        ran.append(exp)
        if stop_after is not None and len(ran) >= stop_after:
            break
    return writer.manifest, ran


def test_search_finds_the_grid_optimum_with_half_the_runs(tmp_path):
    manifest, ran = drive(make_study(tmp_path), tmp_path / "study")
    history = json.loads((tmp_path / "study" / HISTORY_FILE).read_text())
    assert len(ran) == 8 and len(set(ran)) == 8  # 8 of 16 configurations, none twice
    assert history["best"]["params"] == {"batch_size": 4, "max_output_tokens": 16}
    assert history["stopped"].startswith("budget: 8 runs used of 8")
    assert [t["status"] for t in history["trials"]] == ["measured"] * 8
    skipped = [e for e in manifest.entries if e.status == "skipped"]
    assert len(skipped) == 8 and {e.error_type for e in skipped} == {"NotProposed"}
    assert manifest.search["best"] == history["best"]


def test_a_search_cut_short_continues_where_it_stopped_with_the_same_proposals(tmp_path):
    _, whole = drive(make_study(tmp_path), tmp_path / "whole")
    _, first = drive(make_study(tmp_path), tmp_path / "cut", stop_after=3)  # as a kill -9 after 3 runs
    history = json.loads((tmp_path / "cut" / HISTORY_FILE).read_text())
    assert history["stopped"] is None and len(history["trials"]) == 3
    _, rest = drive(make_study(tmp_path), tmp_path / "cut")  # the resume
    assert first + rest == whole


def test_an_slo_constrains_the_best(tmp_path):
    # e2e p90 of make_result grows with nothing but the cycle: a target below it makes everything infeasible.
    manifest, ran = drive(StudyConfig.model_validate({**make_study(tmp_path).model_dump(), "slo": {"e2e_p90_s": 1e-6}}),
                          tmp_path / "study")
    history = json.loads((tmp_path / "study" / HISTORY_FILE).read_text())
    assert history["best"] is None and all(t["feasible"] is False for t in history["trials"])


def test_search_refuses_explicit_experiments_and_adaptive_cycles():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="the search space is the sweep"):
        StudyConfig.model_validate({"experiments": [{"batch_size": 1}], "search": {}})
    with pytest.raises(ValidationError, match="remove execution.target_ci_pct"):
        StudyConfig.model_validate({"sweep": {"batch_size": [1, 2]}, "search": {},
                                    "execution": {"target_ci_pct": 2}})


def test_waves_propose_several_trials_at_once_and_stop_at_the_budget(tmp_path):
    from llenergymeasure.domain import StudyManifest  # noqa: F401 (the manifest is read back as the collector does)

    study = make_study(tmp_path, trials_per_wave=3)
    run = StudyRun(study)
    order, planned = run.planned_entries()
    study_dir = tmp_path / "study"
    (study_dir / "runs").mkdir(parents=True)
    writer = ManifestWriter(new_manifest("s", "search", study_dir, 1, "interleaved", planned),
                            study_dir / "manifest.json")
    from llenergymeasure.study.search import SearchTodo

    waves = []
    while True:
        todo = [i for i, e in enumerate(writer.manifest.entries) if e.status == "pending"]
        wave = SearchTodo(run, writer, order, todo, study_dir).next_wave(3)  # a fresh controller: as the collector
        if not wave:
            break
        waves.append(len(wave))
        for index in wave:
            exp, cycle = order[index]
            bs, tokens = BATCH[exp // len(TOKENS)], TOKENS[exp % len(TOKENS)]
            result = make_result(bs, cycle, 1.0, joules_per_token(bs, tokens) * tokens * N_REQUESTS,
                                 output_tokens=tokens, n_requests=N_REQUESTS, experiment_index=exp)
            (study_dir / "runs" / result.run_id).mkdir()
            write_json_atomic(study_dir / "runs" / result.run_id / "result.json", result)
            writer.update(index, status="completed", run_id=result.run_id,
                          result_file=f"runs/{result.run_id}/result.json")
    assert waves == [3, 3, 2]  # the budget of 8 runs leaves 2 for the last wave
    history = json.loads((study_dir / HISTORY_FILE).read_text())
    assert history["stopped"].startswith("budget: 8 runs used of 8") and len(history["trials"]) == 8
    assert sum(e.status == "skipped" for e in writer.manifest.entries) == 8


def test_the_hours_budget_counts_from_the_study_start(tmp_path):
    from llenergymeasure.study.search import SearchTodo

    study = StudyConfig.model_validate({**make_study(tmp_path).model_dump(), "search": {"budget": {"hours": 1}}})
    run = StudyRun(study)
    order, planned = run.planned_entries()
    (tmp_path / "study").mkdir()
    manifest = new_manifest("s", "search", tmp_path / "study", 1, "interleaved", planned)
    manifest.created_at = "2026-01-01T00:00:00.000+00:00"  # started long ago: the budget is spent
    writer = ManifestWriter(manifest, tmp_path / "study" / "manifest.json")
    assert list(SearchTodo(run, writer, order, list(range(len(planned))), tmp_path / "study")) == []
    assert writer.manifest.search["stopped"].startswith("budget: ") and " h of 1 h" in writer.manifest.search["stopped"]


def test_the_report_tells_the_course_of_the_search(tmp_path):
    from llenergymeasure.results.pareto_report import planning_notes

    manifest, _ = drive(make_study(tmp_path), tmp_path / "study")
    html = planning_notes(manifest)
    assert "Search (tpe, objective energy_per_output_token): 8 of 16 configurations measured in 8 runs" in html
    assert "stopped: budget: 8 runs used of 8" in html
