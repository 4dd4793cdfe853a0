"""Docker runner pieces that need no daemon: log line splitting, GPU requests, mounts, kwargs."""
from __future__ import annotations

import os

import pytest

from llenergymeasure.domain import CONTAINER_RUN_DIR, DockerConfig, ExperimentConfig, RunSpec
from llenergymeasure.errors import PreFlightError
from llenergymeasure.runners.base import RunRequest
from llenergymeasure.runners.docker_runner import GPUS_ISOLATED_ENV, DockerRunner
from llenergymeasure.runners.docker_support import (device_requests, input_paths, parse_extra_mount,
                                                    split_lines)


def _spec(model: str, engine: str = "transformers", gpu_ids=None, **config) -> RunSpec:
    cfg = ExperimentConfig(model=model, engine=engine, **config)
    return RunSpec(study_id="s", run_id="001_c1_x", experiment_index=0, cycle=1, config=cfg,
                   config_hash=cfg.config_hash(), gpu_ids=gpu_ids, runner="docker")


def test_log_chunks_are_reassembled_into_whole_lines():
    chunks = [b'{"event": "st', b'age"}\nplain line\n{"ev', b'ent": "done"}\n', b"tail without newline"]
    assert list(split_lines(chunks)) == ['{"event": "stage"}\n', "plain line\n", '{"event": "done"}\n',
                                         "tail without newline\n"]


def test_gpu_requests_are_exactly_the_assigned_ones_all_by_default_and_none_without_gpu():
    (assigned,) = device_requests(["2", "GPU-abc"], gpu_present=False)
    assert assigned["DeviceIDs"] == ["2", "GPU-abc"] and assigned["Capabilities"] == [["gpu"]]
    (every,) = device_requests(None, gpu_present=True)
    assert every["Count"] == -1
    assert device_requests(None, gpu_present=False) == []
    assert device_requests([], gpu_present=True) == []


def test_extra_mounts_are_validated(tmp_path):
    assert parse_extra_mount(f"{tmp_path}:/data:ro") == (str(tmp_path), "/data", True)
    assert parse_extra_mount(f"{tmp_path}:/data") == (str(tmp_path), "/data", False)
    with pytest.raises(PreFlightError, match="does not exist"):
        parse_extra_mount(f"{tmp_path}/missing:/data")
    with pytest.raises(PreFlightError, match="must be absolute"):
        parse_extra_mount(f"{tmp_path}:data")
    with pytest.raises(PreFlightError, match="HOST:CONTAINER"):
        parse_extra_mount(f"{tmp_path}:/data:rx")


def test_only_existing_absolute_model_and_dataset_paths_are_mounted(tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "x"}\n')
    spec = _spec(str(tmp_path), dataset={"source": "jsonl", "path": str(prompts)})
    assert input_paths(spec) == [str(tmp_path), str(prompts)]
    assert input_paths(_spec("org/hub-model")) == []
    assert input_paths(_spec(str(tmp_path / "missing"))) == []  # the harness reports it, not Docker


def test_container_kwargs_for_assigned_gpus_and_an_engine_needing_shm(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    runner = DockerRunner(docker_config=DockerConfig(model_cache_dir=str(tmp_path / "cache")))
    spec = _spec("org/model", engine="vllm", gpu_ids=["1"])
    kwargs = runner.container_kwargs(RunRequest(run_dir=run_dir, spec=spec, timeout_s=10, silence_timeout_s=None))
    assert [r["DeviceIDs"] for r in kwargs["device_requests"]] == [["1"]]
    assert kwargs["environment"][GPUS_ISOLATED_ENV] == "1"
    assert kwargs["shm_size"] == "8g" and "ipc_mode" not in kwargs
    assert kwargs["user"] == f"{os.getuid()}:{os.getgid()}" and kwargs["cap_drop"] == ["ALL"]
    assert kwargs["image"] == "llenergymeasure/vllm:" + __import__("llenergymeasure").__version__
    assert kwargs["command"][-1] == CONTAINER_RUN_DIR
    runner.close()


@pytest.mark.parametrize("target", ["/usr/local/lib/python3.11/site-packages/llem_harness", "/opt/venv", "/usr",
                                    "/", "/tmp/llem_harness", "/tmp", "/llem/run", "/etc/passwd", "/usr/../usr/lib"])
def test_extra_mounts_over_the_images_install_paths_are_refused(tmp_path, target):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="docker.extra_mounts entry .* mounts over /"):
        DockerConfig(extra_mounts=[f"{tmp_path}:{target}:ro"])


def test_extra_mounts_are_recorded_for_the_result_and_read_write_ones_warned(tmp_path):
    from llem_harness.host_info import base_environment

    ro, rw = tmp_path / "ro", tmp_path / "rw"
    ro.mkdir(), rw.mkdir()
    config = DockerConfig(model_cache_dir=str(tmp_path / "cache"), extra_mounts=[f"{ro}:/data:ro", f"{rw}:/mnt/out"])
    runner = DockerRunner(docker_config=config)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    kwargs = runner.container_kwargs(RunRequest(run_dir=run_dir, spec=_spec("org/model"), timeout_s=10,
                                                silence_timeout_s=None))
    recorded = [f"{ro}:/data:ro", f"{rw}:/mnt/out:rw"]
    env = kwargs["environment"]
    assert __import__("json").loads(env["LLEM_EXTRA_MOUNTS"]) == recorded
    old = os.environ.get("LLEM_EXTRA_MOUNTS")
    os.environ["LLEM_EXTRA_MOUNTS"] = env["LLEM_EXTRA_MOUNTS"]
    try:  # the harness (inside the container) records what the runner named
        assert base_environment().extra_mounts == recorded
    finally:
        os.environ.pop("LLEM_EXTRA_MOUNTS") if old is None else os.environ.__setitem__("LLEM_EXTRA_MOUNTS", old)
    from llenergymeasure.runners.docker_support import read_write_mount_warnings

    (warning,) = read_write_mount_warnings(config.extra_mounts)
    assert f"{rw} is mounted read-write" in warning and "':ro'" in warning
def test_replayed_gpus_are_not_requested_from_docker(tmp_path, monkeypatch):
    """On a GPU-less host with a replayed trace the sequential executor assigns the trace's GPUs;
    a container cannot be given them (it would fail to start asking the NVIDIA runtime)."""
    monkeypatch.setenv("LLEM_NVML_REPLAY", str(tmp_path / "trace.jsonl"))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    runner = DockerRunner(docker_config=DockerConfig(model_cache_dir=str(tmp_path / "cache")))
    runner._gpu_present = False
    spec = _spec("org/model", gpu_ids=["GPU-5e5e5e5e-0000-4000-8000-000000000000"])
    kwargs = runner.container_kwargs(RunRequest(run_dir=run_dir, spec=spec, timeout_s=10, silence_timeout_s=None))
    assert kwargs.get("device_requests") in (None, []) and GPUS_ISOLATED_ENV not in kwargs["environment"]
    runner.close()
