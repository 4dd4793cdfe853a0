"""Runner resolution against a real daemon: forced Docker, several engines, missing images."""
from __future__ import annotations

import pytest

from llenergymeasure.domain import StudyConfig
from llenergymeasure.runners.docker_runner import DockerRunner
from llenergymeasure.runners.resolve import resolve_runners


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    monkeypatch.setenv("LLEM_CONFIG", str(tmp_path / "absent.yaml"))
    for name in ("LLEM_FORCE_DOCKER", "LLEM_RUNNER_TRANSFORMERS", "LLEM_RUNNER_VLLM"):
        monkeypatch.delenv(name, raising=False)


def test_llem_docker_forces_docker_with_the_default_image(monkeypatch, docker_client, llem_image):
    monkeypatch.setenv("LLEM_FORCE_DOCKER", "1")
    plan = resolve_runners(StudyConfig(name="s"), {"transformers"})
    try:
        assert plan.runners == {"transformers": "docker"} and plan.sources["transformers"] == "llem-docker"
        assert isinstance(plan.runner_for("transformers"), DockerRunner)
        assert plan.image_for("transformers") == llem_image
    finally:
        plan.close()


def test_several_engines_go_to_docker_and_an_engine_without_image_is_unavailable(monkeypatch, docker_client,
                                                                                 llem_image):
    # vllm stands for "an engine with no image"; pretend a GPU so the GPU-only check does not decide first
    monkeypatch.setattr("llenergymeasure.runners.gpu_presence.visible_nvidia_gpus", lambda: (1, "pretended"))
    plan = resolve_runners(StudyConfig(name="s"), {"transformers", "vllm"})
    assert plan.runners == {"transformers": "docker", "vllm": "docker"}
    assert len(plan.notices) == 1 and "Docker" in plan.notices[0]
    assert "llem images build vllm" in plan.unavailable["vllm"] and plan.runner_for("vllm") is None
    assert plan.runner_for("transformers") is not None and not plan.warnings
    plan.close()


def test_explicit_mixed_runners_are_respected_with_a_warning(docker_client, llem_image):
    study = StudyConfig(name="s", runners={"transformers": "local", "llama_cpp": "docker"})
    plan = resolve_runners(study, {"transformers", "llama_cpp"})
    assert plan.runners == {"transformers": "local", "llama_cpp": "docker"}
    assert len(plan.warnings) == 1 and "Mixed runners" in plan.warnings[0]
    plan.close()


def test_several_engines_installed_here_run_locally_when_their_images_are_not_built(monkeypatch, docker_client):
    monkeypatch.setattr("llenergymeasure.runners.resolve.engine_installed", lambda engine: True)
    images = {"transformers": "llem-test/absent-transformers:none", "llama_cpp": "llem-test/absent-llama:none"}
    plan = resolve_runners(StudyConfig(name="s", images=images), {"transformers", "llama_cpp"})
    assert plan.runners == {"llama_cpp": "local", "transformers": "local"} and plan.unavailable == {}
    assert len(plan.notices) == 1 and "llem-test/absent-llama:none" in plan.notices[0]
    plan.close()


def test_dry_run_names_each_engines_runner_and_whether_its_image_exists(docker_client, tmp_path):
    from tests.helpers import run_llem

    study = tmp_path / "s.yaml"
    (tmp_path / "m").mkdir()  # a local model directory (a hub id would be looked up on the hub)
    study.write_text(f"name: s\nbase: {{model: {tmp_path / 'm'}}}\nrunners: {{transformers: docker}}\n"
                     "images: {transformers: llem-test/absent-transformers:none}\n")
    proc = run_llem("run", str(study), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert ("transformers: docker (study runners:), image llem-test/absent-transformers:none: "
            "NOT BUILT (llem images build transformers)") in proc.stdout
