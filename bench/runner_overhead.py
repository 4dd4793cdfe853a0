"""What a runner adds to each experiment: the same N-experiment study through local and Docker.

Overhead of a run = the study loop's wall time around `runner.execute` (manifest `duration_s`)
minus the harness's own wall time (`harness_wall_s` in result.json): process or container
start, interpreter start-up and imports, log streaming, teardown. Printed side by side with the
floor measured in the same run: a bare `docker run --rm IMAGE true`.

    python bench/runner_overhead.py [--n 4] [--image llenergymeasure/transformers:<version>]

Needs a Docker daemon and the transformers image (`llem images build transformers`).

`--startup` compares instead the local runner's two ways of starting a harness (no Docker):
a fresh interpreter per run (`LLEM_LOCAL_WORKER=0`) against a child forked from the pre-imported
worker (the default), on a 3-cycle study of the tiny model, interleaved (ABBA over `--rounds`).
Per-run overhead beyond model load = the run's wall time in the study loop minus model load,
baseline(s), warm-up and the measured window: process start, imports, set-up, result writing.

    python bench/runner_overhead.py --startup [--rounds 4]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def study_overheads(runner: str, n: int, model: str, image: str, results_dir: Path) -> dict:
    from llenergymeasure import run_study
    from llenergymeasure.domain import ExperimentResult, StudyConfig, StudyManifest
    from runner_startup import tiny_experiment

    study = StudyConfig.model_validate({
        "name": f"overhead-{runner}", "results_dir": str(results_dir),
        "base": tiny_experiment(model),
        "sweep": {"random_seed": list(range(n))},  # N distinct experiments of identical size
        "runners": {"transformers": runner}, "images": {"transformers": image}})
    t0 = time.monotonic()
    result = run_study(study)
    study_wall_s = time.monotonic() - t0
    study_dir = Path(result.study_dir)
    manifest = StudyManifest.model_validate_json((study_dir / "manifest.json").read_text())
    per_run, harness = [], []
    for entry in manifest.entries:
        if entry.status != "completed":
            raise SystemExit(f"{runner}: run {entry.run_id} {entry.status}: {entry.error_type} {entry.error_message}")
        res = ExperimentResult.model_validate_json((study_dir / entry.result_file).read_text())
        per_run.append(entry.duration_s)
        harness.append(res.harness_wall_s)
    overhead = [w - h for w, h in zip(per_run, harness)]
    return {"runs": len(per_run), "study_wall_s": study_wall_s, "run_wall_s": statistics.median(per_run),
            "harness_wall_s": statistics.median(harness), "overhead_s": statistics.median(overhead),
            "overhead_mean_s": statistics.fmean(overhead)}


def bare_docker_run_s(image: str, n: int) -> tuple[float | None, float]:
    """Median wall time of `docker run --rm IMAGE true` (CLI, when installed) and of the SDK equivalent."""
    import docker

    cli = None
    if shutil.which("docker"):
        times = []
        for _ in range(n):
            t0 = time.monotonic()
            subprocess.run(["docker", "run", "--rm", image, "true"], check=True, capture_output=True)
            times.append(time.monotonic() - t0)
        cli = statistics.median(times)
    client = docker.from_env()
    times = []
    for _ in range(n):
        t0 = time.monotonic()
        client.containers.run(image, "true", remove=True)
        times.append(time.monotonic() - t0)
    client.close()
    return cli, statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    from llenergymeasure.runners.image_build import default_image

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4, help="experiments per runner (default 4)")
    parser.add_argument("--image", default=default_image("transformers"))
    parser.add_argument("--model", default=None, help="local model dir (default: a fresh tiny model)")
    parser.add_argument("--startup", action="store_true",
                        help="local runner only: fresh process per run vs forked from the pre-imported worker")
    parser.add_argument("--rounds", type=int, default=4, help="--startup: 3-cycle studies per path (default 4)")
    args = parser.parse_args(argv)
    if args.startup:
        from runner_startup import compare_startup

        return compare_startup(args.rounds, args.model)

    with tempfile.TemporaryDirectory(prefix="llem-bench-") as tmp:
        model = args.model
        if model is None:
            from llenergymeasure.models.tiny import make_tiny_model

            model = str(make_tiny_model(Path(tmp) / "tiny-llm"))
        rows = {runner: study_overheads(runner, args.n, model, args.image, Path(tmp) / "results")
                for runner in ("local", "docker")}
        floor_cli, floor_sdk = bare_docker_run_s(args.image, args.n)

    print(f"\nRunner overhead per experiment ({args.n} experiments each, tiny model, medians; image {args.image})")
    print(f"{'runner':<8} {'runs':>4} {'run wall s':>11} {'harness s':>10} {'overhead s':>11} {'(mean)':>8}")
    for name, row in rows.items():
        print(f"{name:<8} {row['runs']:>4} {row['run_wall_s']:>11.3f} {row['harness_wall_s']:>10.3f} "
              f"{row['overhead_s']:>11.3f} {row['overhead_mean_s']:>8.3f}")
    local, dock = rows["local"]["overhead_s"], rows["docker"]["overhead_s"]
    print(f"docker/local overhead ratio: {dock / local:.2f}x  (docker adds {dock - local:+.3f} s per experiment)")
    if floor_cli is not None:
        print(f"floor: `docker run --rm {args.image} true`: {floor_cli:.3f} s")
    print(f"floor: SDK containers.run(image, 'true', remove=True): {floor_sdk:.3f} s")
    print(f"docker overhead above the CLI floor: {dock - (floor_cli if floor_cli is not None else floor_sdk):+.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
