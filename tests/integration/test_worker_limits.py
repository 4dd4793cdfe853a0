"""The pre-imported worker under the run's limits and its death named: a model path that blocks the worker's
first import fails the run within the run's silence limit (not after the worker's own 600 s), and a worker
killed under a running harness makes the run say that the worker died (not "stopped by SIGTERM")."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.integration.test_local_worker import LONG_WORKLOAD, _worker_pid

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")]


def _llem(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "from llenergymeasure.cli.main import main; main()", *args],
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _entries(results: Path) -> list[dict]:
    [manifest] = results.glob("*/manifest.json")
    return json.loads(manifest.read_text())["entries"]


def test_a_model_path_that_blocks_the_workers_import_is_bounded_by_the_runs_silence_limit(tmp_path):
    model = tmp_path / "fifo-model"
    model.mkdir()
    os.mkfifo(model / "config.json")  # opening it blocks until someone writes: a stalled network file system
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({
        "name": "fifo", "results_dir": str(tmp_path / "results"),
        "base": {"model": str(model), "n_prompts": 1, "max_output_tokens": 2},
        "execution": {"n_cycles": 1, "timeout_s": 60, "silence_timeout_s": 8}}))
    started = time.monotonic()
    llem = _llem("run", str(study), cwd=tmp_path)
    try:
        out, _ = llem.communicate(timeout=150)  # 86f093f: the worker waits 600 s, then a fresh harness blocks too
    except subprocess.TimeoutExpired:
        os.killpg(llem.pid, signal.SIGKILL)
        llem.communicate()
        raise AssertionError("the blocked worker start was not bounded by the run's limits") from None
    took = time.monotonic() - started
    [entry] = _entries(tmp_path / "results")
    assert entry["status"] == "failed" and entry["error_type"] == "silent", entry
    assert "pre-imported worker was still importing" in entry["error_message"] and took < 120, (took, out)


def test_a_worker_killed_under_a_running_harness_is_named_as_the_cause(tiny_model_dir, tmp_path):
    study = tmp_path / "study.yaml"
    results = tmp_path / "results"
    study.write_text(yaml.safe_dump({"name": "workerdies", "results_dir": str(results),
                                     "base": LONG_WORKLOAD | {"model": str(tiny_model_dir)},
                                     "execution": {"n_cycles": 1}}))
    llem = _llem("run", str(study), cwd=tmp_path)
    try:
        deadline, worker = time.monotonic() + 240, None
        while worker is None and time.monotonic() < deadline:
            for log in results.glob("*/runs/*/runner.log"):
                text = log.read_text()
                if "llem: harness pid " in text and '"stage"' in text:  # forked, and past its start
                    worker = _worker_pid(text)
            time.sleep(0.1)
        assert worker is not None, "no forked harness started"
        os.kill(worker, signal.SIGKILL)  # what the OOM killer does to the biggest process
        out, _ = llem.communicate(timeout=120)
    finally:
        if llem.poll() is None:
            os.killpg(llem.pid, signal.SIGKILL)
            llem.communicate()
    [entry] = _entries(results)
    assert entry["status"] == "failed" and entry["error_type"] == "ParentDied", entry
    assert f"the pre-imported worker (pid {worker})" in entry["error_message"], entry
    assert "died" in entry["error_message"] and "stopped by SIGTERM" not in entry["error_message"], entry
