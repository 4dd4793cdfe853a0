"""--resume, the circuit breaker and the device lock, through the real CLI and the real harness."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.helpers import run_llem, small_measurement

pytestmark = pytest.mark.slow


def _write(tmp_path: Path, model, **execution) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({
        "name": "resume", "results_dir": str(tmp_path / "results"),
        "base": {"model": str(model), "n_prompts": 2, "max_output_tokens": 4, "measurement": small_measurement()},
        "sweep": {"batch_size": [1, 2]}, "execution": {"n_cycles": 2, **execution}}))
    return path


def _study(tmp_path: Path) -> tuple[Path, dict]:
    study_dir = next((tmp_path / "results").iterdir())
    return study_dir, json.loads((study_dir / "manifest.json").read_text())


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_resume_reruns_only_what_did_not_complete_and_keeps_completed_bytes(tiny_model_dir, tmp_path):
    assert run_llem("run", str(_write(tmp_path, tiny_model_dir))).returncode == 0
    study_dir, manifest = _study(tmp_path)
    manifest["entries"][1].update(status="failed", error_type="X", error_message="pretend it failed")
    manifest["entries"][3]["status"] = "running"  # as a crashed orchestrator leaves it
    manifest["status"] = "running"
    (study_dir / "manifest.json").write_text(json.dumps(manifest))
    kept = {i: _digest(study_dir / manifest["entries"][i]["result_file"]) for i in (0, 2)}
    status = run_llem("status", str(study_dir))  # no llem holds the study: status says how to continue
    assert status.returncode == 0 and "Status: running — 2 completed, 1 running" in status.stdout, status.stdout
    assert f"No llem process is running this study (it was stopped or crashed): llem run --resume {study_dir}" \
        in status.stdout and "failed: " in status.stdout

    proc = run_llem("run", "--resume", str(study_dir), "--skip-failed")
    assert proc.returncode == 0, proc.stderr[-2000:]
    # completed and (with --skip-failed) failed runs are kept, not "skipped (invalid grid points)"
    assert "3 runs kept from before (completed, failed); not rerun" in proc.stdout, proc.stdout
    assert "1 runs to measure\n" in proc.stdout and "invalid grid points" not in proc.stdout
    _, after = _study(tmp_path)
    assert [e["status"] for e in after["entries"]] == ["completed", "failed", "completed", "completed"]
    assert after["entries"][3]["run_id"].endswith("_r2")  # a new directory: the old attempt stays as evidence
    assert after["resumes"][0]["rerun"] == 1 and after["resumes"][0]["skip_failed"] is True

    proc = run_llem("run", str(_write(tmp_path, tiny_model_dir)), "--resume", str(study_dir))  # YAML given too
    assert proc.returncode == 0, proc.stderr[-2000:]
    _, final = _study(tmp_path)
    assert [e["status"] for e in final["entries"]] == ["completed"] * 4 and len(final["resumes"]) == 2
    for i, digest in kept.items():
        assert final["entries"][i]["run_id"] == manifest["entries"][i]["run_id"]
        assert _digest(study_dir / final["entries"][i]["result_file"]) == digest
    assert json.loads((study_dir / "study_result.json").read_text())["summary"]["completed"] == 4


def test_resume_refuses_a_changed_design_and_corrupt_files(tiny_model_dir, tmp_path):
    assert run_llem("run", str(_write(tmp_path, tiny_model_dir))).returncode == 0
    study_dir, manifest = _study(tmp_path)
    changed = _write(tmp_path, tiny_model_dir, n_cycles=3)
    proc = run_llem("run", str(changed), "--resume", str(study_dir))
    assert proc.returncode == 2 and "design changed" in proc.stderr and "Traceback" not in proc.stderr

    result_file = study_dir / manifest["entries"][0]["result_file"]
    original = result_file.read_bytes()
    result_file.write_bytes(original[:100])
    manifest["entries"][1]["status"] = "failed"
    (study_dir / "manifest.json").write_text(json.dumps(manifest))
    proc = run_llem("run", "--resume", str(study_dir))
    assert proc.returncode == 2 and str(result_file) in proc.stderr and "Traceback" not in proc.stderr
    result_file.write_bytes(original)

    (study_dir / "manifest.json").write_text(json.dumps(manifest)[:200])
    proc = run_llem("run", "--resume", str(study_dir))
    assert proc.returncode == 2 and "manifest.json is corrupt or truncated" in proc.stderr
    proc = run_llem("results", "show", str(study_dir))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr


def test_circuit_breaker_stops_the_study_and_resume_continues(tiny_model_dir, tmp_path):
    missing = tmp_path / "model-not-there-yet"
    missing.mkdir()  # a directory without a model: valid to start, every run fails in the harness
    proc = run_llem("run", str(_write(tmp_path, missing, max_consecutive_failures=2)))
    assert proc.returncode == 1, proc.stderr[-2000:]
    study_dir, manifest = _study(tmp_path)
    assert manifest["status"] == "stopped" and "2 runs failed in a row" in manifest["stop_reason"]
    assert [e["status"] for e in manifest["entries"]] == ["failed", "failed", "pending", "pending"]
    missing.rmdir()
    missing.symlink_to(tiny_model_dir)  # the cause is fixed
    proc = run_llem("run", "--resume", str(study_dir))
    assert proc.returncode == 0, proc.stderr[-2000:]
    _, manifest = _study(tmp_path)
    assert manifest["status"] == "completed" and [e["status"] for e in manifest["entries"]] == ["completed"] * 4


def test_a_second_study_on_the_same_devices_is_refused_or_waits(tiny_model_dir, tmp_path):
    from llenergymeasure.study.locks import GpuLock, device_keys

    held = GpuLock(device_keys(None), "a study of another user")
    held.acquire()
    try:
        proc = run_llem("run", str(_write(tmp_path, tiny_model_dir)))
        assert proc.returncode == 2 and "in use by pid" in proc.stderr and "a study of another user" in proc.stderr
        assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())
        waiting = subprocess.Popen([sys.executable, "-c", "from llenergymeasure.cli.main import main; main()",
                                    "run", str(_write(tmp_path, tiny_model_dir)), "--wait-for-devices"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(3)
        assert waiting.poll() is None  # still queued behind the holder
    finally:
        held.release()
    out, err = waiting.communicate(timeout=300)
    assert waiting.returncode == 0, err[-2000:]
    assert "waiting for pid" in out + err
