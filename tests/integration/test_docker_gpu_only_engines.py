"""GPU-only engines (vLLM, TensorRT-LLM) on this GPU-less host: recorded EngineUnavailable before anything starts."""
from __future__ import annotations

import yaml

from llenergymeasure.domain import StudyManifest
from tests.helpers import run_llem, small_measurement


def _study(tmp_path, tiny_model_dir, engines):
    data = {"name": "gpu-only", "results_dir": str(tmp_path / "results"),
            "base": {"model": str(tiny_model_dir), "n_prompts": 2, "max_output_tokens": 4,
                     "measurement": small_measurement()},
            "sweep": {"engine": engines}}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _manifest(tmp_path) -> tuple:
    study_dir = next((tmp_path / "results").iterdir())
    return study_dir, StudyManifest.model_validate_json((study_dir / "manifest.json").read_text())


def test_dry_run_says_which_runs_cannot_run_here(tmp_path, tiny_model_dir):
    proc = run_llem("run", str(_study(tmp_path, tiny_model_dir, ["vllm", "tensorrt_llm"])), "--dry-run")
    assert proc.returncode == 2, proc.stderr  # runs that would be recorded failed: --dry-run refuses, naming each
    assert "engine vllm" in proc.stderr and "engine tensorrt_llm" in proc.stderr
    assert proc.stdout.count("UNAVAILABLE here") == 2 and "runs only on NVIDIA GPUs" in proc.stdout
    assert not (tmp_path / "results").exists()


def test_docker_study_records_gpu_only_runs_failed_and_starts_no_container(docker_client, tmp_path, tiny_model_dir):
    before = {c.id for c in docker_client.containers.list(all=True)}
    proc = run_llem("run", str(_study(tmp_path, tiny_model_dir, ["vllm", "tensorrt_llm"])), docker=True)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    study_dir, manifest = _manifest(tmp_path)
    assert [(e.engine, e.status, e.error_type) for e in manifest.entries] == [
        ("vllm", "failed", "EngineUnavailable"), ("tensorrt_llm", "failed", "EngineUnavailable")]
    assert all("runs only on NVIDIA GPUs" in e.error_message and e.run_id is None for e in manifest.entries)
    assert not (study_dir / "runs").exists() or not any((study_dir / "runs").iterdir())
    assert {c.id for c in docker_client.containers.list(all=True)} == before


def test_local_study_runs_transformers_and_records_vllm_unavailable(tmp_path, tiny_model_dir):
    proc = run_llem("run", str(_study(tmp_path, tiny_model_dir, ["transformers", "vllm"])), "--runner", "local")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    _, manifest = _manifest(tmp_path)
    assert [(e.engine, e.status, e.error_type) for e in manifest.entries] == [
        ("transformers", "completed", None), ("vllm", "failed", "EngineUnavailable")]
