"""Wall time of a 16-run study with `parallel: 1` vs `parallel: 4`, measured side by side.

Local runner, tiny model, CPU-only fake GPU ids ("fake0".."fake3", passed only as
CUDA_VISIBLE_DEVICES; `allow_parallel_cpu: true`). On a CPU host the four runs share the same
cores, so the ratio shows what the dispatcher costs or saves in machinery (process start, import,
model load overlap) — it is NOT a measurement speed-up; on a GPU host each set has its own GPU.

    .venv/bin/python bench/parallel_overhead.py [N_RUNS]
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path


def _study(model: Path, results: Path, n_runs: int, parallel: int):
    from llenergymeasure.domain import StudyConfig

    execution = {"n_cycles": n_runs, "parallel": parallel}
    if parallel != 1:
        execution.update(gpus=[f"fake{i}" for i in range(parallel)], allow_parallel_cpu=True)
    return StudyConfig.model_validate({
        "name": f"parallel{parallel}", "results_dir": str(results), "runners": {"transformers": "local"},
        "base": {"model": str(model), "n_prompts": 4, "max_output_tokens": 8,
                 "measurement": {"baseline": {"enabled": False}, "warmup": {"enabled": False}}},
        "execution": execution})


def main(n_runs: int = 16) -> None:
    from llenergymeasure import run_study
    from llenergymeasure.models import make_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        model = make_tiny_model(Path(tmp) / "tiny")
        walls = {}
        for parallel in (1, 4):
            start = time.perf_counter()
            result = run_study(_study(model, Path(tmp) / "results", n_runs, parallel))
            walls[parallel] = time.perf_counter() - start
            print(f"parallel {parallel}: {n_runs} runs, {result.summary.completed} completed, "
                  f"wall {walls[parallel]:.1f} s")
    print(f"wall time ratio parallel 4 / parallel 1 = {walls[4] / walls[1]:.2f} "
          f"(machinery only: CPU-only fake GPUs share the same cores)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 16)
