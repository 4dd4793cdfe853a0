"""The local runner's pre-imported worker: real studies of the tiny model, real forks, real kills."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from llenergymeasure import run_study
from llenergymeasure.domain import ExperimentResult, StudyConfig
from llenergymeasure.runners.local_orphans import find_orphans, pid_alive
from llenergymeasure.runners.local_worker import PreimportedWorker, _differing
from tests.helpers import small_measurement

pytestmark = pytest.mark.slow
LONG_WORKLOAD = {"n_prompts": 500, "max_output_tokens": 256, "decoding": {"ignore_eos": True},
                 "measurement": {"warmup": {"enabled": False}, "baseline": {"duration_s": 0.5}}}


def _study(tiny_model_dir: Path, results_dir: Path, n_cycles: int = 2) -> StudyConfig:
    return StudyConfig.model_validate({
        "name": "worker", "results_dir": str(results_dir), "execution": {"n_cycles": n_cycles},
        "base": {"model": str(tiny_model_dir), "n_prompts": 2, "max_input_tokens": 16, "max_output_tokens": 4,
                 "measurement": small_measurement()}})


def _results(study_dir: Path) -> list[tuple[ExperimentResult, str]]:
    runs = sorted((study_dir / "runs").iterdir())
    return [(ExperimentResult.model_validate_json((run / "result.json").read_text()),
             (run / "runner.log").read_text()) for run in runs]


def test_every_run_is_forked_from_one_worker_that_has_imported_the_engine(tiny_model_dir, tmp_path):
    results = _results(Path(run_study(_study(tiny_model_dir, tmp_path)).study_dir))
    assert len(results) == 2
    worker_pids = set()
    for result, log in results:
        assert result.harness_start == "forked from a pre-imported worker"
        assert result.engine_import_s is not None and result.engine_import_s < 0.5  # imported by the worker
        assert result.model_load_s > 0 and result.n_requests == 2
        assert len([line for line in log.splitlines() if line.startswith("llem: ")]) == 1
        worker_pids.add(_worker_pid(log))
    assert len(worker_pids) == 1  # one worker per study and engine
    assert not pid_alive(worker_pids.pop())  # stopped with its study


def test_worker_off_runs_a_fresh_process_that_times_its_own_import(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("LLEM_LOCAL_WORKER", "0")
    [(result, log)] = _results(Path(run_study(_study(tiny_model_dir, tmp_path, n_cycles=1)).study_dir))
    assert result.harness_start == "fresh process"
    assert result.engine_import_s > 0.2  # torch + transformers imported in the run's own process
    assert "harness started as a fresh process: the pre-imported worker is off (LLEM_LOCAL_WORKER=0)" in log


def test_a_worker_that_cannot_import_says_why(tmp_path):
    worker = PreimportedWorker(sys.executable, "no_such_engine", dict(os.environ))
    try:
        why = worker.wait_ready(timeout_s=120)
    finally:
        worker.close()
    assert why is not None and "could not import the engine" in why and "no_such_engine" in why


def test_the_worker_refuses_to_fork_with_a_thread_running():
    from llem_harness.worker import fork_refusal, os_threads

    baseline = os_threads()
    assert fork_refusal(baseline) is None
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert "Python threads" in (fork_refusal(baseline) or "")
    finally:
        stop.set()
        thread.join()


def test_a_run_environment_unlike_the_workers_is_named():
    base = {"HOME": "/root", "OMP_NUM_THREADS": "1"}
    assert _differing({**base, "CUDA_VISIBLE_DEVICES": "1"}, base) == []  # read after the fork: may differ
    assert _differing({**base, "OMP_NUM_THREADS": "2"}, base) == ["OMP_NUM_THREADS"]


def test_kill_9_of_llem_leaves_neither_worker_nor_harness(tiny_model_dir, tmp_path):
    path = tmp_path / "study.yaml"
    results = tmp_path / "results"
    path.write_text(yaml.safe_dump({"name": "kill9", "results_dir": str(results),
                                    "base": LONG_WORKLOAD | {"model": str(tiny_model_dir)},
                                    "execution": {"n_cycles": 3}}))
    llem = subprocess.Popen([sys.executable, "-c", "from llenergymeasure.cli.main import main; main()", "run",
                             str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    harness = _wait_for_pids(f"llem_harness {results}")
    workers = [pid for pid in _pgrep("llem_harness.worker") if _ppid(pid) == llem.pid]
    assert len(harness) == 1 and len(workers) == 1 and _ppid(harness[0]) == workers[0]
    os.kill(llem.pid, signal.SIGKILL)
    llem.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(pid_alive(p) for p in harness + workers):
        time.sleep(0.1)
    assert [p for p in harness + workers if pid_alive(p)] == []
    assert [o for o in find_orphans() if o[1] == llem.pid] == []  # `ps`: nothing carries the dead llem's mark
    manifest = json.loads(next(results.glob("*/manifest.json")).read_text())
    assert manifest["entries"][0]["status"] == "running"  # what llem could not write: resume reruns it


def _pgrep(pattern: str) -> list[int]:
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    return [int(p) for p in found.stdout.split() if int(p) != os.getpid()]


def _ppid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _wait_for_pids(pattern: str, timeout_s: float = 180) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pids = _pgrep(pattern)
        if pids:
            time.sleep(2.0)  # let the harness start its work
            return pids
        time.sleep(0.2)
    raise AssertionError(f"no process matching {pattern!r} started")


def _worker_pid(runner_log: str) -> int:
    """The pre-imported worker a harness was forked from, as its runner.log's `llem:` line names it."""
    [line] = [line for line in runner_log.splitlines() if line.startswith("llem: harness pid ")]
    assert "forked from a pre-imported worker (pid " in line
    return int(line.rsplit("(pid ", 1)[1].split(",")[0])


def test_a_worker_killed_between_runs_is_replaced_and_nothing_is_lost(tiny_model_dir, tmp_path):
    """kill -9 of the worker (what the OOM killer does) after the first run: the next run starts
    another worker, says so in its runner.log, and every run completes forked."""
    data = _study(tiny_model_dir, tmp_path, n_cycles=3).model_dump(mode="json")
    data["execution"]["cycle_gap_s"] = 3.0  # the kill lands between runs, never on a harness
    killed: list[int] = []

    def kill_after_first_run() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed:
            for manifest in tmp_path.glob("*/manifest.json"):
                try:
                    entries = json.loads(manifest.read_text())["entries"]
                except (ValueError, KeyError):
                    continue
                if entries and entries[0]["status"] == "completed":
                    pid = _worker_pid((manifest.parent / "runs" / entries[0]["run_id"] / "runner.log").read_text())
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_after_first_run)
    killer.start()
    result = run_study(StudyConfig.model_validate(data))
    killer.join()
    assert len(killed) == 1 and result.summary.completed == 3
    results = _results(Path(result.study_dir))
    assert all(r.harness_start == "forked from a pre-imported worker" for r, _ in results)
    second_log = results[1][1]
    assert f"the pre-imported worker (pid {killed[0]}) exited (code -9); starting another (restart 1)" in second_log
    assert f"(pid {killed[0]}," not in second_log  # forked from the new worker
