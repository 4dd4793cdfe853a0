"""Runs and wall time to find the least-energy configuration under an SLO: a search against the full grid.

The same study (a 16-point sweep of the tiny model: batch_size × max_output_tokens) runs twice with
real runs of the harness: once as a grid, once with `search:` (Optuna TPE, a budget of half the
grid's runs). Prints, side by side, the runs and wall time each needed, each one's answer under the
SLO (results/pareto.py's rule) and whether the search's best is the grid's best or tied with it
within the noise. Nothing here asserts: it is a benchmark, run by hand:

    .venv/bin/python bench/search_vs_grid.py [--steady-w W | --replay TRACE] [--cycles N] [--seed S]

Without a GPU, `--steady-w 200` replays a synthetic trace at a steady 200 W: J/output token is then
200 W over the throughput, so the optimum is known (the fastest configuration) and only the timing
noise of the machine blurs it. The readings are replayed, not measured. On a GPU, give neither.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

SWEEP = {"batch_size": [1, 2, 4, 8], "max_output_tokens": [4, 8, 16, 32]}  # 16 points


def study(results_dir: Path, model: Path, cycles: int, search: dict | None):
    from llenergymeasure.domain import StudyConfig

    return StudyConfig.model_validate({
        "name": "search" if search else "grid", "results_dir": str(results_dir),
        "base": {"model": str(model), "n_prompts": 8, "decoding": {"ignore_eos": True},
                 "measurement": {"baseline": {"duration_s": 0.5},
                                 "warmup": {"min_batches": 1, "max_batches": 2, "window": 2}}},
        "sweep": SWEEP, "slo": {"e2e_p90_s": 120.0},
        "execution": {"n_cycles": cycles, "cycle_order": "interleaved"},
        **({"search": search} if search else {})})


def steady_trace(path: Path, watts: float, seconds: float = 30.0, step_s: float = 0.05) -> Path:
    """A synthetic looping one-GPU trace at a steady power (labelled synthetic in every result)."""
    gpu = {"index": 0, "uuid": "GPU-5e5e5e5e-0000-4000-8000-00000000be4c", "name": "Synthetic GPU",
           "power_limit_w": 700.0, "persistence_mode": True, "mig_mode": False, "ecc_enabled": True,
           "memory_total_mb": 81559.0, "energy_counter_supported": True, "processes": []}
    lines = [json.dumps({"format": "llem-nvml-trace", "version": 1, "source": "synthetic", "gpu_model": "synthetic",
                         "driver_version": "synthetic", "cuda_driver_version": None, "recorded_at": None,
                         "loop": True, "note": f"steady {watts:g} W (bench/search_vs_grid.py)", "gpus": [gpu]})]
    for k in range(int(seconds / step_s) + 1):
        lines.append(json.dumps({"t_s": round(k * step_s, 4), "gpu": 0, "energy_mj": int(1e6 + watts * k * step_s * 1e3),
                                 "power_instant_w": watts, "power_avg_w": watts, "temperature_c": 40.0,
                                 "sm_clock_mhz": 1400.0, "mem_clock_mhz": 2600.0, "memory_used_mb": 600.0,
                                 "utilization_pct": 50.0, "throttle_reasons": 0}))
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replay", type=Path, default=None, help="replay this NVML trace (no GPU)")
    parser.add_argument("--steady-w", type=float, default=None,
                        help="replay a synthetic trace at this steady power (no GPU): J/output token is then the "
                             "power over the throughput, so the optimum is the fastest configuration")
    parser.add_argument("--cycles", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.steady_w is not None:
        args.replay = steady_trace(Path(tempfile.mkdtemp(prefix="llem-trace-")) / "steady.jsonl", args.steady_w)
    if args.replay:
        os.environ["LLEM_NVML_REPLAY"] = str(args.replay.resolve())
    from llenergymeasure.executors import for_study
    from llenergymeasure.models import make_tiny_model
    from llenergymeasure.study.search import best_is_within
    from llenergymeasure.study.study_run import StudyRun

    work = Path(tempfile.mkdtemp(prefix="llem-search-bench-"))
    model = make_tiny_model(work / "tiny-llm", seed=0)
    n_grid = 1
    for values in SWEEP.values():
        n_grid *= len(values)
    budget = n_grid * args.cycles // 2
    rows = []
    for name, search in (("grid", None), ("search", {"objective": "energy_per_output_token", "planner": "tpe",
                                                     "seed": args.seed, "budget": {"runs": budget}})):
        config = study(work / "results", model, args.cycles, search)
        result = StudyRun(config).execute(for_study(config), wait_for_devices=True)  # queue behind other studies
        # The runs' own durations (the study's wall time would include the wait for the devices).
        manifest = json.loads((Path(result.study_dir) / "manifest.json").read_text())
        wall_s = sum(e.get("duration_s") or 0.0 for e in manifest["entries"])
        answer = (result.pareto or {}).get("answer") or {}
        rows.append((name, result.summary.completed, wall_s, answer))
    grid_answer = rows[0][3]
    print(f"{n_grid}-point sweep × {args.cycles} cycles; SLO e2e_p90_s ≤ 120; search budget {budget} runs "
          f"(TPE, seed {args.seed}); readings: {'replayed ' + str(args.replay) if args.replay else 'NVML'}")
    print(f"{'':8} {'runs':>5} {'runs [s]':>9}  best under the SLO (J/output token, mean [95% CI])")
    for name, runs, wall_s, answer in rows:
        best = answer.get("best")
        text = "none meets it" if best is None else \
            f"{best['label']}  {best['energy']['mean']:.4g} [{best['energy']['ci95_low'] or float('nan'):.4g}, " \
            f"{best['energy']['ci95_high'] or float('nan'):.4g}]"
        print(f"{name:8} {runs:5d} {wall_s:9.1f}  {text}")
    within = best_is_within(rows[1][3], grid_answer)
    same = bool(grid_answer.get("best") and (rows[1][3].get("best") or {}).get("config_hash")
                == grid_answer["best"]["config_hash"])
    print(f"search's best is the grid's best: {same}; or tied with it within the noise: {within} (with one cycle "
          "there is no interval, so every configuration that meets the SLO ties)")
    print(f"search vs grid: "
          f"runs {rows[1][1]} vs {rows[0][1]} ({rows[1][1] / max(1, rows[0][1]):.0%}), "
          f"time in runs {rows[1][2]:.0f} s vs {rows[0][2]:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
