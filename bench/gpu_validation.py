"""GPU validation in one command: environment, GPU tests, idle, agreement, repeatability, overhead.

    python bench/gpu_validation.py OUT_DIR            # on a CUDA host: at most 7.5 minutes on one GPU
    python bench/gpu_validation.py OUT_DIR --replay   # CPU rehearsal against recorded-format traces

Stages, each bounded in time by its share of the budget (SHARES_S: a stage may use what an earlier
stage left, never a later stage's share) and recorded even when it fails or is cut (nothing measured
is lost; a stage stopped at its share is "cut", with the reason, never "failed"):
environment (NVML, read-only) -> a random-weight model in the Llama-3.2-1B shape (`llem models
make`) -> `pytest -m gpu` -> the device stage (gpu_validation_device.py: pre-load and loaded idle,
the three-way energy agreement, cool-down, sampler overhead, real NVML traces) -> the measured
window's throughput against a bare `generate` loop (bench/measurement_overhead.py) -> a short study
through `llem run` (2 batch sizes x 5 cycles of 64 new tokens, windows sized from the device stage's
timings to fit the study's share) whose J/token mean, std, CV and its 95 % interval are computed per
configuration. Everything lands in OUT_DIR
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


# Each stage's share of the budget, in seconds. GPU: the 450 s (7.5 min) default on one H100 with the
# 1B shape (docs/validation.md, "Time plan", says what each share holds); the rest of --budget-s, if
# larger, is spare. Rehearsal: the same stages on CPU with the toy shape and replayed traces.
SHARES_S = {
    "gpu": {"model": 40.0, "pytest_gpu": 55.0, "device": 105.0, "window_overhead": 40.0, "study": 200.0},
    # Measured on 2 shared CPU cores at a load average of ~12: model 30 s, pytest 23 s, device 93 s,
    # window 31 s, study ~10 s a run; each share is about twice that, the rehearsal is no lease.
    "rehearsal": {"model": 90.0, "pytest_gpu": 60.0, "device": 180.0, "window_overhead": 90.0, "study": 300.0},
}
RESERVE_S = 10.0  # the table, the summary and the last save after the study
# The study's plan: a run's fixed cost besides its window (process start, model load, loaded idle,
# warm-up, result), and the window's bounds. The window is sized to the study's share, never past it.
STUDY_PLAN = {
    "gpu": {"run_overhead_s": 9.0, "start_s": 15.0, "window_s": 8.0, "min_window_s": 5.0, "new_tokens": 64,
            "baseline_s": 2.0, "gate_s": 3.0},
    "rehearsal": {"run_overhead_s": 12.0, "start_s": 30.0, "window_s": 1.0, "min_window_s": 0.5, "new_tokens": 16,
                  "baseline_s": 1.0, "gate_s": 1.0},
}


class Budget:
    """The command's time limit, split into stage shares: a stage's limit is the time left minus the
    shares of the stages after it (so an early overrun can never eat the study's share) and the reserve."""

    def __init__(self, total_s: float, shares: dict[str, float]):
        self.total_s = total_s
        self.shares = dict(shares)
        self.end = time.monotonic() + total_s

    def limit(self, stage: str) -> float:
        names = list(self.shares)
        later = sum(self.shares[n] for n in names[names.index(stage) + 1:])
        return max(1.0, self.end - time.monotonic() - later - RESERVE_S)

    def plan(self) -> dict:
        return {"budget_s": self.total_s, "shares_s": self.shares, "reserve_s": RESERVE_S,
                "spare_s": round(self.total_s - sum(self.shares.values()) - RESERVE_S, 1)}


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
            "limit_s": round(max(1.0, timeout_s), 1), "log": str(log)}


def stage_outcome(stage: dict) -> str:
    """ok, cut (stopped at its share: incomplete, not failed) or failed (it ended on its own with an error)."""
    if stage.get("timed_out"):
        return "cut"
    return "ok" if stage.get("rc") == 0 else "failed"


def pytest_counts(junit: Path) -> dict:
    if not junit.is_file():
        return {}
    suite = ET.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    total = int(suite.get("tests", 0))
    failed, errors, skipped = (int(suite.get(k, 0)) for k in ("failures", "errors", "skipped"))
    return {"passed": total - failed - errors - skipped, "failed": failed, "errors": errors, "skipped": skipped}


def study_plan(calibration: dict | None, cycles: int, share_s: float, mode: str) -> dict:
    """The study's window and prompt counts, sized so that all its runs fit its share.

    window = (share - start - runs x run overhead) / runs, at most the target and at least the floor;
    at the floor a plan that still does not fit says so (`fits: false`) rather than stretching."""
    plan = STUDY_PLAN[mode]
    n_runs = cycles * len(STUDY_BATCHES)
    room = (share_s - plan["start_s"]) / n_runs - plan["run_overhead_s"]
    window_s = round(min(plan["window_s"], max(plan["min_window_s"], room)), 2)
    per_batch = (calibration or {}).get("seconds_per_batch", {})
    n_prompts = {}
    for b in STUDY_BATCHES:
        seconds = per_batch.get(str(b))
        n_prompts[str(b)] = (max(2, math.ceil(window_s / seconds)) if seconds else 8) * b
    planned_s = plan["start_s"] + n_runs * (plan["run_overhead_s"] + window_s)
    return {"n_runs": n_runs, "window_s": window_s, "n_prompts": n_prompts, "new_tokens": plan["new_tokens"],
            "planned_s": round(planned_s, 1), "share_s": share_s, "fits": planned_s <= share_s,
            "calibrated": bool(per_batch), "baseline_s": plan["baseline_s"], "gate_s": plan["gate_s"]}


def study_yaml(out: Path, model: Path, plan: dict, cycles: int) -> Path:
    """2 batch sizes x `cycles`, fixed-length greedy decode, n_prompts sized for the planned window; the
    temperature gate of each baseline bounded (`gate_s`) so it cannot stretch the study past its share."""
    sweep = [{"batch_size": b, "n_prompts": plan["n_prompts"][str(b)]} for b in STUDY_BATCHES]
    study = {
        "name": "gpu-validation", "results_dir": str(out / "study"),
        "base": {"model": str(model), "engine": "transformers", "dataset": "synthetic", "max_input_tokens": 32,
                 "max_output_tokens": plan["new_tokens"], "decoding": {"ignore_eos": True},
                 "measurement": {"baseline": {"duration_s": plan["baseline_s"], "reuse_ttl_s": 900,
                                              "temperature_max_wait_s": plan["gate_s"]},
                                 "warmup": {"min_batches": 1, "max_batches": 2, "window": 2, "cv_threshold": 0.2},
                                 "min_window_s": plan["window_s"] * 0.8}},
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
    return cmd + ["--device", "cuda", "--reps", "6", "--warmup", "1", "--rep-s", "1.5", "--batch-size", "8",
                  "--input-tokens", "32", "--output-tokens", "64"]


def study_stats(out: Path, stage: dict | None = None) -> dict:
    """J/output token per configuration, from the result.json files the study wrote, and how its runs ended:
    completed, failed (ended with an error of their own) or cut (stopped with the stage, or never started
    because the stage's share ran out: incomplete, not failed)."""
    groups: dict[str, list[float]] = {}
    checks: list[dict] = []  # each run's energy.cross_check: the in-run check, on this GPU
    for result in sorted((out / "study").glob("*/runs/*/result.json")):
        data = json.loads(result.read_text())
        batch = str(data.get("config", {}).get("batch_size"))
        jpt = (data.get("metrics") or {}).get("energy_per_output_token_j")
        if jpt is not None:
            groups.setdefault(batch, []).append(jpt)
        check = (data.get("energy") or {}).get("cross_check") or {}
        if check.get("ratio") is not None:
            checks.append(check)
    counts = {"completed": 0, "failed": 0, "cut": 0}
    manifests = sorted((out / "study").glob("*/manifest.json"))
    cut = bool((stage or {}).get("timed_out"))
    for manifest in manifests:
        for entry in json.loads(manifest.read_text()).get("entries", []):
            status = entry.get("status")
            if status == "completed":
                counts["completed"] += 1
            elif status == "failed" and not (cut and entry.get("error_type") in ("Interrupted", "interrupted")):
                counts["failed"] += 1
            elif status in ("interrupted", "running", "pending", "submitted") or status == "failed":
                counts["cut"] += 1
    if not manifests:  # no manifest: fall back to the run directories
        counts["failed"] = len(list((out / "study").glob("*/runs/*/error.json")))
    ratios = [c["ratio"] for c in checks]
    cross = {"runs": len(checks), "flagged": sum(bool(c.get("flagged")) for c in checks),
             "ratio_min": min(ratios, default=None), "ratio_max": max(ratios, default=None)}
    return {"per_batch_size": {b: jpt_summary(v) for b, v in groups.items()}, "completed_runs": counts["completed"],
            "failed_runs": counts["failed"], "cut_runs": counts["cut"], "cross_check": cross}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out_dir", type=Path)
    p.add_argument("--replay", nargs="?", const=str(REHEARSAL_SESSION), default=None, metavar="SESSION_TRACE",
                   help="CPU rehearsal: replay this recorded-format trace (default: the synthetic rehearsal trace)")
    p.add_argument("--budget-s", type=float, default=None,
                   help="hard limit for the whole command (default: the stage shares + reserve, 450 s on a GPU)")
    p.add_argument("--cycles", type=int, default=5)
    p.add_argument("--shape", default=None, help="model shape (default llama-3.2-1b; rehearsal llama-test)")
    p.add_argument("--model-dir", type=Path, default=None, help="where the model is written (outside OUT_DIR)")
    a = p.parse_args(argv)
    replay = a.replay is not None
    mode = "rehearsal" if replay else "gpu"
    shares = SHARES_S[mode]
    budget = Budget(a.budget_s if a.budget_s is not None else sum(shares.values()) + RESERVE_S, shares)
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
                    "cycles": a.cycles, "time_plan": budget.plan(), "stages": {}}

    def save() -> None:
        (out / "results.json").write_text(json.dumps(report, indent=2, default=str) + "\n")

    report["environment"] = environment_trace(a.replay) if replay else environment_nvml()
    save()
    report["stages"]["model"] = run_stage(
        [py, "-m", "llenergymeasure", "models", "make", "--shape", shape, "--dtype", "bf16",
         "--device", "cpu" if replay else "cuda",
         str(model_dir)], out / "logs" / "model.log", budget.limit("model"), env)
    report["stages"]["pytest_gpu"] = run_stage(
        [py, "-m", "pytest", "-m", "gpu", "tests/gpu", "-q", "-p", "no:cacheprovider",
         f"--junitxml={out / 'pytest-gpu.xml'}"], out / "logs" / "pytest-gpu.log", budget.limit("pytest_gpu"), env)
    report["pytest_gpu"] = pytest_counts(out / "pytest-gpu.xml")
    save()
    device_cmd = [py, str(BENCH / "gpu_validation_device.py"), str(out), "--model", str(model_dir),
                  "--new-tokens", str(STUDY_PLAN[mode]["new_tokens"])]
    if replay:
        device_cmd += ["--replay", a.replay, "--speed", "10", "--overhead-reps", "4", "--overhead-calls", "1"]
    else:  # sized for the device share (docs/validation.md, "Time plan")
        device_cmd += ["--idle-s", "12", "--steady-s", "15", "--ramp-s", "3", "--cooldown-max-s", "20",
                       "--overhead-reps", "4", "--overhead-calls", "2"]
    report["stages"]["device"] = run_stage(device_cmd, out / "logs" / "device.log", budget.limit("device"), env)
    device = json.loads((out / "device.json").read_text()) if (out / "device.json").is_file() else {}
    report["device"] = device
    save()
    report["stages"]["window_overhead"] = run_stage(window_overhead_cmd(py, model_dir, out, replay),
                                                    out / "logs" / "window_overhead.log",
                                                    budget.limit("window_overhead"), env)
    overhead_file = out / "window_overhead.json"
    report["window_overhead"] = json.loads(overhead_file.read_text()) if overhead_file.is_file() else {}
    save()
    study_env = dict(env)
    if replay:
        study_env["LLEM_NVML_REPLAY"] = str(REHEARSAL_STUDY)
        # A rehearsal measures nothing: it must not queue behind (or block) real studies of this CPU.
        study_env.setdefault("LLEM_LOCK_DIR", str(out / "locks"))
    study_limit = budget.limit("study")
    plan = study_plan(device.get("calibration"), a.cycles, min(study_limit, shares["study"]), mode)
    yaml_path = study_yaml(out, model_dir, plan, a.cycles)
    report["study_plan"] = plan
    save()
    report["stages"]["study"] = run_stage([py, "-m", "llenergymeasure", "run", str(yaml_path), "-q", "--wait-for-devices"],
                                          out / "logs" / "study.log", study_limit, study_env)
    report["study"] = {**study_stats(out, report["stages"]["study"]), "target_window_s": plan["window_s"]}
    report["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    save()
    write_summary(report, out / "summary.md")
    print_table(report)
    outcomes = [stage_outcome(v) for v in report["stages"].values()]
    return 1 if "failed" in outcomes else (3 if "cut" in outcomes else 0)


if __name__ == "__main__":
    sys.exit(main())
