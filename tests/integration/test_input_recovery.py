"""Resume and recovery with the real CLI and the real harness: a resume from another directory, a
refusal that names what changed, a corrupt manifest rebuilt from runs/, unreadable runs warned
about by every results command, and no disk reserve left by a finished study.

One tiny study (2 configurations × 1 cycle) is measured once; each test works on its own copy."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from tests.helpers import run_llem, small_measurement

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def measured(tmp_path_factory, tiny_model_dir):
    """A study started from `start/` with a model path relative to that directory (not to the YAML)."""
    root = tmp_path_factory.mktemp("recovery")
    start = root / "start"
    (start / "models").mkdir(parents=True)
    (start / "models" / "tiny").symlink_to(tiny_model_dir)
    (start / "conf").mkdir()
    study_yaml = start / "conf" / "study.yaml"
    study_yaml.write_text(yaml.safe_dump({
        "name": "recovery", "results_dir": str(root / "results"),
        "base": {"model": "models/tiny", "n_prompts": 2, "max_output_tokens": 4, "measurement": small_measurement()},
        "sweep": {"batch_size": [1, 2]}, "execution": {"n_cycles": 1}}))
    done = run_llem("run", str(study_yaml), cwd=start)
    assert done.returncode == 0, done.stderr
    [study_dir] = list((root / "results").iterdir())
    return root, study_yaml, study_dir


def _copy(measured, tmp_path: Path) -> Path:
    _, _, study_dir = measured
    copy = tmp_path / study_dir.name
    shutil.copytree(study_dir, copy, symlinks=True)
    return copy


def _manifest(study_dir: Path) -> dict:
    return json.loads((study_dir / "manifest.json").read_text())


def test_a_finished_study_keeps_no_disk_reserve(measured):
    _, _, study_dir = measured
    assert _manifest(study_dir)["status"] == "completed"
    assert not (study_dir / ".manifest-reserve").exists()


def test_resume_from_another_directory_resolves_paths_as_the_start_did(measured, tmp_path):
    root, study_yaml, _ = measured
    study_dir = _copy(measured, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    before = _manifest(study_dir)["entries"]
    for args in (("run", "--resume", str(study_dir)), ("run", str(study_yaml), "--resume", str(study_dir))):
        resumed = run_llem(*args, cwd=elsewhere)
        assert resumed.returncode == 0, resumed.stderr
        assert "design changed" not in resumed.stderr
    after = _manifest(study_dir)["entries"]
    assert [e["run_id"] for e in after] == [e["run_id"] for e in before]  # nothing rerun


def test_a_refused_resume_names_what_changed(measured, tmp_path):
    root, study_yaml, _ = measured
    study_dir = _copy(measured, tmp_path)
    changed = tmp_path / "changed.yaml"
    data = yaml.safe_load(study_yaml.read_text())
    data["base"]["max_output_tokens"] = 5
    data["base"]["model"] = str(root / "start" / "models" / "tiny")
    changed.write_text(yaml.safe_dump(data))
    refused = run_llem("run", str(changed), "--resume", str(study_dir), cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr
    assert "max_output_tokens: was 4, now 5" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_corrupt_manifest_is_rebuilt_from_runs(measured, tmp_path):
    study_dir = _copy(measured, tmp_path)
    entries = _manifest(study_dir)["entries"]
    # an abandoned attempt of the first run (no result: cut short) must not count
    first = study_dir / "runs" / entries[0]["run_id"]
    abandoned = first.with_name(first.name + "_r2")
    abandoned.mkdir()
    shutil.copy(first / "experiment.json", abandoned / "experiment.json")
    (study_dir / "manifest.json").write_text('{"schema_version": 1, "study_id": "trunc')

    resumed = run_llem("run", "--resume", str(study_dir))
    assert resumed.returncode == 2 and "llem results rebuild-manifest" in resumed.stderr
    shown = run_llem("results", "show", str(study_dir))
    assert shown.returncode == 2 and "rebuild-manifest" in shown.stderr

    rebuilt = run_llem("results", "rebuild-manifest", str(study_dir))
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert list(study_dir.glob("manifest.json.before-rebuild-*"))
    manifest = _manifest(study_dir)
    assert [(e["run_id"], e["status"], e["result_file"]) for e in manifest["entries"]] == \
        [(e["run_id"], "completed", e["result_file"]) for e in entries]
    shown = run_llem("results", "show", str(study_dir))
    assert shown.returncode == 0 and "2 results read" in shown.stdout, shown.stdout + shown.stderr
    resumed = run_llem("run", "--resume", str(study_dir))
    assert resumed.returncode == 0, resumed.stderr
    assert [e["run_id"] for e in _manifest(study_dir)["entries"]] == [e["run_id"] for e in entries]


def test_export_and_plot_warn_about_unreadable_runs(measured, tmp_path):
    study_dir = _copy(measured, tmp_path)
    broken = study_dir / _manifest(study_dir)["entries"][1]["result_file"]
    broken.write_text("{not json")
    for args in (("export", str(study_dir), "--format", "csv"), ("plot", str(study_dir))):
        out = run_llem("results", *args)
        assert "warning:" in out.stderr and broken.parent.name in out.stderr, (args, out.stdout, out.stderr)
