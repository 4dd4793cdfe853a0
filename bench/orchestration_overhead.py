"""Orchestration overhead of the local runner, next to the floor of starting Python with torch.

For N experiments of the tiny model run through `run_study` (local runner), prints per run:
the wall time the study loop saw (spawn → outcome read) minus the harness's own measured work
(`harness_wall_s`: baseline, load, warm-up, window, metrics), and the ratio of that overhead to
a bare `python -c "import torch, transformers"` measured in the same run.

    .venv/bin/python bench/orchestration_overhead.py [N]
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def bare_import_s(repeats: int = 3) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch, transformers"], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def main(n: int = 4) -> None:
    from llenergymeasure import run_study
    from llenergymeasure.domain import StudyConfig
    from llenergymeasure.models import make_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        model = make_tiny_model(Path(tmp) / "tiny")
        study = StudyConfig.model_validate({
            "name": "overhead", "results_dir": str(Path(tmp) / "results"), "runners": {"transformers": "local"},
            "base": {"model": str(model), "n_prompts": 4, "max_output_tokens": 8,
                     "measurement": {"baseline": {"enabled": False}, "warmup": {"enabled": False}}},
            "execution": {"n_cycles": n}})
        floor = bare_import_s()
        result = run_study(study)
        floor += bare_import_s()
        import json

        manifest = json.loads((Path(result.study_dir) / "manifest.json").read_text())
        durations = {e["run_id"]: e["duration_s"] for e in manifest["entries"]}
    floor_s = statistics.median(floor)
    print(f"bare `python -c 'import torch, transformers'`: median {floor_s:.2f} s over {len(floor)} runs "
          f"(before and after the study)")
    print(f"{'run':<48} {'loop wall s':>11} {'harness s':>10} {'overhead s':>10} {'/ bare':>7}")
    overheads = []
    for r in result.experiments:
        wall = durations[r.run_id]
        overhead = wall - r.harness_wall_s
        overheads.append(overhead)
        print(f"{r.run_id:<48} {wall:>11.2f} {r.harness_wall_s:>10.2f} {overhead:>10.2f} {overhead / floor_s:>7.2f}")
    print(f"median overhead per run {statistics.median(overheads):.2f} s = "
          f"{statistics.median(overheads) / floor_s:.2f}× the bare import floor "
          f"(the overhead includes that import: the harness process must start Python and import its engine)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 4)
