"""Does the measured window slow the engine down? Window throughput vs a bare engine loop, side by side.

For each engine, one process, one loaded model, the same prompts, batch size and lengths
(`ignore_eos`, so every request generates exactly `--output-tokens`), two ways, interleaved (the
order alternates every repetition so drift hits both sides equally):

- **bare**: what a user runs: the engine's own generate loop (transformers: tokenize + `generate`;
  llama.cpp: `Llama.generate` per prompt; vLLM: `LLM.generate`), timed with the device
  synchronised at both ends, nothing else;
- **window**: the harness's measured window: a real `MeasurementSession` (its sampler thread on
  real NVML, else on the replay device, else none) opened and closed around the adapter's
  `generate_batch` calls with its per-token timing hook active — the code path of a real run;
  throughput is output tokens / the session's `window_s`, the figure a result reports.

Prints, per engine, the median throughput of each side with its min-max, the median of the
per-repetition ratios window/bare with its 95 % bootstrap interval (the run's resolution), and the
same ratio in tokens per CPU second of the process (less disturbed by a loaded machine). Target: ratio >= 0.98
(docs/metrics.md, `token_timing`). vLLM runs only in an interpreter that has it (scripts/setup-vllm.sh
makes .venv-vllm; slow): `.venv-vllm/bin/python bench/measurement_overhead.py --engines vllm`.

    python bench/measurement_overhead.py [--engines transformers,llama_cpp] [--reps 15] [--batches 4]
        [--batch-size 2] [--input-tokens 16] [--output-tokens 32] [--threads 1] [--json OUT.json]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for _p in (REPO / "orchestrator", REPO / "harness"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

TEXT = ("The committee met on a grey morning to review the measurements of the new cooling system, "
        "which had been installed in the spring after a long debate about cost, noise and the energy "
        "used by the servers in the basement during the hottest weeks of the year. ") * 4
ENGINE_MODULE = {"transformers": "transformers", "llama_cpp": "llama_cpp", "vllm": "vllm"}


def experiment_config(engine: str, model_dir: Path, a: argparse.Namespace):
    from llenergymeasure.domain import ExperimentConfig

    model = str(model_dir / "model.gguf") if engine == "llama_cpp" else str(model_dir)
    options = {"transformers": {"transformers": {"device": a.device}},
               "llama_cpp": {"llama_cpp": {"n_threads": a.threads}},
               "vllm": {"vllm": {"gpu_memory_utilization": 0.05, "max_num_seqs": 4, "enforce_eager": True}}}
    return ExperimentConfig(model=model, engine=engine, batch_size=a.batch_size, n_prompts=a.batch_size * a.batches,
                            max_input_tokens=a.input_tokens, max_output_tokens=a.output_tokens,
                            decoding={"strategy": "greedy", "ignore_eos": True}, **options[engine])


def bare_loop(engine: str, adapter, config):
    """The engine's own loop, as a user writes it: returns run(batch) -> output tokens."""
    if engine == "transformers":
        import torch

        tok, model = adapter.tokenizer, adapter.model
        kwargs = dict(max_new_tokens=config.max_output_tokens, min_new_tokens=config.max_output_tokens,
                      do_sample=False, temperature=None, top_p=None, top_k=None, pad_token_id=tok.pad_token_id)

        def run(batch: list[str]) -> int:
            enc = tok(batch, return_tensors="pt", padding=True, truncation=True,
                      max_length=config.max_input_tokens).to(adapter.device)
            with torch.inference_mode():
                out = model.generate(**enc, **kwargs)
            return int(out.shape[0] * (out.shape[1] - enc["input_ids"].shape[1]))
        return run
    if engine == "llama_cpp":
        llm = adapter.llm

        def run(batch: list[str]) -> int:
            n = 0
            for prompt in batch:
                tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=True)[: config.max_input_tokens]
                llm.reset()
                for i, _token in enumerate(llm.generate(tokens, temp=0.0, repeat_penalty=1.0), 1):
                    if i >= config.max_output_tokens:
                        break
                n += i
            return n
        return run
    if engine == "vllm":
        from vllm import SamplingParams

        from llem_harness.engines.vllm import sampling_kwargs

        params = SamplingParams(**sampling_kwargs(config))

        def run(batch: list[str]) -> int:
            return sum(len(o.outputs[0].token_ids) for o in adapter.llm.generate(batch, params, use_tqdm=False))
        return run
    raise ValueError(engine)


def open_session(config, run_dir: Path):
    """The harness's session; real NVML first, else the replay device (its sampler thread still runs)."""
    from llem_harness.measurement import MeasurementSession
    from llem_harness.measurement.devices import REPLAY_ENV

    session = MeasurementSession(config.measurement, None, None, run_dir, lambda *_a, **_k: None)
    if session.backend is None and not os.environ.get(REPLAY_ENV):
        os.environ[REPLAY_ENV] = str(REPO / "tests/fixtures/traces/ci_idle_load.jsonl")
        session.close()
        session = MeasurementSession(config.measurement, None, None, run_dir, lambda *_a, **_k: None)
    return session


def measure_engine(engine: str, model_dir: Path, a: argparse.Namespace) -> dict:
    from llem_harness.engines.base import create_adapter

    config = experiment_config(engine, model_dir, a)
    adapter = create_adapter(config)
    adapter.load()
    prompts = [adapter.fit_to_tokens(TEXT[i * 7:], a.input_tokens) for i in range(a.batch_size * a.batches)]
    batches = [prompts[i:i + a.batch_size] for i in range(0, len(prompts), a.batch_size)]
    bare = bare_loop(engine, adapter, config)
    run_dir = Path(tempfile.mkdtemp(prefix="llem-overhead-"))

    def run_bare() -> tuple[float, float]:
        adapter.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        tokens = sum(bare(b) for b in batches)
        adapter.synchronize()
        return tokens / (time.perf_counter() - t0), tokens / (time.process_time() - c0)

    def run_window() -> tuple[float, float]:
        session = open_session(config, run_dir)  # outside the window, as in a harness run
        try:
            c0 = time.process_time()
            session.start_window(adapter.synchronize)
            outputs = [adapter.generate_batch(b) for b in batches]
            window = session.stop_window(adapter.synchronize)
            cpu_s = time.process_time() - c0
        finally:
            session.close()
        tokens = sum(r.output_tokens for o in outputs for r in o.requests)
        return tokens / window.window_s, tokens / cpu_s

    for _ in range(a.warmup):
        run_bare()
        run_window()
    rows = []
    for rep in range(a.reps):
        first, second = (run_bare, run_window) if rep % 2 == 0 else (run_window, run_bare)
        x, y = first(), second()
        (b, b_cpu), (w, w_cpu) = (x, y) if first is run_bare else (y, x)
        rows.append({"bare_tok_s": b, "window_tok_s": w, "ratio": w / b, "cpu_ratio": w_cpu / b_cpu})
        print(f"  {engine} rep {rep + 1}/{a.reps}: bare {b:8.1f} tok/s  window {w:8.1f} tok/s  ratio {w / b:.3f}"
              f"  (per CPU second: {w_cpu / b_cpu:.3f})", flush=True)
    timing = adapter.token_timing()
    session = open_session(config, run_dir)
    devices = session.backend.description if session.backend is not None else "none"
    session.close()
    adapter.close()
    return {"engine": engine, "device": getattr(adapter, "device", None) or "cpu", "reps": rows,
            "bare": spread([r["bare_tok_s"] for r in rows]), "window": spread([r["window_tok_s"] for r in rows]),
            "ratio": spread([r["ratio"] for r in rows]), "ratio_ci95": median_ci([r["ratio"] for r in rows]),
            "cpu_ratio": spread([r["cpu_ratio"] for r in rows]),
            "cpu_ratio_ci95": median_ci([r["cpu_ratio"] for r in rows]), "token_timing": timing.model_dump(),
            "session_devices": devices}


def spread(values: list[float]) -> dict:
    q = statistics.quantiles(values, n=4) if len(values) >= 2 else [values[0]] * 3
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "q1": q[0], "q3": q[2]}


def median_ci(values: list[float], n_boot: int = 2000) -> list[float]:
    """95 % bootstrap interval of the median (seeded): how finely this run resolves the ratio."""
    rng = random.Random(0)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(n_boot))
    return [medians[int(0.025 * n_boot)], medians[int(0.975 * n_boot) - 1]]


def print_table(results: list[dict], a: argparse.Namespace) -> None:
    print(f"\nbatch {a.batch_size} x {a.batches} batches, {a.input_tokens} in / {a.output_tokens} out tokens, "
          f"{a.threads} thread(s), {a.reps} interleaved repetitions; load average {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} CPUs")
    print(f"{'engine':<13}{'bare tok/s (min-max)':>24}{'window tok/s (min-max)':>26}{'ratio':>7}{'95% CI':>15}"
          f"{'per CPU s':>11}{'95% CI':>15}  timing")
    for r in results:
        b, w, ci, cpu, cpu_ci = r["bare"], r["window"], r["ratio_ci95"], r["cpu_ratio"], r["cpu_ratio_ci95"]
        print(f"{r['engine']:<13}{b['median']:>9.1f} ({b['min']:.0f}-{b['max']:.0f}){'':>3}"
              f"{w['median']:>9.1f} ({w['min']:.0f}-{w['max']:.0f}){'':>3}{r['ratio']['median']:>7.3f}"
              f"{'':>3}{ci[0]:.3f}-{ci[1]:.3f}{cpu['median']:>9.3f}{'':>4}{cpu_ci[0]:.3f}-{cpu_ci[1]:.3f}"
              f"  {r['token_timing']['method']}")
    print("ratio: median of the per-repetition ratios window/bare of throughput (target >= 0.98), with the 95 % "
          "bootstrap interval of that median (the resolution of this run). per CPU s: the same ratio for tokens "
          "per CPU second of this process (all its threads, the session's sampler included), which a loaded "
          "machine's scheduling disturbs less than wall time")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--engines", default="transformers,llama_cpp", help="comma-separated: transformers,llama_cpp,vllm")
    p.add_argument("--reps", type=int, default=15, help="interleaved repetitions per side (>= 5)")
    p.add_argument("--warmup", type=int, default=2, help="unmeasured repetitions per side first")
    p.add_argument("--batches", type=int, default=4, help="batches per repetition")
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--input-tokens", type=int, default=16)
    p.add_argument("--output-tokens", type=int, default=32)
    p.add_argument("--threads", type=int, default=1, help="CPU threads (torch and llama.cpp)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="transformers device")
    p.add_argument("--model-dir", type=Path, default=None, help="a model made by `llem models make[-tiny]`")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    a = p.parse_args(argv)
    if a.reps < 5:
        p.error("--reps must be at least 5")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(a.threads)
    from llenergymeasure.models.tiny import make_tiny_model

    model_dir = a.model_dir or make_tiny_model(Path(tempfile.gettempdir()) / "llem-bench-tiny-llm")
    results, skipped = [], {}
    for engine in [e.strip() for e in a.engines.split(",") if e.strip()]:
        if importlib.util.find_spec(ENGINE_MODULE[engine]) is None:
            skipped[engine] = f"{ENGINE_MODULE[engine]} is not installed in {sys.executable}"
            print(f"{engine}: skipped ({skipped[engine]})")
            continue
        results.append(measure_engine(engine, model_dir, a))
    print_table(results, a)
    if a.json:
        a.json.write_text(json.dumps({"settings": vars(a) | {"model_dir": str(model_dir), "json": str(a.json)},
                                      "load_average": os.getloadavg(), "results": results, "skipped": skipped},
                                     indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
