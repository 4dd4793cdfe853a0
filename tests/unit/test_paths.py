"""Names that become paths (study name, run slug) stay inside the results directory."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from llenergymeasure.domain import ExperimentConfig, StudyConfig
from llenergymeasure.study.paths import create_study_dir, free_run_id, run_dir_name


@pytest.mark.parametrize("name", ["../escape", "a/b", "/abs", "x\x00y", "", "ünï/../..", "..\\..\\win"])
def test_study_names_with_path_parts_are_refused(name):
    with pytest.raises(ValidationError):
        StudyConfig(name=name)


@pytest.mark.parametrize("model", ["../../../etc/passwd", "/abs/../../x", "org/../../m", "a b/c d", "ünï/..\\.."])
def test_run_directory_names_are_single_safe_components(model, tmp_path):
    cfg = ExperimentConfig(model=model)
    run_id = run_dir_name(1, 1, cfg, cfg.config_hash())
    assert "/" not in run_id and "\\" not in run_id and "\x00" not in run_id and not run_id.startswith(".")
    assert (tmp_path / "runs" / run_id).resolve().parent == (tmp_path / "runs").resolve()


def test_study_dir_is_created_inside_the_results_dir(tmp_path):
    study_dir = create_study_dir(tmp_path / "results", "..")
    assert study_dir.parent == (tmp_path / "results").resolve() and study_dir.name.startswith(".._")


def test_rerun_directories_never_overwrite_an_earlier_attempt(tmp_path):
    (tmp_path / "001_c1_x").mkdir()
    (tmp_path / "001_c1_x_r2").mkdir()
    assert free_run_id(tmp_path, "001_c1_x") == "001_c1_x_r3" and free_run_id(tmp_path, "002") == "002"


@pytest.mark.parametrize("model", ["a b/c\x00d", "m\nx", "m\x1b[2J"])
def test_model_names_with_control_characters_are_refused(model):
    with pytest.raises(ValidationError, match="control character"):
        ExperimentConfig(model=model)
