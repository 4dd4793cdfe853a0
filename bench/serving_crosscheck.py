"""llem's serving figures against `vllm bench serve` (the engine's own client) on the same server.

Each side starts its own fresh vLLM server with the same command: the one llem's harness builds for
the study (servers.py: same model, seed, dtype, prefix caching off, the same `vllm:` options). llem's
side is a real `llem run` of a serving study (the harness starts the server, as in any run). The
other side starts that command as a deployed server runs, in this script's session (process.py's
ServerProcess: its own process group, no session of its own), and drives it with
`vllm.benchmarks.serve` through a small wrapper (the CPU build's `vllm` console script may not
start; the module is what `vllm bench serve` runs). Same load on both: closed loop at
`--concurrency`, `--n-requests` requests, `--input-tokens` prompt tokens, `--output-tokens` output
tokens with `ignore_eos`, greedy, one warm-up request. The sides alternate (llem, vLLM, then vLLM,
llem, ...), so drift on a shared machine hits both.

Printed per figure (TTFT, TPOT, ITL, e2e p50; output tokens/s over the run): each side's median
over the repetitions with its range, and llem / vLLM per repetition pair (median and range). A
figure agrees when the ratio range includes 1 or the two sides' ranges overlap; where it does not,
docs/serving.md says which definition differs. Exit 1 when a side fails, 0 otherwise (the verdicts
are printed, not enforced: on a shared 2-core machine the spread decides what can be told apart).

    LLEM_VLLM_PYTHON=.venv-vllm/bin/python  # the vLLM environment runs this script:
    .venv-vllm/bin/python bench/serving_crosscheck.py --model models/tiny-llm [--reps 3] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENGINE = {"gpu_memory_utilization": 0.05, "max_num_seqs": 4, "enforce_eager": True}  # small on a shared CPU
FIGURES = [  # (name, llem result path, vLLM result key, scale to ms / tok/s)
    ("TTFT p50 (ms)", ("metrics", "ttft_s", "p50"), "median_ttft_ms", 1000.0),
    ("TPOT p50 (ms)", ("metrics", "tpot_s", "p50"), "median_tpot_ms", 1000.0),
    ("ITL p50 (ms)", ("metrics", "itl_s", "p50"), "median_itl_ms", 1000.0),
    ("e2e p50 (ms)", ("metrics", "e2e_latency_s", "p50"), "median_e2el_ms", 1000.0),
    ("output tokens/s", ("serving", "output_tokens_per_s_run"), "output_throughput", 1.0),
]
# vllm bench serve's module, called as its console script would (the CPU build's script may be broken).
WRAPPER = ("import sys\n"
           "from vllm.benchmarks.serve import add_cli_args, main\n"
           "from vllm.utils.argparse_utils import FlexibleArgumentParser\n"
           "parser = FlexibleArgumentParser(prog='vllm bench serve')\n"
           "add_cli_args(parser)\n"
           "main(parser.parse_args(sys.argv[1:]))\n")


def experiment(args) -> dict:
    return {"model": args.model, "engine": "vllm", "mode": "serving", "dataset": "synthetic",
            "n_prompts": args.n_requests, "max_input_tokens": args.input_tokens,
            "max_output_tokens": args.output_tokens, "random_seed": args.seed,
            "decoding": {"ignore_eos": True}, "vllm": dict(ENGINE),
            "serving": {"concurrency": args.concurrency, "n_requests": args.n_requests, "streaming": True,
                        "ready_timeout_s": 600},
            "measurement": {"baseline": {"duration_s": 0.5}, "warmup": {"min_batches": 1, "max_batches": 1}}}


def llem_side(args, workdir: Path, index: int) -> dict:
    """One `llem run` of the serving study; its figures, bunched responses and how the server ran."""
    import yaml

    results = workdir / f"llem-{index}"
    study = workdir / f"llem-{index}.yaml"
    study.write_text(yaml.safe_dump({"name": f"serving-crosscheck-{index}", "results_dir": str(results),
                                     "base": experiment(args), "runners": {"vllm": "local"},
                                     "execution": {"n_cycles": 1}}))
    proc = subprocess.run([sys.executable, "-c", "from llenergymeasure.cli.main import main; main()", "run",
                           str(study), "--wait-for-devices"], capture_output=True, text=True, cwd=REPO)
    found = list(results.glob("*/runs/*/result.json"))
    if proc.returncode != 0 or not found:
        raise SystemExit(f"llem run failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    result = json.loads(found[0].read_text())
    figures = {}
    for name, path, _key, scale in FIGURES:
        value = result
        for part in path:
            value = (value or {}).get(part)
        figures[name] = None if value is None else value * scale
    serving = result["serving"]
    return {"figures": figures, "n_ok": serving["n_ok"], "bunched_responses": serving.get("bunched_responses"),
            "server_start": serving.get("server_start"), "warnings": result.get("warnings", [])}


def vllm_side(args, workdir: Path, index: int) -> dict:
    """The same server command, started as a deployed server runs, driven by vllm bench serve."""
    from llem_harness.serving.process import ServerProcess
    from llem_harness.serving.servers import SERVED_MODEL_NAME, free_port, server_spec
    from llenergymeasure.domain import ExperimentConfig

    config = ExperimentConfig(**experiment(args))
    port = free_port()
    run_dir = workdir / f"vllm-{index}"
    run_dir.mkdir()
    spec = server_spec(config, port, files_dir=run_dir)
    base_url = f"http://127.0.0.1:{port}"
    server = ServerProcess(spec.argv, base_url, spec.ready_path, run_dir)
    server.start()
    try:
        server.wait_ready(600)
        out = run_dir / "bench.json"
        proc = subprocess.run(
            [sys.executable, "-c", WRAPPER, "--backend", "vllm", "--base-url", base_url, "--endpoint",
             "/v1/completions", "--model", args.model, "--served-model-name", SERVED_MODEL_NAME,
             "--tokenizer", args.model, "--dataset-name", "random", "--random-input-len", str(args.input_tokens),
             "--random-output-len", str(args.output_tokens), "--num-prompts", str(args.n_requests),
             "--max-concurrency", str(args.concurrency), "--request-rate", "inf", "--ignore-eos",
             "--temperature", "0", "--num-warmups", "1", "--seed", str(args.seed),
             "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50",
             "--save-result", "--result-dir", str(run_dir), "--result-filename", out.name],
            capture_output=True, text=True, cwd=run_dir)
        if proc.returncode != 0 or not out.exists():
            raise SystemExit(f"vllm bench serve failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-3000:]}\nserver log:\n{server.log_tail()}")
    finally:
        server.stop()
    bench = json.loads(out.read_text())
    return {"figures": {name: bench.get(key) for name, _path, key, _scale in FIGURES},
            "n_ok": bench.get("completed"), "server_start": server.start_info}


def _range(values: list[float]) -> str:
    return f"{statistics.median(values):.3g} [{min(values):.3g}-{max(values):.3g}]"


def summarise(pairs: list[tuple[dict, dict]]) -> list[dict]:
    rows = []
    for name, *_ in FIGURES:
        llem = [a["figures"][name] for a, _ in pairs if a["figures"][name] is not None]
        vllm = [b["figures"][name] for _, b in pairs if b["figures"][name] is not None]
        ratios = [a["figures"][name] / b["figures"][name] for a, b in pairs
                  if a["figures"][name] is not None and b["figures"][name]]
        if not llem or not vllm or not ratios:
            rows.append({"figure": name, "llem": llem, "vllm": vllm, "ratios": ratios, "agrees": None})
            continue
        overlap = min(llem) <= max(vllm) and min(vllm) <= max(llem)
        rows.append({"figure": name, "llem": llem, "vllm": vllm, "ratios": ratios,
                     "ratio_median": statistics.median(ratios),
                     "agrees": overlap or min(ratios) <= 1.0 <= max(ratios)})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--n-requests", type=int, default=48)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--input-tokens", type=int, default=32)
    parser.add_argument("--output-tokens", type=int, default=32)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", help="write every repetition's figures and the summary here")
    parser.add_argument("--keep", help="keep each run's files (result.json, requests.jsonl, server logs) here")
    args = parser.parse_args()
    args.model = str(Path(args.model).resolve())
    started = time.monotonic()
    pairs = []
    with tempfile.TemporaryDirectory(prefix="llem-serving-crosscheck-") as tmp:
        if args.keep:
            Path(args.keep).mkdir(parents=True, exist_ok=True)
            tmp = args.keep
        for i in range(args.reps):
            order = ("llem", "vllm") if i % 2 == 0 else ("vllm", "llem")
            side = {}
            for who in order:
                side[who] = (llem_side if who == "llem" else vllm_side)(args, Path(tmp), i)
            pairs.append((side["llem"], side["vllm"]))
            a, b = side["llem"]["figures"], side["vllm"]["figures"]
            print(f"rep {i + 1} ({' then '.join(order)}): " + "; ".join(
                f"{name} llem {a[name]:.3g} vLLM {b[name]:.3g}" if a[name] is not None and b[name] is not None
                else f"{name} llem {a[name]} vLLM {b[name]}" for name, *_ in FIGURES), flush=True)
    rows = summarise(pairs)
    print(f"\nllem serving vs vllm bench serve: {args.reps} interleaved repetitions a side, {args.n_requests} "
          f"requests, concurrency {args.concurrency}, {args.input_tokens} in / {args.output_tokens} out, ignore_eos")
    print(f"{'figure':<18} {'llem median [range]':<26} {'vLLM median [range]':<26} {'llem/vLLM median [range]':<28} agrees")
    for row in rows:
        if row["agrees"] is None:
            print(f"{row['figure']:<18} not measured on one side (llem {row['llem']}, vLLM {row['vllm']})")
            continue
        print(f"{row['figure']:<18} {_range(row['llem']):<26} {_range(row['vllm']):<26} "
              f"{_range(row['ratios']):<28} {'yes' if row['agrees'] else 'NO (see docs/serving.md)'}")
    bunched = [a.get("bunched_responses") for a, _ in pairs]
    print(f"llem bunched responses per repetition: {bunched}; server start: {pairs[0][0].get('server_start')}")
    wall_s = time.monotonic() - started
    print(f"wall time {wall_s:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "pairs": pairs, "summary": rows,
                                               "wall_s": wall_s}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
