"""Where a study's wall time goes: inside measured windows, and everything else.

Runs studies of the tiny model through `run_study` (local runner) — the quickstart
(examples/quickstart.yaml: 2 configurations × 3 cycles) and a 3-cycle study of one configuration —
and splits each study's wall time into parts taken from what the study recorded, not from guesses:

  window            result.window_s (the measured windows)
  baseline          result.baseline.duration_s (when fresh) + result.loaded_idle.duration_s
  engine import     result.engine_import_s where recorded (else inside model load)
  model load        result.model_load_s
  warm-up           result.warmup.duration_s
  harness other     harness_wall_s minus the above (environment, prompts, metrics after the window)
  process start     result.started_at − manifest entry started_at (spawn, Python, harness imports)
  process end       entry finished_at − result.finished_at (result write, exit, reading the result)
  gaps, cool-down   configured gaps + result.thermal.cooldown_wait_s (deliberate waits between runs)
  between runs      entry[i+1].started_at − entry[i].finished_at − the deliberate waits (manifest
                    writes, run directory, experiment.json)
  study start/end   study_result started_at → first run; last run → finished_at (pre-flight, locks,
                    manifest; final manifest)
  study setup       the study call's own clock at its start → study_result started_at (expansion)
  outputs           study_result finished_at → the call's return (summary statistics,
                    study_result.json, CSV/parquet, the run history)

`orchestrator/run` = (process start + process end + between runs + study start/end + study setup +
outputs) / runs: the time per run spent outside the harness that is neither measurement nor a
deliberate wait.

    .venv/bin/python bench/orchestration_overhead.py [--cycles 3] [--before REF] [--only NAME] [--profile DIR]

`--before REF` also runs the same studies on the code of git REF (e.g. main), interleaved in the
same invocation, and prints both side by side; then each tree rewrites the first study's output
files 5 times in fresh processes, interleaved (the end-of-study cost, imports included, without the
noise of whole studies on a shared machine). `--only quickstart` runs one study; `--profile DIR`
writes a cProfile of each study's orchestrator (pstats files) for `python -m pstats`. One study per
tree: on a loaded machine the harness parts (load, warm-up, window) swing by 2× between runs, so
compare the orchestrator parts and the outputs A/B, not the totals.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PARTS = ["window", "baseline", "engine import", "model load", "warm-up", "harness other", "process start",
         "process end", "gaps, cool-down", "between runs", "study start/end", "study setup", "outputs"]
ORCHESTRATOR_PARTS = ["process start", "process end", "between runs", "study start/end", "study setup", "outputs"]


def _t(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def breakdown(study_dir: Path, call_start: float, call_end: float) -> dict:
    """Seconds per part of one finished study, from its manifest, study_result.json and result.json files."""
    study = json.loads((study_dir / "study_result.json").read_text())
    manifest = json.loads((study_dir / "manifest.json").read_text())
    protocol = study.get("measurement_protocol", {})
    entries = sorted((e for e in manifest["entries"] if e.get("started_at")), key=lambda e: e["started_at"])
    parts = dict.fromkeys(PARTS, 0.0)
    previous = None
    for entry in entries:
        result = json.loads((study_dir / entry["result_file"]).read_text()) if entry.get("result_file") else None
        if result is None:
            raise SystemExit(f"run {entry.get('run_id')} did not complete: {entry.get('error_message')}")
        baseline, loaded = result.get("baseline") or {}, result.get("loaded_idle") or {}
        inside = {"window": result["window_s"],
                  "baseline": (baseline.get("duration_s") or 0.0) * bool(baseline.get("fresh"))
                  + (loaded.get("duration_s") or 0.0),
                  "engine import": result.get("engine_import_s") or 0.0,
                  "model load": result["model_load_s"],
                  "warm-up": (result.get("warmup") or {}).get("duration_s") or 0.0}
        for key, value in inside.items():
            parts[key] += value
        parts["harness other"] += result["harness_wall_s"] - sum(inside.values())
        parts["process start"] += _t(result["started_at"]) - _t(entry["started_at"])
        parts["process end"] += _t(entry["finished_at"]) - _t(result["finished_at"])
        if previous is not None:
            same_cycle = previous["cycle"] == entry["cycle"]
            wait = protocol.get("experiment_gap_s" if same_cycle else "cycle_gap_s") or 0.0
            wait += (result.get("thermal") or {}).get("cooldown_wait_s") or 0.0
            parts["gaps, cool-down"] += wait
            parts["between runs"] += _t(entry["started_at"]) - _t(previous["finished_at"]) - wait
        previous = entry
    parts["study start/end"] = (_t(entries[0]["started_at"]) - _t(study["started_at"])
                                + _t(study["finished_at"]) - _t(entries[-1]["finished_at"]))
    parts["study setup"] = _t(study["started_at"]) - call_start
    parts["outputs"] = call_end - _t(study["finished_at"])
    return {"wall_s": call_end - call_start, "runs": len(entries), "parts": parts, "study_dir": str(study_dir),
            "engine_import_recorded": any("engine_import_s" in json.loads((study_dir / e["result_file"]).read_text())
                                          for e in entries)}


def studies(model: Path, results: Path, cycles: int) -> dict[str, dict]:
    import yaml

    quick = yaml.safe_load((ROOT / "examples" / "quickstart.yaml").read_text())
    quick["base"]["model"] = str(model)
    quick["results_dir"] = str(results)
    quick["execution"]["n_cycles"] = cycles
    one = {"name": "tiny-cycles", "results_dir": str(results), "runners": {"transformers": "local"},
           "base": {"model": str(model), "n_prompts": 8, "max_input_tokens": 32, "max_output_tokens": 16,
                    "batch_size": 4, "measurement": {"baseline": {"duration_s": 2}}},
           "execution": {"n_cycles": cycles}}
    return {"quickstart": quick, f"{cycles}-cycle tiny": one}


def worker(spec_path: str, out_path: str, profile: str | None) -> None:
    """One study in this process (the code on sys.path: this tree, or --before's)."""
    from llenergymeasure import run_study
    from llenergymeasure.domain import StudyConfig

    study = StudyConfig.model_validate(json.loads(Path(spec_path).read_text()))
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    start = time.time()
    result = run_study(study)
    end = time.time()
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    Path(out_path).write_text(json.dumps(breakdown(Path(result.study_dir), start, end)))


def run_one(name: str, spec: dict, tree: Path | None, tmp: Path, profile_dir: Path | None, label: str) -> dict:
    spec_path, out_path = tmp / "spec.json", tmp / "out.json"
    spec_path.write_text(json.dumps(spec))
    env = {**os.environ, "LLEM_HISTORY": str(tmp / "history.jsonl")}
    if tree is not None:  # PYTHONPATH comes before the editable install's finder
        env["PYTHONPATH"] = os.pathsep.join([str(tree / "orchestrator"), str(tree / "harness")])
    cmd = [sys.executable, __file__, "--worker", str(spec_path), str(out_path)]
    if profile_dir is not None:
        cmd += ["--profile", str(profile_dir / f"{label}-{name.replace(' ', '_')}.pstats")]
    subprocess.run(cmd, check=True, env=env, cwd=tmp, stdout=subprocess.DEVNULL)
    return json.loads(out_path.read_text())


def export_tree(ref: str, dest: Path) -> Path:
    """The orchestrator and harness of git `ref`, extracted (no worktree, no checkout)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "orchestrator", "harness"],
                             check=True, capture_output=True).stdout
    dest.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


OUTPUTS_CODE = (
    "import sys, time; t = time.perf_counter(); from pathlib import Path; "
    "from llenergymeasure.domain import StudyResult; from llenergymeasure.results.outputs import write_study_outputs; "
    "r = StudyResult.model_validate_json(Path(sys.argv[1]).read_text()); "
    "r.configurations, r.configurations_by_gpu = [], []; write_study_outputs(Path(sys.argv[2]), r); "
    "print(time.perf_counter() - t)")


def outputs_ab(study_dir: str, trees: dict[str, Path | None], repeats: int = 5) -> None:
    """The study's output files written again in a fresh process per tree, interleaved: the end-of-study
    cost (imports included) without the noise of whole studies on a shared machine."""
    times: dict[str, list[float]] = {label: [] for label in trees}
    source = Path(study_dir) / "study_result.json"  # read, never rewritten: each tree writes its own copy
    for n in range(repeats):
        for label, tree in trees.items():
            env = dict(os.environ)
            if tree is not None:
                env["PYTHONPATH"] = os.pathsep.join([str(tree / "orchestrator"), str(tree / "harness")])
            scratch = Path(study_dir).with_name(f"outputs-{label}-{n}")
            scratch.mkdir()
            proc = subprocess.run([sys.executable, "-c", OUTPUTS_CODE, str(source), str(scratch)], env=env,
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"rewriting the outputs with {label} failed:\n{proc.stderr[-2000:]}")
            times[label].append(float(proc.stdout.strip().splitlines()[-1]))
    print(f"\nstudy outputs rewritten in a fresh process ({repeats}× each, interleaved): " + "; ".join(
        f"{label}: median {statistics.median(v):.2f} s ({min(v):.2f}-{max(v):.2f})" for label, v in times.items()))


def report(name: str, figures: dict[str, dict]) -> None:
    labels = list(figures)
    print(f"\n== {name}: " + "; ".join(f"{k}: {v['runs']} runs, wall {v['wall_s']:.1f} s" for k, v in figures.items()))
    print(f"{'part':<18}" + "".join(f"{k + ' s':>14}{'%':>7}" for k in labels))
    for part in PARTS:
        print(f"{part:<18}" + "".join(f"{v['parts'][part]:>14.2f}{100 * v['parts'][part] / v['wall_s']:>7.1f}"
                                      for v in figures.values()))
    print(f"{'orchestrator/run':<18}" + "".join(
        f"{sum(v['parts'][p] for p in ORCHESTRATOR_PARTS) / v['runs']:>14.2f}{'':>7}" for v in figures.values()))
    for label, v in figures.items():
        window = v["parts"]["window"]
        note = "" if v["engine_import_recorded"] else " (engine import not recorded apart: inside model load)"
        print(f"{label}: {100 * window / v['wall_s']:.1f} % of the study's wall time inside measured windows{note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--before", help="git ref to run side by side (e.g. main)")
    parser.add_argument("--profile", type=Path, help="directory for cProfile stats of each study")
    parser.add_argument("--only", help="run only the study whose name starts with this (quickstart, 3-cycle)")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker, str(args.profile) if args.profile else None)
        return
    from llenergymeasure.models import make_tiny_model

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model = make_tiny_model(tmp / "tiny")
        trees = {"now": None}
        if args.before:
            trees = {args.before: export_tree(args.before, tmp / "before"), "now": None}
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
        collected: dict[str, dict[str, list[dict]]] = {}
        for name, spec in studies(model, tmp / "results", args.cycles).items():
            if args.only and not name.startswith(args.only):
                continue
            for label, tree in trees.items():  # interleaved: the load of the machine hits both alike
                collected.setdefault(name, {})[label] = run_one(name, spec, tree, tmp, args.profile, label)
        for name, figures in collected.items():
            report(name, figures)
        if collected:
            outputs_ab(next(iter(next(iter(collected.values())).values()))["study_dir"], trees)
    if args.before:
        print("\norchestrator/run = (process start + process end + between runs + study start/end + study setup + "
              "outputs) / runs")


if __name__ == "__main__":
    main()
