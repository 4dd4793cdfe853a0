"""GPU validation in one command: environment, GPU tests, idle, agreement, repeatability, overhead.

    python bench/gpu_validation.py OUT_DIR            # on a CUDA host: about 8 minutes on one GPU
    python bench/gpu_validation.py OUT_DIR --replay   # CPU rehearsal against recorded-format traces

Stages, each bounded in time and recorded even when it fails (nothing measured is lost):
environment (NVML, read-only) -> a random-weight model in the Llama-3.2-1B shape (`llem models
make`) -> `pytest -m gpu` -> the device stage (gpu_validation_device.py: pre-load and loaded idle,
the three-way energy agreement, cool-down, sampler overhead, real NVML traces) -> the measured
window's throughput against a bare `generate` loop (bench/measurement_overhead.py) -> a short study
through `llem run` (2 batch sizes x 5 cycles, windows sized from the device stage's timings) whose
J/token mean, std, CV and 95 % CI are computed per configuration. Everything lands in OUT_DIR
(results.json, summary.md, traces/, study results, logs) and a table is printed; thresholds and
how to read them are in docs/validation.md. It never changes clocks, power limits or any setting.

`--replay` runs the same stages on CPU: the toy `llama-test` shape, the device stage replaying a
session trace at 10x speed, the study's harness replaying a looping trace. It rehearses the command
and the analysis; its figures describe the traces, not this machine, and are labelled REHEARSAL.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
for _p in (REPO / "orchestrator", REPO / "harness", BENCH):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from gpu_validation_env import environment_nvml, environment_trace  # noqa: E402
from gpu_validation_report import print_table, write_summary  # noqa: E402
from gpu_validation_stats import jpt_summary  # noqa: E402

TRACES = REPO / "tests" / "fixtures" / "traces"
REHEARSAL_SESSION = TRACES / "rehearsal_session.jsonl"   # synthetic, in the session-trace layout
REHEARSAL_STUDY = TRACES / "rehearsal_steady_loop.jsonl"  # synthetic, looping: the study's harness replays it
STUDY_BATCHES = (1, 8)


class Budget:
    """The command's time limit: each stage gets what it needs at most, never past the end."""

    def __init__(self, total_s: float):
        self.total_s = total_s
        self.end = time.monotonic() + total_s

    def left(self, reserve_share: float = 0.0) -> float:
        """Seconds left, keeping `reserve_share` of the whole budget for the stages after this one."""
        return max(1.0, self.end - time.monotonic() - reserve_share * self.total_s)


def run_stage(cmd: list[str], log: Path, timeout_s: float, env: dict | None = None) -> dict:
    """Run a subprocess into a log file; on timeout stop its process group (TERM, then KILL) and say so."""
    t0 = time.monotonic()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=REPO, env=env, start_new_session=True)
        try:
            rc = proc.wait(timeout=max(1.0, timeout_s))
            timed_out = False
        except subprocess.TimeoutExpired:  # the stage's own process group: llem run's harness children too
            timed_out = True
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                rc = proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                rc = proc.wait()
    return {"cmd": " ".join(cmd), "rc": rc, "timed_out": timed_out, "wall_s": round(time.monotonic() - t0, 1),
            "log": str(log)}


def pytest_counts(junit: Path) -> dict:
    if not junit.is_file():
        return {}
    suite = ET.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    total = int(suite.get("tests", 0))
    failed, errors, skipped = (int(suite.get(k, 0)) for k in ("failures", "errors", "skipped"))
    return {"passed": total - failed - errors - skipped, "failed": failed, "errors": errors, "skipped": skipped}


def study_yaml(out: Path, model: Path, calibration: dict | None, cycles: int, window_s: float, replay: bool) -> Path:
    """2 batch sizes x `cycles`, fixed-length greedy decode, n_prompts sized for >= window_s per run."""
    new_tokens = (calibration or {}).get("new_tokens", 128)
    per_batch = (calibration or {}).get("seconds_per_batch", {})
    sweep = []
    for b in STUDY_BATCHES:
        seconds = per_batch.get(str(b))
        n_batches = max(2, math.ceil(window_s / seconds)) if seconds else 8
        sweep.append({"batch_size": b, "n_prompts": n_batches * b})
    study = {
        "name": "gpu-validation", "results_dir": str(out / "study"),
        "base": {"model": str(model), "engine": "transformers", "dataset": "synthetic", "max_input_tokens": 32,
                 "max_output_tokens": new_tokens, "decoding": {"ignore_eos": True},
                 "measurement": {"baseline": {"duration_s": 1.0 if replay else 5.0, "reuse_ttl_s": 900},
                                 "warmup": {"min_batches": 1, "max_batches": 2, "window": 2, "cv_threshold": 0.2},
                                 "min_window_s": window_s * 0.8}},
        "experiments": sweep,
        "execution": {"n_cycles": cycles, "cycle_order": "interleaved"},
        "runners": {"transformers": "local"},
    }
    import yaml

    path = out / "study.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def window_overhead_cmd(py: str, model_dir: Path, out: Path, replay: bool) -> list[str]:
    """bench/measurement_overhead.py on this device: the measured window's throughput vs a bare `generate`
    loop, and the bare loop with the per-step synchronise the harness used before, interleaved."""
    cmd = [py, str(BENCH / "measurement_overhead.py"), "--engines", "transformers", "--model-dir", str(model_dir),
           "--sync-per-step", "--json", str(out / "window_overhead.json")]
    if replay:
        return cmd + ["--device", "cpu", "--reps", "5", "--warmup", "1", "--rep-s", "0.2", "--output-tokens", "8"]
    return cmd + ["--device", "cuda", "--reps", "6", "--warmup", "1", "--rep-s", "2", "--batch-size", "8",
                  "--input-tokens", "32", "--output-tokens", "64"]


def study_stats(out: Path) -> dict:
    """J/output token per configuration, from the result.json files the study wrote."""
    groups: dict[str, list[float]] = {}
    for result in sorted((out / "study").glob("*/runs/*/result.json")):
        data = json.loads(result.read_text())
        batch = str(data.get("config", {}).get("batch_size"))
        jpt = (data.get("metrics") or {}).get("energy_per_output_token_j")
        if jpt is not None:
            groups.setdefault(batch, []).append(jpt)
    failed = len(list((out / "study").glob("*/runs/*/error.json")))
    return {"per_batch_size": {b: jpt_summary(v) for b, v in groups.items()}, "failed_runs": failed}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out_dir", type=Path)
    p.add_argument("--replay", nargs="?", const=str(REHEARSAL_SESSION), default=None, metavar="SESSION_TRACE",
                   help="CPU rehearsal: replay this recorded-format trace (default: the synthetic rehearsal trace)")
    p.add_argument("--budget-s", type=float, default=470.0, help="hard limit for the whole command")
    p.add_argument("--cycles", type=int, default=5)
    p.add_argument("--shape", default=None, help="model shape (default llama-3.2-1b; rehearsal llama-test)")
    p.add_argument("--model-dir", type=Path, default=None, help="where the model is written (outside OUT_DIR)")
    a = p.parse_args(argv)
    replay = a.replay is not None
    budget = Budget(a.budget_s)
    out = a.out_dir.resolve()
    (out / "logs").mkdir(parents=True, exist_ok=True)
    shape = a.shape or ("llama-test" if replay else "llama-3.2-1b")
    model_dir = a.model_dir or Path(tempfile.gettempdir()) / f"llem-validation-{shape}"
    py = sys.executable
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "orchestrator"), str(REPO / "harness"), str(REPO)]
                                        + [x for x in [env.get("PYTHONPATH")] if x])
    env.pop("LLEM_NVML_REPLAY", None)
    env.setdefault("HF_HUB_OFFLINE", "1")  # local models only: never wait on a hub the host cannot reach
    report: dict = {"mode": "REHEARSAL (CPU, replayed traces)" if replay else "GPU",
                    "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "shape": shape,
                    "cycles": a.cycles, "stages": {}}

    def save() -> None:
        (out / "results.json").write_text(json.dumps(report, indent=2, default=str) + "\n")

    report["environment"] = environment_trace(a.replay) if replay else environment_nvml()
    save()
    report["stages"]["model"] = run_stage(
        [py, "-m", "llenergymeasure", "models", "make", "--shape", shape, "--dtype", "bf16",
         "--device", "cpu" if replay else "cuda",
         str(model_dir)], out / "logs" / "model.log", budget.left(0.75), env)
    report["stages"]["pytest_gpu"] = run_stage(
        [py, "-m", "pytest", "-m", "gpu", "tests/gpu", "-q", "-p", "no:cacheprovider",
         f"--junitxml={out / 'pytest-gpu.xml'}"], out / "logs" / "pytest-gpu.log", min(90.0, budget.left(0.68)), env)
    report["pytest_gpu"] = pytest_counts(out / "pytest-gpu.xml")
    save()
    device_cmd = [py, str(BENCH / "gpu_validation_device.py"), str(out), "--model", str(model_dir)]
    if replay:
        device_cmd += ["--replay", a.replay, "--speed", "10", "--new-tokens", "16", "--overhead-reps", "4",
                       "--overhead-calls", "1"]
    report["stages"]["device"] = run_stage(device_cmd, out / "logs" / "device.log", budget.left(0.45), env)
    device = json.loads((out / "device.json").read_text()) if (out / "device.json").is_file() else {}
    report["device"] = device
    save()
    report["stages"]["window_overhead"] = run_stage(window_overhead_cmd(py, model_dir, out, replay),
                                                    out / "logs" / "window_overhead.log",
                                                    min(150.0, budget.left(0.3)), env)
    overhead_file = out / "window_overhead.json"
    report["window_overhead"] = json.loads(overhead_file.read_text()) if overhead_file.is_file() else {}
    save()
    study_env = dict(env)
    if replay:
        study_env["LLEM_NVML_REPLAY"] = str(REHEARSAL_STUDY)
        # A rehearsal measures nothing: it must not queue behind (or block) real studies of this CPU.
        study_env.setdefault("LLEM_LOCK_DIR", str(out / "locks"))
    window_s = 1.0 if replay else 10.5
    yaml_path = study_yaml(out, model_dir, device.get("calibration"), a.cycles, window_s, replay)
    report["stages"]["study"] = run_stage([py, "-m", "llenergymeasure", "run", str(yaml_path), "-q", "--wait-for-devices"],
                                          out / "logs" / "study.log", max(1.0, budget.left() - 10), study_env)
    report["study"] = {**study_stats(out), "target_window_s": window_s}
    report["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    save()
    write_summary(report, out / "summary.md")
    print_table(report)
    failed = [k for k, v in report["stages"].items() if v["rc"] != 0]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
