"""The local runner's two harness start-ups side by side: a fresh interpreter per run vs a child forked
from the pre-imported worker (run through `python bench/runner_overhead.py --startup`).

The same 3-cycle study of the tiny model, alternately through each path (ABBA order: neither path
always runs on a warmer cache), in one process. Per run:
    overhead beyond model load = manifest duration_s (the study loop's wall time around the run)
                                 - model_load_s - baseline(s) - warm-up - measured window
i.e. process start, imports, harness set-up, after-window reads, writing the result, teardown.
The worker's own import is paid before the first run of each study, so it is inside the first
run's overhead and the study wall time: both are printed, not hidden.
"""
from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from llenergymeasure.domain.run_spec import FORKED_START, FRESH_START

PATHS = {"fresh": "0", "forked": "1"}  # LLEM_LOCAL_WORKER per path
EXPECTED_START = {"fresh": FRESH_START, "forked": FORKED_START}  # harness_start of each path's runs


def tiny_experiment(model: str) -> dict:
    """The experiment both runner benchmarks time: the tiny model, 2 prompts, 4 output tokens, short settle."""
    return {"model": model, "engine": "transformers", "dataset": "synthetic", "n_prompts": 2,
            "max_input_tokens": 16, "max_output_tokens": 4,
            "measurement": {"baseline": {"duration_s": 0.5}, "warmup": {"min_batches": 1, "max_batches": 2, "window": 2}}}


def _one_study(path: str, model: str, results_dir: Path, index: int) -> dict:
    from llenergymeasure import run_study
    from llenergymeasure.domain import ExperimentResult, StudyConfig, StudyManifest

    os.environ["LLEM_LOCAL_WORKER"] = PATHS[path]
    study = StudyConfig.model_validate({
        "name": f"startup-{path}-{index}", "results_dir": str(results_dir),
        "base": tiny_experiment(model),
        "execution": {"n_cycles": 3, "experiment_gap_s": 0}, "runners": {"transformers": "local"}})
    t0 = time.monotonic()
    study_dir = Path(run_study(study).study_dir)
    wall_s = time.monotonic() - t0
    manifest = StudyManifest.model_validate_json((study_dir / "manifest.json").read_text())
    row = {"wall_s": wall_s, "overhead_s": [], "import_s": [], "load_s": []}
    for entry in manifest.entries:
        if entry.status != "completed":
            raise SystemExit(f"{path}: run {entry.run_id} {entry.status}: {entry.error_type} {entry.error_message}")
        res = ExperimentResult.model_validate_json((study_dir / entry.result_file).read_text())
        if res.harness_start != EXPECTED_START[path]:
            raise SystemExit(f"{path}: run {entry.run_id} started as {res.harness_start!r}")
        measured = (res.model_load_s + res.window_s + res.warmup.duration_s
                    + (res.baseline.duration_s if res.baseline else 0.0)
                    + (res.loaded_idle.duration_s if res.loaded_idle else 0.0))
        row["overhead_s"].append(entry.duration_s - measured)
        row["import_s"].append(res.engine_import_s)
        row["load_s"].append(res.model_load_s)
    return row


def _spread(values: list[float]) -> str:
    if len(values) < 2:
        return "-"
    q1, _, q3 = statistics.quantiles(values, n=4)
    return f"{q1:.2f}-{q3:.2f}"


def compare_startup(rounds: int, model: str | None) -> int:
    saved = os.environ.get("LLEM_LOCAL_WORKER")
    rows: dict[str, list[dict]] = {path: [] for path in PATHS}
    with tempfile.TemporaryDirectory(prefix="llem-bench-startup-") as tmp:
        if model is None:
            from llenergymeasure.models.tiny import make_tiny_model

            model = str(make_tiny_model(Path(tmp) / "tiny-llm"))
        try:
            for r in range(rounds):
                order = ("fresh", "forked") if r % 2 == 0 else ("forked", "fresh")
                for path in order:
                    rows[path].append(_one_study(path, model, Path(tmp) / "results", r))
        finally:
            if saved is None:
                os.environ.pop("LLEM_LOCAL_WORKER", None)
            else:
                os.environ["LLEM_LOCAL_WORKER"] = saved
    print(f"\nHarness start-up on the local runner: {rounds} interleaved 3-cycle studies of the tiny model per path")
    print("overhead = run wall in the study loop - model load - baselines - warm-up - window (s; median, IQR)")
    print(f"{'path':<7} {'runs':>4} {'overhead':>9} {'IQR':>11} {'1st run':>8} {'later':>7} {'IQR':>11} "
          f"{'import':>7} {'load':>6} {'study wall':>10}")
    summary = {}
    for path, studies in rows.items():
        every = [v for s in studies for v in s["overhead_s"]]
        first = [s["overhead_s"][0] for s in studies]
        later = [v for s in studies for v in s["overhead_s"][1:]]
        imports = [v for s in studies for v in s["import_s"]]
        loads = [v for s in studies for v in s["load_s"]]
        walls = [s["wall_s"] for s in studies]
        summary[path] = {"later": statistics.median(later), "every": statistics.median(every),
                         "wall": statistics.median(walls)}
        print(f"{path:<7} {len(every):>4} {statistics.median(every):>9.2f} {_spread(every):>11} "
              f"{statistics.median(first):>8.2f} {statistics.median(later):>7.2f} {_spread(later):>11} "
              f"{statistics.median(imports):>7.3f} {statistics.median(loads):>6.3f} {statistics.median(walls):>10.2f}")
    fresh, forked = summary["fresh"], summary["forked"]
    print(f"forked/fresh overhead per run after the first: {forked['later'] / fresh['later']:.2f}x "
          f"({fresh['later'] - forked['later']:+.2f} s saved per run)")
    print(f"forked/fresh overhead per run, all runs: {forked['every'] / fresh['every']:.2f}x; "
          f"study wall: {forked['wall'] / fresh['wall']:.2f}x")
    return 0
