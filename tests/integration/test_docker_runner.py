"""DockerRunner on a real daemon with the real image and the real tiny model (one container per run).

Each test writes experiment.json by hand, as the study loop does, and drives `execute` directly.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import pytest

from llenergymeasure.domain import CONTAINER_RUN_DIR, DockerConfig, ExperimentResult, HarnessError
from llenergymeasure.errors import PreFlightError
from llenergymeasure.runners.base import RunRequest, collect_outcome
from llenergymeasure.runners.docker_runner import CONTAINER_LOG_FILE, DockerRunner
from llenergymeasure.runners.docker_support import (CONTRACT_LABEL, CONTAINER_HF_HOME, KEPT_PREFIX, LABEL_PID,
                                                    LABEL_RUN, cleanup_orphans)

pytestmark = pytest.mark.slow

SLOW_WORKLOAD = {"n_prompts": 500, "max_output_tokens": 256, "decoding": {"ignore_eos": True}}


def _containers_of(client, run_id: str) -> list:
    return client.containers.list(all=True, filters={"label": f"{LABEL_RUN}={run_id}"})


def _request(run_dir, spec, timeout_s=120.0, silence_timeout_s=60.0, on_event=lambda e: None):
    return RunRequest(run_dir=run_dir, spec=spec, timeout_s=timeout_s, silence_timeout_s=silence_timeout_s,
                      on_event=on_event, labels={"llem.test": "docker-runner"})


def test_container_runs_least_privileged_with_the_specified_mounts_and_labels(
        docker_client, llem_image, tiny_model_dir, make_run, tmp_path):
    prompts = tmp_path / "data" / "prompts.jsonl"
    prompts.parent.mkdir()
    prompts.write_text("\n".join(json.dumps({"prompt": f"hello number {i}"}) for i in range(4)) + "\n")
    extra = tmp_path / "extra"
    extra.mkdir()
    cache = tmp_path / "hf-cache"
    run_dir, spec = make_run(str(tiny_model_dir), dataset={"source": "jsonl", "path": str(prompts)})
    runner = DockerRunner(docker_config=DockerConfig(model_cache_dir=str(cache), shm_size="256m",
                                                     extra_mounts=[f"{extra}:/data/extra:ro"]))
    inspected: dict = {}
    events: list[dict] = []

    def on_event(event: dict) -> None:
        events.append(event)
        if not inspected:  # the container is running: look at it from outside, as `docker inspect` would
            found = _containers_of(docker_client, spec.run_id)
            if found:
                inspected.update(docker_client.api.inspect_container(found[0].id))

    runner.preflight([spec])
    info = runner.execute(_request(run_dir, spec, on_event=on_event))
    runner.close()

    outcome = collect_outcome(run_dir, info)
    assert outcome.status == "completed", (outcome.error_type, outcome.error_message)
    assert isinstance(outcome.result, ExperimentResult) and outcome.result.n_requests == 2
    assert any(e.get("event") == "stage" for e in events), "progress events were not forwarded"
    assert (run_dir / CONTAINER_LOG_FILE).read_text().count('"event"') >= len(events)
    assert inspected, "no running container was found while the run was in progress"

    config, host = inspected["Config"], inspected["HostConfig"]
    assert config["User"] == f"{os.getuid()}:{os.getgid()}"
    assert host["Privileged"] is False
    assert host["CapDrop"] == ["ALL"] and not host.get("CapAdd")
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["ShmSize"] == 256 * 1024 * 1024
    assert host["IpcMode"] in ("private", "shareable", "")  # no host IPC for transformers
    assert not host.get("DeviceRequests"), "a CPU-only host must not request GPUs"
    assert config["Cmd"] == ["python", "-u", "-m", "llem_harness", CONTAINER_RUN_DIR]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["HF_HOME"] == CONTAINER_HF_HOME and env["HOME"] == "/tmp"

    mounts = {m["Destination"]: m for m in inspected["Mounts"]}
    assert mounts[CONTAINER_RUN_DIR]["Source"] == str(run_dir.resolve()) and mounts[CONTAINER_RUN_DIR]["RW"]
    assert mounts[CONTAINER_HF_HOME]["Source"] == str(cache) and cache.is_dir()
    assert mounts[str(tiny_model_dir)]["RW"] is False  # local model: same path, read-only
    assert mounts[str(prompts)]["RW"] is False          # local dataset file: same path, read-only
    assert mounts["/data/extra"]["Source"] == str(extra) and mounts["/data/extra"]["RW"] is False
    if os.path.isdir("/sys/class/powercap"):
        assert mounts["/sys/class/powercap"]["RW"] is False

    labels = config["Labels"]
    assert labels["llem.study_id"] == spec.study_id
    assert labels["llem.experiment_hash"] == spec.config_hash
    assert labels["llem.cycle"] == "1" and labels["llem.run_id"] == spec.run_id
    assert labels["llem.orchestrator_pid"] == str(os.getpid()) and labels["llem.orchestrator_host"]
    assert labels["llem.test"] == "docker-runner"
    assert _containers_of(docker_client, spec.run_id) == [], "the container was not removed after its outcome"


def test_failing_experiment_reports_the_harness_error_type(docker_client, llem_image, make_run, tmp_path):
    run_dir, spec = make_run(str(tmp_path / "no-such-model"))
    runner = DockerRunner()
    info = runner.execute(_request(run_dir, spec))
    runner.close()
    outcome = collect_outcome(run_dir, info)
    error = HarnessError.model_validate_json((run_dir / "error.json").read_text())
    assert info.exit_code not in (0, None) and not info.timed_out and not info.oom_killed
    assert outcome.status == "failed"
    assert outcome.error_type == error.type and error.type not in ("HarnessCrashed", "timeout")
    assert _containers_of(docker_client, spec.run_id) == []


def test_wall_clock_timeout_kills_the_container(docker_client, llem_image, tiny_model_dir, make_run):
    run_dir, spec = make_run(str(tiny_model_dir), **SLOW_WORKLOAD)  # minutes of work, 3 s allowed
    runner = DockerRunner()
    info = runner.execute(_request(run_dir, spec, timeout_s=3, silence_timeout_s=None))
    runner.close()
    outcome = collect_outcome(run_dir, info)
    assert info.timed_out and "wall-clock" in info.timeout_reason
    assert outcome.status == "failed" and outcome.error_type == "timeout"
    assert not (run_dir / "result.json").exists()
    assert _containers_of(docker_client, spec.run_id) == []


def test_failed_container_is_kept_on_request_and_survives_the_orphan_sweep(
        docker_client, llem_image, make_run, tmp_path):
    run_dir, spec = make_run(str(tmp_path / "no-such-model"))
    runner = DockerRunner(docker_config=DockerConfig(keep_failed=True))
    info = runner.execute(_request(run_dir, spec))
    runner.close()
    kept = _containers_of(docker_client, spec.run_id)
    try:
        assert info.exit_code != 0
        assert len(kept) == 1 and kept[0].name.startswith(KEPT_PREFIX)
        assert kept[0].name in (run_dir / CONTAINER_LOG_FILE).read_text()
        assert kept[0].name not in cleanup_orphans(docker_client)
    finally:
        for container in kept:
            container.remove(force=True)


def test_sigint_during_execute_stops_and_removes_the_container(docker_client, llem_image, tiny_model_dir,
                                                               make_run):
    from llenergymeasure.runners import signals

    run_dir, spec = make_run(str(tiny_model_dir), **SLOW_WORKLOAD)
    runner = DockerRunner()
    started = threading.Event()

    def on_event(event: dict) -> None:
        if event.get("stage") in ("loading", "warmup", "measuring") and not started.is_set():
            started.set()
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does to the orchestrator

    # llem's own handlers, as the CLI installs them: a test session started in the background
    # (`cmd &`, nohup) inherits SIGINT ignored, and the signal would then never arrive.
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    signals.install()
    try:
        with pytest.raises(KeyboardInterrupt):
            runner.execute(_request(run_dir, spec, on_event=on_event))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        signals.stop_requested.clear()
    runner.close()
    assert started.is_set()
    assert _containers_of(docker_client, spec.run_id) == []


def test_orphans_of_a_dead_orchestrator_are_removed_and_live_ones_kept(docker_client, llem_image):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    import socket

    def start(pid: int, name: str):
        return docker_client.containers.run(
            llem_image, ["python", "-c", "import time; time.sleep(120)"], detach=True, name=name,
            labels={"llem.study_id": "orphan-test", "llem.run_id": name, "llem.orchestrator_host": socket.gethostname(),
                    LABEL_PID: str(pid)})

    orphan = start(dead_pid, f"llem-orphan-test-{os.getpid()}")
    alive = start(os.getppid(), f"llem-alive-test-{os.getpid()}")  # pytest's parent: alive, not us
    try:
        removed = cleanup_orphans(docker_client)
        names = {c.name for c in docker_client.containers.list(all=True, filters={"label": "llem.study_id=orphan-test"})}
        assert orphan.name in removed and orphan.name not in names
        assert alive.name in names and alive.name not in removed
    finally:
        for container in (orphan, alive):
            try:
                container.remove(force=True)
            except Exception:
                pass


def test_preflight_names_the_missing_image_and_refuses_a_foreign_contract(docker_client, llem_image, make_run):
    import io

    run_dir, spec = make_run("/models/whatever", image="llenergymeasure/transformers:does-not-exist")
    with pytest.raises(PreFlightError, match=r"does-not-exist.*llem images build transformers"):
        DockerRunner().preflight([spec])

    foreign = "llem-test/foreign-contract:latest"
    dockerfile = f"FROM {llem_image}\nLABEL {CONTRACT_LABEL}=0000000000000000\n".encode()
    docker_client.images.build(fileobj=io.BytesIO(dockerfile), tag=foreign, rm=True)
    try:
        _, foreign_spec = make_run("/models/whatever", run_id="002_c1_test", image=foreign)
        with pytest.raises(PreFlightError, match=r"contract '0000000000000000'.*llem images build transformers"):
            DockerRunner().preflight([foreign_spec])
        DockerRunner().preflight([spec.model_copy(update={"image": llem_image})])  # ours passes
    finally:
        docker_client.images.remove(foreign, force=True)


def test_gpu_request_without_nvidia_runtime_fails_preflight(docker_client, llem_image, make_run):
    from llenergymeasure.runners.docker_support import nvidia_runtime_available

    if nvidia_runtime_available(docker_client):
        pytest.skip("this daemon has the NVIDIA runtime; the refusal cannot be observed here")
    _, spec = make_run("/models/whatever", gpu_ids=["0"])
    with pytest.raises(PreFlightError, match="NVIDIA"):
        DockerRunner().preflight([spec])


def test_a_container_the_daemon_refuses_is_a_failed_run_not_a_crash(docker_client, llem_image, make_run):
    run_dir, spec = make_run("/models/whatever", image="llenergymeasure/transformers:does-not-exist")
    runner = DockerRunner()
    info = runner.execute(_request(run_dir, spec))
    runner.close()
    outcome = collect_outcome(run_dir, info)
    assert info.exit_code is None and "container not created" in info.detail and "does-not-exist" in info.detail
    assert outcome.status == "failed" and outcome.error_type == "HarnessCrashed"
