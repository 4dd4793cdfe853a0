"""Runner and image resolution without a Docker daemon: precedence, user config, refusals."""
from __future__ import annotations

import pytest

from llenergymeasure.domain import StudyConfig
from llenergymeasure.errors import ConfigError, PreFlightError
from llenergymeasure.runners.image_build import default_image
from llenergymeasure.runners.local import LocalRunner
from llenergymeasure.runners.resolve import load_user_config, resolve_runners


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    """No user config, no LLEM_* runner variables from the machine running the tests."""
    monkeypatch.setenv("LLEM_CONFIG", str(tmp_path / "absent.yaml"))
    for name in ("LLEM_FORCE_DOCKER", "LLEM_RUNNER_TRANSFORMERS", "LLEM_RUNNER_VLLM"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def pretend_gpu(monkeypatch):
    """These tests use vllm as an engine that is neither installed nor imaged; this host has no GPU,
    which would mark vllm unavailable first (tested below without this fixture)."""
    monkeypatch.setattr("llenergymeasure.runners.gpu_presence.visible_nvidia_gpus", lambda: (1, "pretended"))


def _user_config(monkeypatch, tmp_path, text: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    monkeypatch.setenv("LLEM_CONFIG", str(path))


def _study(**fields) -> StudyConfig:
    return StudyConfig.model_validate({"name": "s", **fields})


def test_cli_runner_beats_yaml_env_and_user_config(monkeypatch, tmp_path):
    _user_config(monkeypatch, tmp_path, "runners: {transformers: docker}\n")
    monkeypatch.setenv("LLEM_RUNNER_TRANSFORMERS", "docker")
    plan = resolve_runners(_study(runners={"transformers": "docker"}), {"transformers"}, cli_runner="local",
                           docker_reachable=False)
    assert plan.runners == {"transformers": "local"} and plan.sources["transformers"] == "--runner"
    assert isinstance(plan.runner_for("transformers"), LocalRunner)
    assert plan.image_for("transformers") is None
    plan.close()


def test_yaml_beats_environment_which_beats_user_config(monkeypatch, tmp_path):
    _user_config(monkeypatch, tmp_path, "runners: {pytorch: docker}\n")  # alias accepted
    monkeypatch.setenv("LLEM_RUNNER_TRANSFORMERS", "local")
    plan = resolve_runners(_study(runners={"transformers": "local"}), {"transformers"}, docker_reachable=False)
    assert plan.sources["transformers"] == "study runners:"
    plan = resolve_runners(_study(), {"transformers"}, docker_reachable=False)
    assert (plan.runners["transformers"], plan.sources["transformers"]) == ("local", "LLEM_RUNNER_TRANSFORMERS")


def test_user_config_runner_and_image(monkeypatch, tmp_path):
    _user_config(monkeypatch, tmp_path, "runners: {transformers: local}\nimages: {transformers: me/tf:dev}\n")
    plan = resolve_runners(_study(), {"transformers"}, docker_reachable=False)
    assert plan.runners["transformers"] == "local" and plan.sources["transformers"].startswith("user config")
    assert plan.images["transformers"] == "me/tf:dev"
    plan = resolve_runners(_study(images={"transformers": "yaml/tf:1"}), {"transformers"}, docker_reachable=False)
    assert plan.images["transformers"] == "yaml/tf:1"


def test_default_image_tag_carries_the_version():
    plan = resolve_runners(_study(), {"transformers"}, docker_reachable=False)
    assert plan.images["transformers"] == default_image("transformers")
    assert default_image("transformers").startswith("llenergymeasure/transformers:")


def test_auto_runs_an_installed_engine_locally_when_docker_is_absent():
    plan = resolve_runners(_study(), {"transformers"}, docker_reachable=False)
    assert plan.runners == {"transformers": "local"} and plan.unavailable == {}


def test_several_engines_installed_here_run_locally_without_docker(monkeypatch):
    """examples/mixed-engines.yaml on the machine scripts/setup.sh sets up: no daemon, both engines here."""
    monkeypatch.setattr("llenergymeasure.runners.resolve.engine_installed", lambda engine: True)
    plan = resolve_runners(_study(), {"transformers", "llama_cpp"}, docker_reachable=False)
    assert plan.runners == {"llama_cpp": "local", "transformers": "local"} and plan.unavailable == {}
    assert len(plan.notices) == 1 and "Docker is not reachable" in plan.notices[0]
    assert "runners: {llama_cpp: local, transformers: local}" in plan.notices[0]
    assert not plan.warnings


def test_several_engines_without_docker_run_what_is_installed_and_name_the_rest(pretend_gpu):
    plan = resolve_runners(_study(), {"transformers", "vllm"}, docker_reachable=False)
    assert plan.runners["transformers"] == "local" and isinstance(plan.runner_for("transformers"), LocalRunner)
    assert "pip install 'llenergymeasure[vllm]'" in plan.unavailable["vllm"]
    assert "Docker" in plan.unavailable["vllm"] and "not reachable" in plan.unavailable["vllm"]
    plan.close()


def test_an_engine_that_can_run_nowhere_is_unavailable_and_the_rest_goes_on(pretend_gpu):
    plan = resolve_runners(_study(runners={"transformers": "local", "vllm": "local"}), {"transformers", "vllm"},
                           docker_reachable=False)
    assert plan.runner_for("vllm") is None and "pip install 'llenergymeasure[vllm]'" in plan.unavailable["vllm"]
    assert isinstance(plan.runner_for("transformers"), LocalRunner)


def test_a_study_whose_every_engine_is_unavailable_is_refused(pretend_gpu):
    with pytest.raises(PreFlightError, match="no engine of this study can run"):
        resolve_runners(_study(runners={"vllm": "local"}), {"vllm"}, docker_reachable=False)


def test_gpu_only_engines_are_unavailable_on_this_gpu_less_host_with_the_reason():
    """The real check (NVML, then nvidia-smi): this CI host has no NVIDIA GPU."""
    plan = resolve_runners(_study(), {"transformers", "vllm", "tensorrt_llm"}, docker_reachable=False)
    for engine in ("vllm", "tensorrt_llm"):
        assert plan.runner_for(engine) is None
        assert plan.unavailable[engine].startswith(f"{engine} runs only on NVIDIA GPUs and none is visible")
    # the GPU-only engines do not count as "several engines" needing Docker: transformers runs here
    assert plan.runners == {"transformers": "local"} and isinstance(plan.runner_for("transformers"), LocalRunner)
    plan.close()


def test_forced_docker_without_a_daemon_is_refused(monkeypatch):
    monkeypatch.setenv("LLEM_FORCE_DOCKER", "1")
    with pytest.raises(PreFlightError, match="Docker is not reachable"):
        resolve_runners(_study(), {"transformers"}, docker_reachable=False)


def test_invalid_user_config_names_the_file(monkeypatch, tmp_path):
    _user_config(monkeypatch, tmp_path, "runners: {transformers: podman}\n")
    with pytest.raises(ConfigError, match="podman"):
        load_user_config()
    _user_config(monkeypatch, tmp_path, "runners: {nosuchengine: local}\n")
    with pytest.raises(ConfigError, match="unknown engine 'nosuchengine'"):
        load_user_config()
