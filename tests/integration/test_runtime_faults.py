"""Runtime faults on real processes: results counted through the manifest, GPU ids checked before the
device lock, a full disk under the log pump and atomic writes, a killed llem's token removed.

The kill -9 / signal / OOM / disk-full cases with whole studies are in the fault campaign
(bench/fault_campaign_runtime.py; short version in test_fault_campaign.py).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from llenergymeasure.results.load import load_study
from tests.helpers import run_llem, small_measurement

pytestmark = pytest.mark.slow


def _study_file(model: Path, tmp_path: Path, name: str, execution: dict | None = None) -> tuple[Path, Path]:
    results = tmp_path / f"{name}-results"
    data = {"name": name, "results_dir": str(results),
            "base": {"model": str(model), "n_prompts": 2, "max_input_tokens": 16, "max_output_tokens": 4,
                     "measurement": small_measurement()},
            "execution": {"n_cycles": 1, **(execution or {})}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path, results


@pytest.fixture(scope="module")
def one_run_study(tiny_model_dir, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("one-run")
    path, results = _study_file(tiny_model_dir, tmp, "one-run")
    proc = run_llem("run", str(path), "-q")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return next(results.iterdir())


def _abandoned_copy(study_dir: Path) -> Path:
    """The files a crash leaves: a run whose result.json was written but never recorded (resume reran it)."""
    run_dir = next(p for p in (study_dir / "runs").iterdir())
    copy = study_dir.parent / f"{study_dir.name}-abandoned"
    shutil.copytree(study_dir, copy)
    shutil.copytree(copy / "runs" / run_dir.name, copy / "runs" / f"{run_dir.name}_r0")
    return copy


def test_results_count_only_what_the_manifest_names(one_run_study, tmp_path):
    study_dir = _abandoned_copy(one_run_study)
    assert len(list(study_dir.glob("runs/*/result.json"))) == 2  # the abandoned attempt stays as evidence
    assert len(load_study(study_dir).results) == 1
    out = tmp_path / "runs.csv"
    proc = run_llem("results", "export", str(study_dir), "--format", "csv", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert len(pd.read_csv(out)) == 1
    proc = run_llem("results", "export", str(study_dir), "--format", "csv", "--table", "summary", "-o",
                    str(tmp_path / "summary.csv"))
    assert proc.returncode == 0 and pd.read_csv(tmp_path / "summary.csv")["n_runs"].tolist() == [1], proc.stderr


def test_result_file_outside_the_study_is_never_read(one_run_study, tmp_path):
    study_dir = tmp_path / "study"
    shutil.copytree(one_run_study, study_dir)
    outside = tmp_path / "elsewhere.json"
    shutil.copy(next(study_dir.glob("runs/*/result.json")), outside)
    manifest = json.loads((study_dir / "manifest.json").read_text())
    manifest["entries"][0]["result_file"] = "../elsewhere.json"
    (study_dir / "manifest.json").write_text(json.dumps(manifest))
    data = load_study(study_dir)
    assert data.results == [] and "outside the study directory" in data.warnings[0]
    proc = run_llem("run", "--resume", str(study_dir))  # a resume must not count it either
    assert proc.returncode == 2 and "outside the study directory" in proc.stderr and "Traceback" not in proc.stderr


def test_made_up_gpu_id_is_refused_before_anything_runs(tiny_model_dir, tmp_path):
    path, results = _study_file(tiny_model_dir, tmp_path, "fake-gpu", {"gpus": ["fake0"]})
    proc = run_llem("run", str(path))
    assert proc.returncode == 2 and "execution.gpus" in proc.stderr and "Traceback" not in proc.stderr
    assert not results.exists()


def test_fake_ids_under_the_test_switch_still_take_the_cpu_lock(tiny_model_dir, tmp_path, monkeypatch):
    from llenergymeasure.study.locks import GpuLock

    monkeypatch.setenv("LLEM_LOCK_DIR", str(tmp_path / "locks"))
    held = GpuLock(["cpu"], "a CPU study measuring now")
    held.acquire()
    try:
        path, results = _study_file(tiny_model_dir, tmp_path, "fake-gpu-switch",
                                    {"gpus": ["fake0"], "allow_parallel_cpu": True})
        proc = run_llem("run", str(path))
    finally:
        held.release()
    assert proc.returncode == 2 and "cpu is in use" in proc.stderr, proc.stderr
    assert not results.exists()


def test_line_pump_keeps_draining_when_the_log_cannot_be_written():
    """/dev/full: every write fails with ENOSPC, as on a full disk. The pump must forward every
    progress event (the harness would otherwise block on a full pipe) and record the failure."""
    from llenergymeasure.domain.progress import encode_event
    from llenergymeasure.runners.base import LinePump

    lines = [encode_event("stage", stage=f"p{i}") + "\n" for i in range(5000)]
    seen = []
    pump = LinePump(iter(lines), Path("/dev/full"), seen.append)
    pump.join(timeout=30)
    assert len(seen) == 5000 and pump.log_error is not None and "No space" in str(pump.log_error)


def test_atomic_write_leaves_no_temp_file_when_the_disk_refuses(tmp_path):
    """A real kernel refusal (file size limit, EFBIG) in a child process: the write fails, the old
    file is intact and no `.NAME.PID.tmp` is left behind."""
    target = tmp_path / "result.json"
    target.write_text("old")
    code = ("import resource, signal, sys; from pathlib import Path; "
            "from llenergymeasure.domain.io import write_chunks_atomic; "
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN); resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
            "try:\n    write_chunks_atomic(Path(sys.argv[1]), [b'x' * 100000])\n"
            "except OSError as exc:\n    print(exc.errno)")
    done = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "27", done.stderr  # EFBIG
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_token_of_a_killed_llem_is_removed_at_once(tmp_path):
    """kill -9 of a process holding a Docker runner's token directory: its watchdog removes it."""
    token = "hf_killedLlemToken0123456789"
    code = ("import os, sys, time; from llenergymeasure.runners import watchdog; "
            "from llenergymeasure.runners.docker_runner import DockerRunner; watchdog.start(); "
            "print(DockerRunner(client=object())._secrets_dir(), flush=True); time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "HF_TOKEN": token})
    secrets = Path(proc.stdout.readline().strip())
    assert (secrets / "hf_token").read_text() == token and f"-{proc.pid}-" in secrets.name
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while secrets.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not secrets.exists()
