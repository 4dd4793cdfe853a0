"""`llem-docker run` end to end: real CLI, real daemon, real image, real tiny model, real manifests."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from llenergymeasure.domain import ExperimentResult, HarnessError, StudyManifest
from tests.helpers import REPO_ROOT, run_llem

pytestmark = pytest.mark.slow

# Minutes of work for the tiny model on CPU: fixed-length outputs, many prompts.
SLOW_WORKLOAD = {"n_prompts": 500, "max_output_tokens": 256, "decoding": {"ignore_eos": True}}


def _workdir(tmp_path: Path, tiny_model_dir: Path) -> Path:
    """A directory laid out as the README's set-up leaves it: models/tiny-llm beside the study."""
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "tiny-llm").symlink_to(tiny_model_dir, target_is_directory=True)
    return tmp_path


def _study_dir(workdir: Path) -> Path:
    found = sorted((workdir / "results").glob("*/manifest.json"))
    assert len(found) == 1, f"expected one study directory, found {found}"
    return found[0].parent


def _manifest(study_dir: Path) -> StudyManifest:
    return StudyManifest.model_validate_json((study_dir / "manifest.json").read_text())


def _write_study(workdir: Path, name: str, experiments: list[dict], **execution) -> Path:
    base = {"engine": "transformers", "dataset": "synthetic", "n_prompts": 2, "max_input_tokens": 16,
            "max_output_tokens": 4, "measurement": {"baseline": {"duration_s": 0.5},
                                                   "warmup": {"min_batches": 1, "max_batches": 2, "window": 2}}}
    data = {"name": name, "results_dir": "results", "base": base, "experiments": experiments,
            "execution": {"n_cycles": 1, **execution}}
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _ours(docker_client, study_id: str) -> list:
    return docker_client.containers.list(all=True, filters={"label": f"llem.study_id={study_id}"})


def test_docker_quickstart_runs_every_experiment_in_a_container(docker_client, llem_image, tiny_model_dir, tmp_path):
    workdir = _workdir(tmp_path, tiny_model_dir)
    proc = run_llem("run", str(REPO_ROOT / "examples" / "docker-quickstart.yaml"), cwd=workdir, docker=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    study_dir = _study_dir(workdir)
    assert str(study_dir) in proc.stdout + proc.stderr
    manifest = _manifest(study_dir)
    assert manifest.status == "completed"
    assert [(e.experiment_index, e.cycle, e.status, e.runner) for e in manifest.entries] == [
        (0, 1, "completed", "docker"), (1, 1, "completed", "docker"),
        (0, 2, "completed", "docker"), (1, 2, "completed", "docker"),
        (0, 3, "completed", "docker"), (1, 3, "completed", "docker")]
    assert manifest.counters.completed == 6 and manifest.counters.failed == 0
    for entry in manifest.entries:
        run_dir = study_dir / "runs" / entry.run_id
        result = ExperimentResult.model_validate_json((study_dir / entry.result_file).read_text())
        assert result.run_id == entry.run_id and result.cycle == entry.cycle
        assert result.environment.in_container is True
        assert result.n_requests == 4 and result.output_tokens_total > 0
        assert (run_dir / "container.log").stat().st_size > 0
    assert _ours(docker_client, manifest.study_id) == []


def test_a_failing_experiment_is_recorded_with_the_harness_error_and_the_others_complete(
        docker_client, llem_image, tiny_model_dir, tmp_path):
    workdir = _workdir(tmp_path, tiny_model_dir)
    (workdir / "models" / "no-such-model").mkdir()  # exists (so the run starts) but holds no model
    study = _write_study(workdir, "one-fails", [{"model": "models/tiny-llm"},
                                                {"model": str(workdir / "models" / "no-such-model")},
                                                {"model": "models/tiny-llm", "batch_size": 2}])
    proc = run_llem("run", str(study), cwd=workdir, docker=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    study_dir = _study_dir(workdir)
    entries = _manifest(study_dir).entries
    assert [e.status for e in entries] == ["completed", "failed", "completed"]
    failed = entries[1]
    error = HarnessError.model_validate_json((study_dir / "runs" / failed.run_id / "error.json").read_text())
    assert failed.error_type == error.type and failed.error_message == error.message
    assert failed.error_type not in ("HarnessCrashed", "timeout", "EngineUnavailable")
    assert _ours(docker_client, _manifest(study_dir).study_id) == []


def test_the_timeout_kills_the_container_and_the_entry_says_timeout(docker_client, llem_image, tiny_model_dir,
                                                                     tmp_path):
    workdir = _workdir(tmp_path, tiny_model_dir)
    slow = {"model": "models/tiny-llm", **SLOW_WORKLOAD}
    study = _write_study(workdir, "times-out", [slow], timeout_s=3)
    proc = run_llem("run", str(study), cwd=workdir, docker=True)
    study_dir = _study_dir(workdir)
    manifest = _manifest(study_dir)
    (entry,) = manifest.entries
    assert entry.status == "failed" and entry.error_type == "timeout", proc.stderr[-2000:]
    assert "wall-clock timeout" in entry.error_message
    assert entry.duration_s < 30
    assert _ours(docker_client, manifest.study_id) == []


def test_sigint_during_a_study_exits_130_marks_the_manifest_interrupted_and_leaves_no_container(
        docker_client, llem_image, tiny_model_dir, tmp_path):
    workdir = _workdir(tmp_path, tiny_model_dir)
    slow = {"model": "models/tiny-llm", **SLOW_WORKLOAD}
    study = _write_study(workdir, "interrupted", [slow, {"model": "models/tiny-llm"}])
    code = "from llenergymeasure.cli.main import main_docker; main_docker()"
    proc = subprocess.Popen([sys.executable, "-c", code, "run", str(study)], cwd=workdir,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        running = []
        while time.monotonic() < deadline and not running and proc.poll() is None:
            running = docker_client.containers.list(filters={"label": "llem.study_id", "status": "running"})
            running = [c for c in running if c.labels.get("llem.orchestrator_pid") == str(proc.pid)]
            time.sleep(0.2)
        assert running, "the study never started a container"
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr[-3000:]
    manifest = _manifest(_study_dir(workdir))
    assert manifest.status == "interrupted"
    assert manifest.entries[0].status == "interrupted"
    assert manifest.entries[1].status == "pending"
    assert _ours(docker_client, manifest.study_id) == []
    assert [c for c in docker_client.containers.list(all=True, filters={"label": "llem.orchestrator_pid"})
            if c.labels.get("llem.orchestrator_pid") == str(proc.pid)] == []
