"""Adaptive cycles' decisions, driven as the sequential executor drives them, with results of chosen variance.

Each planned run the controller lets through is 'run' by writing a result.json (results_factory: data,
not mocks) and marking the entry completed through the one manifest writer, exactly what
executors/on_host.py records; the controller then decides from those files alone.
"""
from __future__ import annotations

from pathlib import Path

from llenergymeasure.domain import StudyConfig
from llenergymeasure.domain.io import write_json_atomic
from llenergymeasure.study.manifest import ManifestWriter, new_manifest
from llenergymeasure.study.study_run import StudyRun
from tests.unit.results_factory import make_result

# experiment index -> J per run (by cycle): steady converges, noisy does not, costly is dominated by steady.
ENERGY = {0: [100.0, 100.5, 99.5, 100.2, 99.8, 100.1], 1: [50.0, 150.0, 80.0, 200.0, 60.0, 170.0],
          2: [300.0, 330.0, 270.0, 310.0, 290.0, 320.0]}
BATCH = {0: 1, 1: 2, 2: 4}


def _study(tmp_path: Path, energy: dict, execution: dict):
    """The study's run, its planned order, its directory and manifest writer (nothing run yet)."""
    study = StudyConfig.model_validate({"name": "adaptive", "results_dir": str(tmp_path),
                                        "base": {"model": "org/tiny", "n_prompts": 4, "max_output_tokens": 8},
                                        "sweep": {"batch_size": [BATCH[i] for i in sorted(energy)]},
                                        "execution": execution})
    run = StudyRun(study)
    order, planned = run.planned_entries()
    study_dir = tmp_path / "study"
    (study_dir / "runs").mkdir(parents=True)
    writer = ManifestWriter(new_manifest("s", "adaptive", study_dir, study.execution.planned_cycles, "interleaved",
                                         planned), study_dir / "manifest.json")
    return run, order, planned, study_dir, writer


def _complete(study_dir: Path, writer, order, index: int, energy: dict, ran: list) -> None:
    """Run `index` completed with its cycle's energy: result.json written, the manifest updated."""
    exp, cycle = order[index]
    result = make_result(BATCH[exp], cycle, window_s=1.0, energy_j=energy[exp][cycle - 1], experiment_index=exp)
    (study_dir / "runs" / result.run_id).mkdir()
    write_json_atomic(study_dir / "runs" / result.run_id / "result.json", result)
    writer.update(index, status="completed", run_id=result.run_id, result_file=f"runs/{result.run_id}/result.json")
    ran.append((exp, cycle))


def drive(tmp_path: Path, energy=ENERGY, **execution):
    run, order, planned, study_dir, writer = _study(tmp_path, energy, execution)
    ran = []
    for index in run.decided_todo(writer, order, list(range(len(planned))), study_dir):
        _complete(study_dir, writer, order, index, energy, ran)
    return writer.manifest, ran


def test_steady_configuration_stops_early_a_noisy_one_runs_to_the_cap_a_dominated_one_is_raced_out(tmp_path):
    manifest, ran = drive(tmp_path, n_cycles=3, target_ci_pct=2, max_cycles=6)
    runs = {exp: sum(1 for e, _ in ran if e == exp) for exp in ENERGY}
    stops = {a["experiment_index"]: a for a in manifest.adaptive}
    assert runs == {0: 3, 1: 6, 2: 3}
    assert stops[0]["reason"].startswith("converged") and stops[0]["ci95_pct"] <= 2
    assert stops[1]["reason"].startswith("cap: max_cycles (6) reached") and stops[1]["runs"] == 6
    assert stops[2]["reason"].startswith("dominated: bs=1")
    skipped = [e for e in manifest.entries if e.status == "skipped"]
    assert len(skipped) == 6 and {e.error_type for e in skipped} == {"AdaptiveStop"}
    assert {e.experiment_index for e in skipped} == {0, 2}


def test_without_a_target_every_planned_cycle_runs(tmp_path):
    manifest, ran = drive(tmp_path, n_cycles=3)
    assert len(ran) == 9 and manifest.adaptive == []


def test_no_energy_stops_at_the_minimum_with_the_reason(tmp_path):
    manifest, ran = drive(tmp_path, energy={0: [None] * 4, 1: [None] * 4}, n_cycles=2, target_ci_pct=5,
                          max_cycles=4)
    assert len(ran) == 4
    assert all(a["reason"].startswith("not measurable: no run measured energy") for a in manifest.adaptive)


def test_max_cycles_without_a_target_is_refused():
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="execution.max_cycles caps adaptive cycles"):
        StudyConfig.model_validate({"execution": {"max_cycles": 5}})


def test_the_report_says_why_each_configuration_stopped(tmp_path):
    from llenergymeasure.results.pareto_report import planning_notes

    manifest, _ = drive(tmp_path, n_cycles=3, target_ci_pct=2, max_cycles=6)
    html = planning_notes(manifest)
    assert "Adaptive cycles: why each configuration stopped" in html and "converged" in html and "cap: max_cycles" in html


def drive_in_flight(tmp_path: Path, width: int, energy=ENERGY, **execution):
    """As the parallel executor drives the controller: each run is decided (`skip`) as a worker is about to
    start it, while up to `width - 1` earlier runs are still in flight (their results not yet written);
    the oldest in flight finishes before the next decision once `width` are running."""
    run, order, planned, study_dir, writer = _study(tmp_path, energy, execution)
    todo = run.decided_todo(writer, order, list(range(len(planned))), study_dir)
    in_flight, ran = [], []

    def finish_one():
        _complete(study_dir, writer, order, in_flight.pop(0), energy, ran)

    for index in todo.todo:
        if len(in_flight) >= width:
            finish_one()
        if not todo.skip(index):
            in_flight.append(index)
    while in_flight:
        finish_one()
    todo.finish()
    return writer.manifest, ran


def test_decided_as_each_run_starts_with_runs_in_flight_the_record_counts_them(tmp_path):
    manifest, ran = drive_in_flight(tmp_path, width=3, n_cycles=3, target_ci_pct=2, max_cycles=6)
    runs = {exp: sum(1 for e, _ in ran if e == exp) for exp in ENERGY}
    stops = {a["experiment_index"]: a for a in manifest.adaptive}
    assert stops[0]["reason"].startswith("converged") and 3 <= runs[0] < 6
    assert stops[1]["reason"].startswith("cap: max_cycles (6) reached") and runs[1] == 6
    assert stops[2]["reason"].startswith("dominated: bs=1") and runs[2] < 6
    # The record holds every run that finished, those already in flight when it stopped included.
    assert {e: a["runs"] for e, a in stops.items()} == runs
    assert any(a.get("runs_in_flight_at_stop") for a in stops.values())
    for a in stops.values():
        if a.get("runs_in_flight_at_stop"):
            assert "after 3 runs" in a["reason"] and a["runs"] == 3 + a["runs_in_flight_at_stop"]
    statuses = [e.status for e in manifest.entries]
    assert "pending" not in statuses and statuses.count("completed") == len(ran)
    from llenergymeasure.results.pareto_report import planning_notes

    assert "more already in flight then finished" in planning_notes(manifest)
    assert {e.error_type for e in manifest.entries if e.status == "skipped"} == {"AdaptiveStop"}


def test_an_executor_that_does_not_decide_each_run_still_refuses_adaptive_cycles():
    import pytest

    from llenergymeasure.errors import ConfigError
    from llenergymeasure.study.adaptive import refuse_unless_sequential

    study = StudyConfig.model_validate({"execution": {"target_ci_pct": 2}})
    refuse_unless_sequential(study, "parallel", search_in_waves=True, adaptive_cycles=True)  # no error
    with pytest.raises(ConfigError, match=r"execution.target_ci_pct \(adaptive cycles\)"):
        refuse_unless_sequential(study, "some", search_in_waves=True)



def test_slurm_waves_decide_between_waves_as_the_sequential_executor_would(tmp_path):
    """As the Slurm collector drives it: a fresh controller per wave, built from the manifest and the
    result files alone; the first wave takes each configuration to its minimum, then one run each."""
    run, order, _, study_dir, writer = _study(tmp_path, ENERGY, {"n_cycles": 3, "target_ci_pct": 2, "max_cycles": 6})
    waves, ran = [], []
    while True:
        pending = [i for i, e in enumerate(writer.manifest.entries) if e.status == "pending"]
        wave = run.decided_todo(writer, order, pending, study_dir).next_wave()
        if not wave:
            break
        waves.append(len(wave))
        for index in wave:
            _complete(study_dir, writer, order, index, ENERGY, ran)
    assert waves == [9, 1, 1, 1]
    assert {exp: sum(1 for e, _ in ran if e == exp) for exp in ENERGY} == {0: 3, 1: 6, 2: 3}
    stops = {a["experiment_index"]: a["reason"] for a in writer.manifest.adaptive}
    assert stops[0].startswith("converged") and stops[1].startswith("cap: max_cycles (6)") and \
        stops[2].startswith("dominated: bs=1")
    assert [e.status for e in writer.manifest.entries].count("skipped") == 6
