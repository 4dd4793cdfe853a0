"""vLLM throughput under llem vs a bare `LLM.generate` loop: same model, prompts, lengths, engine options.

llem's figure is `output_tokens_per_s` of `llem run` (output tokens / measured window, engine vllm,
local runner). The bare figure is the same batches through `LLM.generate`, one after the other, timed
with perf_counter from before the first call to after the last (like llem's window), after the same
one-batch warm-up; both count the token ids vLLM returned. Each side runs in its own fresh process
with its own engine (an idle engine left alive would compete for the CPU with the other side).
The two alternate (bare, llem, bare, llem, ...) in one run, so drift on a shared machine hits both;
the ratio llem / bare is printed per round and as the median (target >= 0.95: measuring must not slow
the engine). Prompts are llem's synthetic ones, cut with the engine's tokenizer, exactly as the harness
makes them. Run it with the vLLM environment (scripts/setup-vllm.sh), from the repository root:

    .venv-vllm/bin/python bench/vllm_throughput.py --model models/tiny-llm [--rounds 2]

On the CPU build, vLLM options keep the KV cache small (gpu_memory_utilization 0.05) and run eager.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measurement_overhead_report import median_ci  # noqa: E402 - bench/ is not a package

ENGINE = {"gpu_memory_utilization": 0.05, "max_num_seqs": 4, "enforce_eager": True}


def experiment(model: str, n_prompts: int, batch_size: int, out_tokens: int) -> dict:
    return {"model": model, "engine": "vllm", "dataset": "synthetic", "n_prompts": n_prompts,
            "batch_size": batch_size, "max_input_tokens": 32, "max_output_tokens": out_tokens,
            "decoding": {"ignore_eos": True}, "vllm": dict(ENGINE),
            "measurement": {"baseline": {"duration_s": 0.5}, "warmup": {"min_batches": 1, "max_batches": 1}}}


def bare_round(model: str, n_prompts: int, batch_size: int, out_tokens: int) -> float:
    """One bare measurement in a fresh process (this script with --bare)."""
    proc = subprocess.run([sys.executable, __file__, "--bare", "--model", model, "--n-prompts", str(n_prompts),
                           "--batch-size", str(batch_size), "--max-output-tokens", str(out_tokens)],
                          capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("BARE ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"bare LLM.generate failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return float(lines[-1].split()[1])


def bare_measure(exp: dict) -> float:
    from vllm import LLM, SamplingParams

    from llem_harness.datasets import load_prompts
    from llem_harness.engines.vllm import engine_kwargs, sampling_kwargs
    from llenergymeasure.domain import ExperimentConfig

    config = ExperimentConfig(**exp)
    llm = LLM(**engine_kwargs(config))  # the adapter's own arguments: same engine options as under llem
    tokenizer = llm.get_tokenizer()
    prompts = load_prompts(config, lambda text, n: tokenizer.decode(
        tokenizer.encode(text, add_special_tokens=False)[:n]))  # exactly the harness's prompts
    batches = [prompts[i:i + config.batch_size] for i in range(0, len(prompts), config.batch_size)]
    params = SamplingParams(**sampling_kwargs(config))
    llm.generate(batches[0], params, use_tqdm=False)  # the harness's warm-up: one first batch
    tokens = 0
    start = time.perf_counter()
    for batch in batches:
        tokens += sum(len(o.outputs[0].token_ids) for o in llm.generate(batch, params, use_tqdm=False))
    return tokens / (time.perf_counter() - start)


def llem_round(exp: dict, workdir: Path, index: int) -> float:
    import yaml

    results = workdir / f"llem-{index}"
    study = workdir / f"study-{index}.yaml"
    study.write_text(yaml.safe_dump({"name": f"vllm-throughput-{index}", "results_dir": str(results), "base": exp,
                                     "runners": {"vllm": "local"}, "execution": {"n_cycles": 1}}))
    proc = subprocess.run([sys.executable, "-c", "from llenergymeasure.cli.main import main; main()", "run",
                           str(study)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"llem run failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    result = json.loads(next(results.glob("*/runs/*/result.json")).read_text())
    return result["metrics"]["output_tokens_per_s"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--n-prompts", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-output-tokens", type=int, default=128)
    parser.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)  # one bare round (subprocess)
    args = parser.parse_args()
    model = str(Path(args.model).resolve())
    exp = experiment(model, args.n_prompts, args.batch_size, args.max_output_tokens)
    if args.bare:
        print(f"BARE {bare_measure(exp)}")
        return 0
    ratios, bares, llems = [], [], []
    with tempfile.TemporaryDirectory(prefix="llem-vllm-bench-") as tmp:
        for i in range(args.rounds):
            bares.append(bare_round(model, args.n_prompts, args.batch_size, args.max_output_tokens))
            llems.append(llem_round(exp, Path(tmp), i))
            ratios.append(llems[-1] / bares[-1])
            print(f"round {i + 1}: bare {bares[-1]:.1f} tok/s, llem {llems[-1]:.1f} tok/s, ratio {ratios[-1]:.3f}",
                  flush=True)
    low, high = median_ci(ratios)
    print(f"vLLM throughput under llem / bare LLM.generate: median ratio {statistics.median(ratios):.3f} "
          f"over {len(ratios)} rounds (target >= 0.95); {args.n_prompts} prompts, batch {args.batch_size}, "
          f"{args.max_output_tokens} output tokens")
    # How finely this run resolves the ratio: the engine's own run-to-run spread sets the floor.
    print(f"resolution: 95 % bootstrap interval of the median ratio {low:.3f}-{high:.3f}; bare side alone "
          f"{min(bares):.0f}-{max(bares):.0f} tok/s (CV {_cv(bares):.1%}), llem side {min(llems):.0f}-"
          f"{max(llems):.0f} tok/s (CV {_cv(llems):.1%}). An interval wider than the target's 5 % means this "
          f"machine cannot tell; bench/measurement_overhead.py compares both sides on one engine, interleaved.")
    return 0


def _cv(values: list[float]) -> float:
    return statistics.stdev(values) / statistics.mean(values) if len(values) > 1 else 0.0


if __name__ == "__main__":
    raise SystemExit(main())
