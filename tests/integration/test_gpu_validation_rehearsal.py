"""The GPU validation command, rehearsed end to end on CPU (`--replay`), and its travel preparation.

The rehearsal replays synthetic session-layout traces (tests/fixtures/traces/rehearsal_*.jsonl)
and runs the toy `llama-test` shape on CPU: it proves the command, its stages, the study through
`llem run`, the trace writer and the table work together; its figures are not measurements.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from llem_harness.measurement.devices.replay import ReplayBackend, read_trace
from tests.helpers import REPO_ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-validation")
    env = {k: v for k, v in os.environ.items() if k != "LLEM_NVML_REPLAY"}
    proc = subprocess.run([sys.executable, "bench/gpu_validation.py", str(out), "--replay",   # default settings
                           "--model-dir", str(out.parent / "model")],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1200)
    return out, proc


def test_rehearsal_runs_every_stage_and_prints_the_table(rehearsal):
    out, proc = rehearsal
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "results.json").read_text())
    assert report["mode"].startswith("REHEARSAL")
    assert all(stage["rc"] == 0 for stage in report["stages"].values())
    # Every stage inside its share of the budget, none cut; the study's plan fitted its share.
    shares = report["time_plan"]["shares_s"]
    assert list(report["stages"]) == list(shares)
    for name, stage in report["stages"].items():
        assert not stage["timed_out"] and stage["wall_s"] <= shares[name], (name, stage, shares[name])
    assert report["study_plan"]["fits"] and report["study_plan"]["n_runs"] == 10
    assert (report["study"]["completed_runs"], report["study"]["failed_runs"], report["study"]["cut_runs"]) == (10, 0, 0)
    assert "CUT" not in proc.stdout
    assert report["pytest_gpu"]["failed"] == 0 and report["pytest_gpu"]["skipped"] >= 1  # no NVML here
    device = report["device"]
    assert not device["errors"]
    assert device["agreement"]["pass"] is True                      # the synthetic counter is the integral
    assert device["idle_preload"]["power_instant_w"]["mean"] == pytest.approx(60, abs=1)
    assert device["loaded_idle"]["power_instant_w"]["mean"] == pytest.approx(88, abs=1)
    assert device["cooldown"]["reached"] is True
    assert len(device["overhead"]["reps"]) >= 2
    per_batch = report["study"]["per_batch_size"]
    assert set(per_batch) == {"1", "8"} and all(s["n"] == 5 and s["mean"] > 0 for s in per_batch.values())
    assert all(s["verdict"] in ("PASS", "FAIL", "INCONCLUSIVE") and len(s["cv_ci95"]) == 2 for s in per_batch.values())
    assert report["device"]["overhead"]["verdict"] in ("PASS", "FAIL", "INCONCLUSIVE")
    assert "INCONCLUSIVE" in proc.stdout and "time (used / share)" in proc.stdout
    (overhead,) = report["window_overhead"]["results"]  # the measured window against a bare generate loop
    assert overhead["token_timing"]["method"] == "host_clock_per_step" and len(overhead["reps"]) == 5
    assert overhead["window_ratio"]["median"] > 0 and overhead["sync_per_step_ratio"]["median"] > 0
    for check in ("REHEARSAL", "agreement (steady window)", "J/token, batch 8", "sampler overhead",
                  "cool-down to idle temp", "idle, model loaded", "window / bare throughput"):
        assert check in proc.stdout
    assert "| check | value |" in (out / "summary.md").read_text()


def test_rehearsal_traces_replay_with_their_phases(rehearsal):
    out, _ = rehearsal
    session = next((out / "traces").glob("*_session.jsonl"))
    header, rows = read_trace(session)
    assert list(header["phases"]) == ["idle", "load", "loaded_idle", "ramp", "steady", "cooldown"]
    assert "REHEARSAL" in header["note"]
    backend = ReplayBackend(header, rows)
    assert backend.devices()[0].read_energy().energy_mj is not None
    for name in ("idle", "ramp", "steady", "cooldown"):
        assert (out / "traces" / f"rehearsal_{name}.jsonl").is_file()


def _prepare(env_extra: dict) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_extra}
    return subprocess.run(["bash", "scripts/gpu-travel-prepare.sh", "--check-only"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_travel_size_check_counts_the_wheels_and_refuses_over_the_limit(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "big-1.0-py3-none-any.whl").write_bytes(b"\0" * (3 * 1024 * 1024))
    ok = _prepare({"LLEM_TRAVEL_WHEELS": str(wheels)})
    assert ok.returncode == 0, ok.stderr
    assert "wheels 3.0 MiB (1 files)" in ok.stdout and "--no-index --no-deps --target" in ok.stdout
    assert "timeout" in ok.stdout and "bench/gpu_validation.py" in ok.stdout
    over = _prepare({"LLEM_TRAVEL_WHEELS": str(wheels), "LLEM_TRAVEL_LIMIT_MIB": "2"})
    assert over.returncode == 1 and "over the limit" in over.stderr


def test_travel_pins_are_committed_and_a_missing_pin_stops_the_preparation(tmp_path):
    """The wheels are the versions the tests ran with (scripts/gpu-travel-pins.txt), never the newest."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    pins = (REPO_ROOT / "scripts" / "gpu-travel-pins.txt").read_text()
    ok = _prepare({"LLEM_TRAVEL_WHEELS": str(wheels)})
    assert ok.returncode == 0, ok.stderr
    pinned = ok.stdout.split("pinned: ", 1)[1].splitlines()[0].split()
    assert pinned and all("==" in spec and spec in pins for spec in pinned)
    assert any(spec.startswith("pydantic==") for spec in pinned) and any(s.startswith("pytest==") for s in pinned)
    partial = tmp_path / "pins.txt"
    partial.write_text("\n".join(line for line in pins.splitlines() if not line.startswith("gguf==")) + "\n")
    missing = _prepare({"LLEM_TRAVEL_WHEELS": str(wheels), "LLEM_TRAVEL_PINS": str(partial)})
    assert missing.returncode == 2 and "no pin" in missing.stderr and "gguf" in missing.stderr
