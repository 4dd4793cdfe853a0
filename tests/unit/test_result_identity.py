"""Every result proves it belongs to its manifest entry: study id, run id, cycle, configuration and hash
are compared on every read, a mismatch is skipped with a warning naming both, and one file never
counts for two entries (`llem results`, resume's completed runs, `rebuild-manifest`)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from llenergymeasure.domain import RunSpec
from llenergymeasure.domain.io import write_json_atomic
from llenergymeasure.results.load import load_study
from llenergymeasure.study.rebuild import rebuild_manifest
from tests.helpers import run_llem
from tests.unit.results_factory import make_result, write_study_dir


def _two_cycles(tmp_path: Path) -> Path:
    return write_study_dir(tmp_path, [make_result(1, 1, 1.0, 10.0), make_result(1, 2, 1.0, 20.0)])


def _edit_manifest(study_dir: Path, edit) -> None:
    manifest = json.loads((study_dir / "manifest.json").read_text())
    edit(manifest)
    (study_dir / "manifest.json").write_text(json.dumps(manifest))


def test_an_entry_pointed_at_another_cycles_result_does_not_count_it_twice(tmp_path):
    study_dir = _two_cycles(tmp_path)
    first = "runs/001_c1_tiny_bs1/result.json"
    _edit_manifest(study_dir, lambda m: m["entries"][1].update(result_file=first))
    data = load_study(study_dir)
    assert [(r.run_id, r.cycle) for r in data.results] == [("001_c1_tiny_bs1", 1)]
    [warning] = data.warnings
    assert "001_c2_tiny_bs1" in warning and "001_c1_tiny_bs1" in warning  # names both


def test_one_file_never_counts_for_two_entries_even_with_matching_fields(tmp_path):
    study_dir = _two_cycles(tmp_path)
    _edit_manifest(study_dir, lambda m: m["entries"].append(dict(m["entries"][0])))
    data = load_study(study_dir)
    assert len(data.results) == 2 and any("already counted" in w for w in data.warnings)


def test_a_result_copied_from_another_study_is_not_a_configuration_of_this_one(tmp_path):
    study_dir = _two_cycles(tmp_path)
    foreign = make_result(4, 1, 1.0, 99.0, study_id="other-study")
    (study_dir / "runs" / foreign.run_id).mkdir()
    write_json_atomic(study_dir / "runs" / foreign.run_id / "result.json", foreign)

    def add(manifest):
        entry = dict(manifest["entries"][0], run_id=foreign.run_id, experiment_index=foreign.experiment_index,
                     config_hash=foreign.config_hash, result_file=f"runs/{foreign.run_id}/result.json")
        manifest["entries"].append(entry)

    _edit_manifest(study_dir, add)
    data = load_study(study_dir)
    assert {r.study_id for r in data.results} == {"study-1"} and len(data.results) == 2
    assert any("other-study" in w and "'study-1'" in w for w in data.warnings)
    shown = run_llem("results", "show", str(study_dir))
    assert shown.returncode == 0 and "other-study" in shown.stdout and "2 results read" in shown.stdout
    exported = run_llem("results", "export", str(study_dir), "--format", "csv")
    assert exported.returncode == 0 and "other-study" in exported.stderr
    assert (study_dir / "export" / "runs.csv").read_text().count("\n") == 3  # header + the study's own two runs


def _write_specs(study_dir: Path) -> None:
    for result_path in study_dir.glob("runs/*/result.json"):
        result = json.loads(result_path.read_text())
        spec = RunSpec(study_id=result["study_id"], run_id=result["run_id"], experiment_index=result["experiment_index"],
                       cycle=result["cycle"], config=result["config"], config_hash=result["config_hash"])
        write_json_atomic(result_path.parent / "experiment.json", spec)


def test_rebuild_manifest_keeps_the_real_result_when_a_foreign_run_directory_collides(tmp_path):
    study_dir = _two_cycles(tmp_path)
    _write_specs(study_dir)
    other = write_study_dir(tmp_path / "other", [make_result(1, 1, 1.0, 77.0, study_id="other-study")])
    _write_specs(other)
    # The other study's run, copied in under the name of a later attempt of this study's run.
    shutil.copytree(other / "runs" / "001_c1_tiny_bs1", study_dir / "runs" / "001_c1_tiny_bs1_r2")
    path, notes = rebuild_manifest(study_dir)
    manifest = json.loads(path.read_text())
    files = {(e["experiment_index"], e["cycle"]): e["result_file"] for e in manifest["entries"]}
    assert files == {(1, 1): "runs/001_c1_tiny_bs1/result.json", (1, 2): "runs/001_c2_tiny_bs1/result.json"}
    assert manifest["study_id"] == "study-1"
    assert any("001_c1_tiny_bs1_r2" in n and "other-study" in n for n in notes)
    data = load_study(study_dir)
    assert [r.window_s for r in data.results] == [1.0, 1.0] and {r.study_id for r in data.results} == {"study-1"}
    assert sorted(r.energy.gpu_energy_raw_j for r in data.results) == [10.0, 20.0]
