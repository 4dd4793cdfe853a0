"""Scale of the orchestration layer: a 10,500-point grid × 3 cycles, a 31,500-entry manifest, and
the largest grid a study may have (100,000 configurations; study/expand.py MAX_CONFIGURATIONS).

Prints measured figures next to the targets (and the original tool's figures on this machine,
from the issue). Nothing here asserts: it is a benchmark, run by hand:

    .venv/bin/python bench/study_scale.py [--before REF] [--repeat N]

`--before REF` also runs both dry-runs on the code of git REF (e.g. main), interleaved with this
tree's, and prints them side by side: on a shared machine only figures taken together compare.
Each dry-run is run `--repeat` times (default 3); the least CPU time of each is shown, with that
run's wall time and peak RSS (CPU time says what the planning costs, wall time also what it waited).
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

GRID = {
    "batch_size": [1, 2, 4, 8, 16, 32, 64],
    "precision": ["fp32", "fp16", "bf16"],
    "max_output_tokens": [32, 64, 128, 256, 512],
    "n_prompts": [64, 72, 80, 88, 96, 104, 112, 120, 128, 136],  # at least the largest batch_size
    "random_seed": list(range(10)),
}  # 7 × 3 × 5 × 10 × 10 = 10,500 points
GRID_100K = {key: list(range(1, 11)) for key in ("batch_size", "max_output_tokens", "max_input_tokens", "random_seed")}
GRID_100K["n_prompts"] = list(range(10, 20))  # 10^5 points, the largest grid allowed (every batch full)


def _child(argv: list[str]) -> tuple[float, float, float]:
    """Wall seconds, peak RSS (MB) and CPU seconds of one child process, measured with wait4."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def _child_in(argv: list[str], tree: Path | None) -> tuple[float, float, float]:
    """_child with the orchestrator and harness of `tree` first on the path (None: this tree's)."""
    if tree is None:
        return _child(argv)
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(tree / "orchestrator"), str(tree / "harness")])
    try:
        return _child(argv)
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = old


def _dry_run(study: Path, tree: Path | None = None) -> tuple[float, float, float]:
    return _child_in([sys.executable, "-c", "from llenergymeasure.cli.main import main; main()", "run", str(study),
                      "--dry-run"], tree)


def dry_runs(studies: list[Path], trees: dict[str, Path | None], repeat: int) -> dict[tuple[str, Path], tuple]:
    """{(tree label, study): (wall s, peak RSS MB, CPU s) of its least-CPU run}, the trees interleaved."""
    best: dict[tuple[str, Path], tuple] = {}
    for _ in range(repeat):
        for study in studies:
            for label, tree in trees.items():
                wall, rss, cpu = _dry_run(study, tree)
                if (label, study) not in best or cpu < best[label, study][2]:
                    best[label, study] = (wall, rss, cpu)
    return best


def export_tree(ref: str, dest: Path) -> Path:
    """The orchestrator and harness of git `ref`, extracted (no worktree, no checkout)."""
    root = Path(__file__).resolve().parent.parent
    archive = subprocess.run(["git", "-C", str(root), "archive", ref, "orchestrator", "harness"],
                             check=True, capture_output=True).stdout
    dest.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def _model_dir(tmp: str) -> str:
    """A local model directory with a small Llama config.json: the dry-run reads it for the VRAM estimate
    and the context-length check, as it would a real model's (a hub id would be looked up on the hub)."""
    import json

    model = Path(tmp) / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({
        "model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
        "intermediate_size": 128, "vocab_size": 512, "max_position_embeddings": 2048}))
    return str(model)


def expansion_in_process(study_path: Path) -> tuple[float, int, int, float, float]:
    """Load + expand + validate + hash + order, timed inside a fresh process (its own peak RSS).

    Returns wall seconds, points, runs, peak RSS (MB) and CPU seconds: on a shared machine the CPU
    time says what the planning costs, the wall time what this run of it waited too."""
    code = ("import sys,time,resource;from llenergymeasure.study.loader import load_study;"
            "from llenergymeasure.study.expand import expand, run_order;"
            "t=time.perf_counter();c=time.process_time();s=load_study(sys.argv[1]);e=expand(s);"
            "h=[x.config_hash for x in e];"
            "o=run_order(len(e),3,'shuffled',0);dt=time.perf_counter()-t;dc=time.process_time()-c;"
            "print(dt,len(e),len(o),resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024,dc)")
    out = subprocess.run([sys.executable, "-c", code, str(study_path)], capture_output=True, text=True, check=True)
    dt, n, n_runs, rss, cpu = out.stdout.split()
    return float(dt), int(n), int(n_runs), float(rss), float(cpu)


def manifest_transitions(n_entries: int, n_transitions: int) -> tuple[float, float]:
    from llenergymeasure.domain import ManifestEntry
    from llenergymeasure.study.manifest import ManifestWriter, new_manifest

    with tempfile.TemporaryDirectory() as tmp:
        entries = [ManifestEntry(experiment_index=i // 3, cycle=i % 3 + 1, config_hash=f"{i:016x}",
                                 config_summary=f"transformers model bs={i % 64} fp16 n=100 in=64 out=128",
                                 engine="transformers") for i in range(n_entries)]
        writer = ManifestWriter(new_manifest("id", "scale", Path(tmp), 3, "shuffled", entries), Path(tmp) / "m.json")
        writer.write()
        size_mb = (Path(tmp) / "m.json").stat().st_size / 2**20
        start = time.perf_counter()
        for i in range(n_transitions):
            writer.update(i * 97 % n_entries, status="running" if i % 2 == 0 else "completed")
        return (time.perf_counter() - start) / n_transitions, size_mb


def help_time(repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "from llenergymeasure.cli.main import main; main()", "--help"],
                       capture_output=True, check=True)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", help="git ref whose dry-runs to run side by side (e.g. main)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each dry-run (the least CPU time is shown)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        study = Path(tmp) / "scale.yaml"
        model = _model_dir(tmp)
        study.write_text(yaml.safe_dump({"name": "scale", "base": {"model": model}, "sweep": GRID,
                                         "execution": {"n_cycles": 3, "cycle_order": "shuffled", "max_runs": 10**6}}))
        dt, n, n_runs, rss, cpu = expansion_in_process(study)
        big = Path(tmp) / "scale-100k.yaml"
        big.write_text(yaml.safe_dump({"name": "scale100k", "base": {"model": model}, "sweep": GRID_100K,
                                       "execution": {"n_cycles": 3, "cycle_order": "shuffled", "max_runs": 10**6}}))
        dt_big, n_big, runs_big, rss_big, cpu_big = expansion_in_process(big)
        trees: dict[str, Path | None] = {"now": None}
        if args.before:
            trees = {args.before: export_tree(args.before, Path(tmp) / "before"), "now": None}
        best = dry_runs([study, big], trees, max(1, args.repeat))
        cli_wall, cli_rss, cli_cpu = best["now", study]
        big_wall, big_rss, big_cpu = best["now", big]
    per_transition_s, size_mb = manifest_transitions(n * 3, 100)
    help_s = help_time()
    rows = [
        ("grid points / runs", f"{n} / {n_runs}", "10,500 / 31,500", ""),
        ("expansion + validation + hashing", f"{dt:.2f} s", "<= 1 s", "9.2 s"),
        ("peak RSS of that process", f"{rss:.0f} MB", "<= 120 MB", "214 MB"),
        (f"{n_big:,} configurations ({runs_big:,} runs) planned: wall", f"{dt_big:.2f} s", "<= 3 s", "110 s"),
        ("  that planning: CPU time / peak RSS", f"{cpu_big:.2f} s / {rss_big:.0f} MB", "<= 300 MB", "500 MB"),
        (f"`llem run --dry-run`, {n:,} × 3: wall / CPU", f"{cli_wall:.2f} s / {cli_cpu:.2f} s", "<= 1 s",
         "3.1-3.6 s"),
        ("  its peak RSS", f"{cli_rss:.0f} MB", "(context)", ""),
        (f"`llem run --dry-run`, {n_big:,} × 3: wall / CPU", f"{big_wall:.2f} s / {big_cpu:.2f} s", "<= 3 s",
         "30.5 s"),
        ("  its peak RSS", f"{big_rss:.0f} MB", "(context)", "117 MB"),
        (f"manifest transition ({n * 3} entries, {size_mb:.1f} MB)", f"{per_transition_s * 1000:.1f} ms",
         "<= 10 ms", "103 ms"),
        ("`llem --help`", f"{help_s:.3f} s", "<= 0.25 s", "0.5 s"),
    ]
    if args.before:
        for label, path, size in ((args.before, study, f"{n:,}"), (args.before, big, f"{n_big:,}")):
            wall_b, rss_b, cpu_b = best[label, path]
            wall_n, _, cpu_n = best["now", path]
            rows.append((f"  before ({label}): dry-run {size} × 3: wall / CPU", f"{wall_b:.2f} s / {cpu_b:.2f} s",
                         f"now {cpu_n / cpu_b:.2f}×", ""))
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'measured':>18}  {'target':>16}  {'original tool':>13}")
    print(f"{'':<{width}}  {'(this run)':>18}  {'(issue)':>16}  {'(issue)':>13}")
    for name, measured, target, original in rows:
        print(f"{name:<{width}}  {measured:>18}  {target:>16}  {original:>13}")
    print(f"ratios: expansion {dt / 9.2:.3f}× the original; transition {per_transition_s / 0.103:.3f}× the original; "
          f"--help {help_s / 0.5:.3f}× the original")


if __name__ == "__main__":
    main()
