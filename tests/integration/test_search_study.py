"""`search:` through the real CLI, harness and tiny model, with NVML replaced by a replayed trace:
killed with SIGKILL after its first trial, resumed, it ends where an uninterrupted search would
(the budget), with every trial an ordinary run in the manifest and its history on disk."""
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

from tests.helpers import REPO_ROOT, run_llem, small_measurement

pytestmark = pytest.mark.slow
pytest.importorskip("optuna")
TRACE = REPO_ROOT / "tests" / "fixtures" / "traces" / "ci_idle_load.jsonl"


def test_search_survives_kill_9_and_resumes_to_its_budget(tiny_model_dir, tmp_path):
    results = tmp_path / "results"
    study_yaml = tmp_path / "search.yaml"
    study_yaml.write_text(yaml.safe_dump({
        "name": "search", "results_dir": str(results),
        "base": {"model": str(tiny_model_dir), "n_prompts": 2, "decoding": {"ignore_eos": True},
                 "measurement": small_measurement()},
        "sweep": {"batch_size": [1, 2], "max_output_tokens": [2, 4]},
        "slo": {"e2e_p90_s": 1000.0},
        "search": {"objective": "energy_per_output_token", "budget": {"runs": 3}, "planner": "tpe", "seed": 1}}))
    env = {**os.environ, "LLEM_NVML_REPLAY": str(TRACE)}
    llem = subprocess.Popen([sys.executable, "-c", "from llenergymeasure.cli.main import main; main()", "run",
                             str(study_yaml)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env=env)
    try:
        history_path = _wait_for(lambda: next(results.glob("*/search_history.json"), None))
        _wait_for(lambda: _measured(history_path) >= 1 or None)
    finally:
        os.killpg(llem.pid, signal.SIGKILL)  # llem and the harness it runs, at once
        llem.wait()
    study_dir = history_path.parent
    killed = json.loads(history_path.read_text())
    assert killed["stopped"] is None and 1 <= len(killed["trials"]) <= 3
    resumed = run_llem("run", "--resume", str(study_dir), env={"LLEM_NVML_REPLAY": str(TRACE)}, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    history = json.loads(history_path.read_text())
    manifest = json.loads((study_dir / "manifest.json").read_text())
    assert history["stopped"].startswith("budget: 3 runs used of 3")
    assert [t["experiment_index"] for t in history["trials"][:len(killed["trials"])]] == \
        [t["experiment_index"] for t in killed["trials"]]  # the resume kept the trials it found
    assert len({t["experiment_index"] for t in history["trials"]}) == 3
    statuses = sorted(e["status"] for e in manifest["entries"])
    assert statuses == ["completed"] * 3 + ["skipped"]
    assert [e["error_type"] for e in manifest["entries"] if e["status"] == "skipped"] == ["NotProposed"]
    assert history["best"] is not None and history["best"]["feasible"] is True
    study_result = json.loads((study_dir / "study_result.json").read_text())
    assert study_result["search"]["stopped"] == history["stopped"]
    assert study_result["pareto"]["answer"]["best"]["config_hash"]
    pareto = run_llem("results", "pareto", str(study_dir))
    assert pareto.returncode == 0 and "answer: " in pareto.stdout


def _measured(history_path: Path) -> int:
    try:
        return sum(1 for t in json.loads(history_path.read_text())["trials"] if t["status"] == "measured")
    except (OSError, ValueError, KeyError):
        return 0


def _wait_for(probe, timeout_s: float = 600):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError("timed out waiting for the search to progress")
