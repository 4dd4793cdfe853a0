"""Studies submitted to a real Slurm cluster (`../shared/ci/slurm-up.sh` starts a one-node one in CI).

The study is the quickstart on the tiny model; each array task runs the real harness. The same
study run locally gives the reference for the shape of every output. Skips (with the reason) only
where no Slurm cluster answers; with LLEM_REQUIRE_SLURM=1 (CI) that is a failure instead.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from llenergymeasure.domain import StudyManifest
from tests.helpers import quickstart_data, run_llem

pytestmark = pytest.mark.slow


def _slurm_reason() -> str | None:
    if shutil.which("sbatch") is None or shutil.which("srun") is None:
        return "Slurm's sbatch/srun are not installed (CI starts a cluster with ../shared/ci/slurm-up.sh)"
    try:
        done = subprocess.run(["srun", "-N1", "true"], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return "srun did not return within 60 s: the Slurm cluster is not answering"
    if done.returncode != 0:
        return f"srun -N1 true failed: {done.stderr.strip()[:200]}"
    return None


@pytest.fixture(scope="module")
def slurm():
    reason = _slurm_reason()
    if reason and os.environ.get("LLEM_REQUIRE_SLURM") == "1":
        pytest.fail(f"LLEM_REQUIRE_SLURM=1 but {reason}")
    if reason:
        pytest.skip(reason)


def _study_file(tiny_model_dir: Path, tmp_path: Path, results: str) -> Path:
    data = quickstart_data(tiny_model_dir, tmp_path / results)
    path = tmp_path / f"{results}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _manifest(study_dir: Path) -> StudyManifest:
    return StudyManifest.model_validate_json((study_dir / "manifest.json").read_text())


def _study_dir(proc) -> Path:
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return Path(proc.stdout.strip().splitlines()[-1])


def test_slurm_study_completes_with_the_shape_of_a_local_one(slurm, tiny_model_dir, tmp_path):
    local = _study_dir(run_llem("run", str(_study_file(tiny_model_dir, tmp_path, "local")), "-q"))
    submitted = run_llem("run", str(_study_file(tiny_model_dir, tmp_path, "slurm")), "--executor", "slurm",
                         "--slurm-gpus-per-task", "0", "--wait", "-q", timeout=900)
    study_dir = _study_dir(submitted)

    on_slurm, on_host = _manifest(study_dir), _manifest(local)
    assert on_slurm.status == on_host.status == "completed"
    assert on_slurm.executor == "slurm" and len(on_slurm.slurm_jobs) == 1
    assert [(e.experiment_index, e.cycle, e.config_hash, e.run_id, e.status) for e in on_slurm.entries] == \
        [(e.experiment_index, e.cycle, e.config_hash, e.run_id, e.status) for e in on_host.entries]
    job = on_slurm.slurm_jobs[0]["job_id"]
    assert [e.slurm_job_id for e in on_slurm.entries] == [f"{job}_{i}" for i in range(4)]
    for entry in on_slurm.entries:  # each run was an array task of that job, and says so
        task = json.loads((study_dir / "runs" / entry.run_id / "slurm-task.json").read_text())
        assert task["env"]["SLURM_ARRAY_JOB_ID"] == job
        assert f"{job}_{task['env']['SLURM_ARRAY_TASK_ID']}" == entry.slurm_job_id
        assert entry.result_file == f"runs/{entry.run_id}/result.json" and entry.duration_s > 0

    slurm_result = json.loads((study_dir / "study_result.json").read_text())
    local_result = json.loads((local / "study_result.json").read_text())
    assert slurm_result.keys() == local_result.keys()
    assert slurm_result["summary"]["completed"] == 4 and slurm_result["status"] == "completed"
    assert [c["config_hash"] for c in slurm_result["configurations"]] == \
        [c["config_hash"] for c in local_result["configurations"]]
    for name in ("results.csv", "summary.csv"):
        assert list(pd.read_csv(study_dir / name).columns) == list(pd.read_csv(local / name).columns)
    assert all(r["output_tokens_total"] > 0 for r in slurm_result["experiments"])

    status = run_llem("status", str(study_dir))  # a finished study: read again, nothing changes
    assert status.returncode == 0 and "4 completed" in status.stdout, status.stdout + status.stderr


def test_cancelled_slurm_study_is_resubmitted_by_resume(slurm, tiny_model_dir, tmp_path):
    submitted = run_llem("run", str(_study_file(tiny_model_dir, tmp_path, "held")), "--executor", "slurm",
                         "--slurm-gpus-per-task", "0", "--slurm-sbatch-arg=--hold", "-q")
    study_dir = _study_dir(submitted)
    assert _manifest(study_dir).counters.submitted == 4
    queued = run_llem("status", str(study_dir))
    assert "4 queued in Slurm" in queued.stdout, queued.stdout + queued.stderr

    subprocess.run(["scancel", "--name", f"llem-{study_dir.name}"], check=True, timeout=60)
    status = run_llem("status", str(study_dir))
    manifest = _manifest(study_dir)
    assert status.returncode == 0 and manifest.status == "interrupted", status.stdout + status.stderr
    assert manifest.counters.interrupted == 4 and "llem run --resume" in status.stdout

    # The resume reuses the first submission's flags except those given again (here: no --hold).
    resumed = run_llem("run", "--resume", str(study_dir), "--slurm-sbatch-arg=--comment=llem-resume", "--wait",
                       "-q", timeout=900)
    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    manifest = _manifest(study_dir)
    assert manifest.status == "completed" and manifest.counters.completed == 4
    assert len(manifest.slurm_jobs) == 2 and manifest.slurm_jobs[1]["options"]["gpus_per_task"] == 0
    assert manifest.resumes[-1]["rerun"] == 4 and manifest.resumes[-1]["executor"] == "slurm"
    assert all(e.run_id.endswith("_r2") for e in manifest.entries)  # the cancelled attempts stay as they were
    assert json.loads((study_dir / "study_result.json").read_text())["summary"]["completed"] == 4


def test_slurm_refusal_is_exit_2_and_keeps_the_study(slurm, tiny_model_dir, tmp_path):
    proc = run_llem("run", str(_study_file(tiny_model_dir, tmp_path, "bad")), "--executor", "slurm",
                    "--slurm-gpus-per-task", "0", "--slurm-partition", "no-such-partition")
    assert proc.returncode == 2, proc.stderr
    assert "sbatch refused" in proc.stderr and "--slurm-partition" in proc.stderr and "Traceback" not in proc.stderr
    study_dir = next((tmp_path / "bad").iterdir())
    manifest = _manifest(study_dir)
    assert manifest.status == "stopped" and manifest.counters.pending == 4 and not manifest.slurm_jobs
    assert not any((study_dir / "runs").iterdir())  # no half-made run directories


def test_a_local_study_is_continued_on_slurm(slurm, tiny_model_dir, tmp_path):
    study_dir = _study_dir(run_llem("run", str(_study_file(tiny_model_dir, tmp_path, "moved")), "-q"))
    manifest = json.loads((study_dir / "manifest.json").read_text())
    manifest["entries"][2].update(status="failed", error_type="X", error_message="pretend it failed")
    manifest["entries"][3]["status"] = "running"  # as a crashed local llem leaves it
    (study_dir / "manifest.json").write_text(json.dumps(manifest))

    resumed = run_llem("run", "--resume", str(study_dir), "--executor", "slurm", "--slurm-gpus-per-task", "0",
                       "--wait", "-q", timeout=900)
    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    after = _manifest(study_dir)
    assert after.executor == "slurm" and after.status == "completed" and after.counters.completed == 4
    assert [e.run_id for e in after.entries[:2]] == [e["run_id"] for e in manifest["entries"][:2]]  # kept
    assert [e.run_id.endswith("_r2") for e in after.entries] == [False, False, True, True]
    assert [e.slurm_job_id is not None for e in after.entries] == [False, False, True, True]


SPOOL_DIRS = ("/var/spool/slurmctld", "/var/spool/slurmd")  # StateSaveLocation, SlurmdSpoolDir (slurm-up.sh)


def test_token_never_reaches_slurms_spool(slurm, tiny_model_dir, tmp_path):
    """sbatch exports its environment (`--export=ALL`) and slurmctld stores it with the job: the token
    must not be in it. The tasks get it as a 0600 file, removed when nothing is left in Slurm."""
    token = "hf_slurmSpoolToken0123456789abc"
    submitted = run_llem("run", str(_study_file(tiny_model_dir, tmp_path, "token")), "--executor", "slurm",
                         "--slurm-gpus-per-task", "0", "--slurm-sbatch-arg=--hold", "-q", env={"HF_TOKEN": token})
    study_dir = _study_dir(submitted)
    try:
        spooled = [p for d in SPOOL_DIRS for p in Path(d).rglob("*")
                   if p.is_file() and token.encode() in p.read_bytes()]
        env_files = [p for p in Path(SPOOL_DIRS[0]).rglob("environment")]
        assert env_files, "the job's environment is not where slurm-up.sh puts the state: check StateSaveLocation"
        assert spooled == []
        token_file = study_dir / "slurm" / "secrets" / "hf_token"
        assert token_file.read_text() == token and (token_file.stat().st_mode & 0o777) == 0o600
        tasks = json.loads((study_dir / "slurm" / "tasks-1.json").read_text())
        assert tasks["token_file"] == str(token_file)
    finally:
        subprocess.run(["scancel", "--name", f"llem-{study_dir.name}"], check=True, timeout=60)
    status = run_llem("status", str(study_dir))
    assert status.returncode == 0 and _manifest(study_dir).status == "interrupted", status.stderr
    assert not (study_dir / "slurm" / "secrets").exists()


def test_a_search_runs_on_slurm_in_waves_of_array_tasks(slurm, tiny_model_dir, tmp_path):
    pytest.importorskip("optuna")
    data = quickstart_data(tiny_model_dir, tmp_path / "search")
    data["sweep"] = {"batch_size": [1, 2], "max_output_tokens": [2, 4]}
    data["execution"] = {"n_cycles": 1}
    data["search"] = {"budget": {"runs": 3}, "trials_per_wave": 2, "seed": 0}
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(data))
    trace = Path(__file__).resolve().parents[1] / "fixtures" / "traces" / "ci_idle_load.jsonl"
    submitted = run_llem("run", str(path), "--executor", "slurm", "--slurm-gpus-per-task", "0", "--wait", "-q",
                         timeout=900, env={"LLEM_NVML_REPLAY": str(trace)})  # sbatch exports it to the tasks
    study_dir = _study_dir(submitted)
    manifest = _manifest(study_dir)
    assert manifest.status == "completed", submitted.stderr[-2000:]
    # Two waves: 2 trials, then the 1 the budget leaves; the configuration never proposed is skipped.
    assert [job["n_tasks"] for job in manifest.slurm_jobs] == [2, 1]
    assert sorted(e.status for e in manifest.entries) == ["completed"] * 3 + ["skipped"]
    history = json.loads((study_dir / "search_history.json").read_text())
    assert history["stopped"].startswith("budget: 3 runs used of 3") and len(history["trials"]) == 3


def test_adaptive_cycles_run_on_slurm_in_waves(slurm, tiny_model_dir, tmp_path):
    """One configuration, a target no replayed run can meet: the first wave takes it to its 2 cycles,
    then the collector decides and submits one run per wave until the cap; the record says why it stopped."""
    data = quickstart_data(tiny_model_dir, tmp_path / "adaptive")
    data["sweep"] = {}
    data["execution"] = {"n_cycles": 2, "target_ci_pct": 0.0001, "max_cycles": 4}
    path = tmp_path / "adaptive.yaml"
    path.write_text(yaml.safe_dump(data))
    trace = Path(__file__).resolve().parents[1] / "fixtures" / "traces" / "ci_idle_load.jsonl"
    submitted = run_llem("run", str(path), "--executor", "slurm", "--slurm-gpus-per-task", "0", "--wait", "-q",
                         timeout=900, env={"LLEM_NVML_REPLAY": str(trace)})
    study_dir = _study_dir(submitted)
    manifest = _manifest(study_dir)
    assert manifest.status == "completed", submitted.stderr[-2000:]
    assert [job["n_tasks"] for job in manifest.slurm_jobs] == [2, 1, 1]
    assert [e.status for e in manifest.entries] == ["completed"] * 4
    [record] = manifest.adaptive
    assert record["runs"] == 4 and record["reason"].startswith("cap: max_cycles (4) reached"), record
