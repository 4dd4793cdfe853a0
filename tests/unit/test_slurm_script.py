"""The Slurm executor's pure parts (no cluster needed): batch script, time limit, flags, refusals."""
from __future__ import annotations

from pathlib import Path

import pytest

from llenergymeasure.errors import ConfigError
from llenergymeasure.executors.slurm import SlurmOptions, batch_script, require_slurm, time_limit_for
from tests.helpers import run_llem


def _script(options: SlurmOptions, gpus: int) -> list[str]:
    text = batch_script(Path("/shared/study"), "llem-s", 6, Path("/shared/study/slurm/tasks-1.json"), options,
                        gpus, "25", python="/opt/venv/bin/python")
    return text.splitlines()


def test_gpu_tasks_ask_for_gpus_and_cpu_tasks_for_a_whole_node():
    gpu = _script(SlurmOptions(partition="gpu", account="lab", array_limit=2), gpus=2)
    assert "#SBATCH --array=0-5%2" in gpu and "#SBATCH --gpus-per-task=2" in gpu
    assert "#SBATCH --partition=gpu" in gpu and "#SBATCH --account=lab" in gpu and "#SBATCH --time=25" in gpu
    assert "#SBATCH --exclusive" not in gpu
    cpu = _script(SlurmOptions(), gpus=0)
    assert "#SBATCH --exclusive" in cpu and not any("gpus-per-task" in line for line in cpu)
    assert "#SBATCH --array=0-5" in cpu and not any("partition" in line for line in cpu)
    assert cpu[-1] == ('exec /opt/venv/bin/python -m llenergymeasure.executors.slurm_task '
                       '/shared/study/slurm/tasks-1.json "$SLURM_ARRAY_TASK_ID"')
    assert "#SBATCH --output=/shared/study/slurm/logs/%A_%a.out" in cpu


def test_time_limit_covers_the_longest_run_plus_margin():
    assert time_limit_for([60.0, 600.0]) == "15"   # (600 + 300) s = 15 min
    assert time_limit_for([601.0]) == "16"         # rounded up, never down


def test_resume_reuses_previous_flags_except_those_given_again():
    previous = SlurmOptions(partition="gpu", gpus_per_task=0, sbatch_args=["--hold"]).to_record()
    merged = SlurmOptions(sbatch_args=["--qos=high"]).merged_over(previous)
    assert (merged.partition, merged.gpus_per_task, merged.sbatch_args) == ("gpu", 0, ["--qos=high"])
    assert SlurmOptions().merged_over({}) == SlurmOptions()


def test_no_slurm_on_path_is_a_config_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="sbatch and squeue"):
        require_slurm()


def test_slurm_flags_without_the_slurm_executor_exit_2(tmp_path):
    proc = run_llem("run", "-m", str(tmp_path), "--slurm-partition", "gpu", "--dry-run")
    assert proc.returncode == 2 and "--slurm-partition only apply with --executor slurm" in proc.stderr


def test_status_of_a_directory_that_is_not_a_study_exit_2(tmp_path):
    proc = run_llem("status", str(tmp_path))
    assert proc.returncode == 2 and "manifest.json not found" in proc.stderr and "Traceback" not in proc.stderr


def test_local_only_flags_with_the_slurm_executor_exit_2(tmp_path):
    proc = run_llem("run", "-m", str(tmp_path), "--executor", "slurm", "--runner", "docker")
    assert proc.returncode == 2 and "--runner docker does not apply with --executor slurm" in proc.stderr


def test_status_of_a_slurm_study_where_slurm_is_not_reachable(tmp_path):
    """Results copied to a laptop: the manifest as last collected, and a note saying so; --wait cannot."""
    from llenergymeasure.domain import ManifestEntry
    from llenergymeasure.study.manifest import ManifestWriter, new_manifest

    entries = [ManifestEntry(experiment_index=0, cycle=c, config_summary="tiny", config_hash="h", run_id=f"r{c}",
                             status=status, slurm_job_id=f"5_{c - 1}") for c, status in ((1, "completed"),
                                                                                         (2, "submitted"))]
    manifest = new_manifest("s_1", "s", tmp_path, 2, "interleaved", entries)
    manifest.executor, manifest.slurm_jobs = "slurm", [{"job_id": "5", "n_tasks": 2}]
    ManifestWriter(manifest, tmp_path / "manifest.json").write()
    no_slurm = {"PATH": str(tmp_path / "empty-bin")}
    proc = run_llem("status", str(tmp_path), env=no_slurm)
    assert proc.returncode == 0 and "Slurm is not reachable from here" in proc.stderr
    assert "1 completed, 0 running, 1 queued in Slurm" in proc.stdout and "job arrays 5" in proc.stdout
    waiting = run_llem("status", "--wait", str(tmp_path), env=no_slurm)
    assert waiting.returncode == 2 and "sbatch and squeue" in waiting.stderr
