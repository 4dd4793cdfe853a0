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

Prints, per engine: each side's median throughput with its min-max; the median of the per-repetition
ratios window/bare with its 95 % bootstrap interval (this run's resolution; target >= 0.98,
docs/metrics.md `token_timing`); the same ratio in tokens per CPU second of the process; and an
accounting of the window's added work from its parts (the timing hook's cost per step measured
alone, the session threads' CPU time, an empty window's edges), an upper bound that a loaded
machine disturbs far less than throughput. `--decompose` adds the adapter alone (no session);
`--sync-per-step` adds the bare transformers loop with the per-step synchronise the harness used
before (what it cost shows on a GPU; bench/gpu_validation.py runs this there). Repetitions last
about `--rep-s` seconds, so the window's fixed edge cost weighs as in a real run.

vLLM runs only in an interpreter that has it (scripts/setup-vllm.sh makes .venv-vllm; slow):
`.venv-vllm/bin/python bench/measurement_overhead.py --engines vllm`. Its bare side uses the same
`LLM` object, built with `disable_log_stats=False` (the harness needs vLLM's request metrics for
TTFT), so it shows the harness's own cost, not that of vLLM's statistics; that side is not yet run.

    python bench/measurement_overhead.py [--engines transformers,llama_cpp] [--reps 15] [--rep-s 2]
        [--batch-size 2] [--input-tokens 16] [--output-tokens 32] [--threads 1] [--decompose]
        [--sync-per-step] [--device auto|cpu|cuda] [--model-dir DIR] [--json OUT.json]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for _p in (REPO / "orchestrator", REPO / "harness", Path(__file__).resolve().parent):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

TEXT = ("The committee met on a grey morning to review the measurements of the new cooling system, "
        "which had been installed in the spring after a long debate about cost, noise and the energy "
        "used by the servers in the basement during the hottest weeks of the year. ") * 4
from measurement_overhead_report import accounted, median_ci, print_table, spread  # noqa: E402

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


def bare_loop(engine: str, adapter, config, sync_per_step: bool = False):
    """The engine's own loop, as a user writes it: returns run(batch) -> output tokens.

    `sync_per_step` (transformers): add the per-step hook the harness used before, a device synchronise
    and a host timestamp per decoding step, to show on a GPU what that hook cost."""
    if engine == "transformers":
        import torch
        from transformers import LogitsProcessor, LogitsProcessorList

        tok, model = adapter.tokenizer, adapter.model
        kwargs = dict(max_new_tokens=config.max_output_tokens, min_new_tokens=config.max_output_tokens,
                      do_sample=False, temperature=None, top_p=None, top_k=None, pad_token_id=tok.pad_token_id)
        if sync_per_step:
            class SyncPerStep(LogitsProcessor):
                def __call__(self, input_ids, scores):  # noqa: ANN001 - transformers' signature
                    adapter.synchronize()
                    time.perf_counter()
                    return scores

            kwargs["logits_processor"] = LogitsProcessorList([SyncPerStep()])

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


def one_thread_llama_cpp(llm, threads: int) -> None:
    """`n_threads` sets llama.cpp's decode threads only; prompt processing uses `n_threads_batch`, which
    llama-cpp-python sets to every CPU. Both sides here use `threads` for both (the same engine object),
    so that `--threads 1` means one thread: spinning prompt threads on a loaded machine made each
    repetition several times slower and far noisier."""
    import llama_cpp

    llama_cpp.llama_set_n_threads(llm._ctx.ctx, threads, threads)
    llm.n_threads = llm.n_threads_batch = threads
    llm.context_params.n_threads = llm.context_params.n_threads_batch = threads


def open_session(config, run_dir: Path):
    """The harness's session; real NVML first, else the replay device (its sampler thread still runs)."""
    from llem_harness.measurement import MeasurementSession
    from llem_harness.measurement.devices.choice import REPLAY_ENV

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
    if engine == "llama_cpp":
        one_thread_llama_cpp(adapter.llm, a.threads)
    prompts = [adapter.fit_to_tokens(TEXT[i * 7:], a.input_tokens) for i in range(a.batch_size * 8)]
    distinct = [prompts[i:i + a.batch_size] for i in range(0, len(prompts), a.batch_size)]
    batches = distinct[:1]
    run_dir = Path(tempfile.mkdtemp(prefix="llem-overhead-"))

    def timed_loop(loop):
        def run() -> tuple[float, float]:
            adapter.synchronize()
            t0, c0 = time.perf_counter(), time.process_time()
            tokens = sum(loop(b) for b in batches)
            adapter.synchronize()
            return tokens / (time.perf_counter() - t0), tokens / (time.process_time() - c0)
        return run

    other_threads_share: list[float] = []  # CPU time of the process's other threads (the sampler) / window_s

    def run_window() -> tuple[float, float]:
        session = open_session(config, run_dir)  # outside the window, as in a harness run
        try:
            c0, m0 = time.process_time(), time.thread_time()
            session.start_window(adapter.synchronize)
            outputs = [adapter.generate_batch(b) for b in batches]
            window = session.stop_window(adapter.synchronize)
            cpu_s, main_s = time.process_time() - c0, time.thread_time() - m0
        finally:
            session.close()
        other_threads_share.append(max(0.0, cpu_s - main_s) / window.window_s)
        tokens = sum(r.output_tokens for o in outputs for r in o.requests)
        return tokens / window.window_s, tokens / cpu_s

    sides = {"bare": timed_loop(bare_loop(engine, adapter, config)), "window": run_window}
    if a.decompose:  # the adapter's generate_batch without a session: splits the window's cost in two
        sides["adapter"] = timed_loop(lambda b: sum(r.output_tokens for r in adapter.generate_batch(b).requests))
    if a.sync_per_step and engine == "transformers":
        sides["sync_per_step"] = timed_loop(bare_loop(engine, adapter, config, sync_per_step=True))
    names = list(sides)
    for _ in range(a.warmup):
        for name in names:
            sides[name]()
    # Batches per repetition: at least --batches, and enough for --rep-s seconds at the bare speed, so that
    # the window's fixed edge cost (measured below on its own) weighs in each repetition as in a real run.
    bare_tok_s = max(sides["bare"]()[0] for _ in range(3))
    n_batches = max(a.batches, math.ceil(a.rep_s * bare_tok_s / (a.batch_size * a.output_tokens)))
    batches[:] = [distinct[i % len(distinct)] for i in range(n_batches)]
    rows = []
    for rep in range(a.reps):
        order = names[rep % len(names):] + names[:rep % len(names)]  # each side leads in turn
        got = {name: sides[name]() for name in order}
        row = {f"{n}_tok_s": got[n][0] for n in names}
        row.update({f"{n}_ratio": got[n][0] / got["bare"][0] for n in names[1:]})
        row.update({f"{n}_cpu_ratio": got[n][1] / got["bare"][1] for n in names[1:]})
        rows.append(row)
        print(f"  {engine} rep {rep + 1}/{a.reps}: " + "  ".join(f"{n} {got[n][0]:8.1f} tok/s" for n in names)
              + "  ratio " + " ".join(f"{row[f'{n}_ratio']:.3f}" for n in names[1:]), flush=True)
    timing = adapter.token_timing()
    edge_ms = []
    for _ in range(10):  # an empty window: what opening and closing the window alone adds to window_s
        session = open_session(config, run_dir)
        session.start_window(adapter.synchronize)
        edge_ms.append(session.stop_window(adapter.synchronize).window_s * 1e3)
        devices = session.backend.description if session.backend is not None else "none"
        session.close()
    device = adapter.versions().get("device") or "cpu"
    hook_us = hook_cost_us(engine, adapter, config)
    adapter.close()
    out = {"engine": engine, "device": device, "session_devices": devices, "token_timing": timing.model_dump(),
           "batches_per_rep": n_batches, "empty_window_ms": spread(edge_ms), "reps": rows}
    for n in names:
        out[n] = spread([r[f"{n}_tok_s"] for r in rows])
    for n in names[1:]:
        ratios, cpu = [r[f"{n}_ratio"] for r in rows], [r[f"{n}_cpu_ratio"] for r in rows]
        out[f"{n}_ratio"] = {**spread(ratios), "ci95": median_ci(ratios),
                             "best_of_n": out[n]["max"] / out["bare"]["max"]}
        out[f"{n}_cpu_ratio"] = {**spread(cpu), "ci95": median_ci(cpu)}
    tokens_per_step = a.batch_size if engine == "transformers" else 1  # a static batch: batch_size per step
    out["accounted"] = accounted(out, hook_us, statistics.median(other_threads_share[a.warmup:]), tokens_per_step,
                                 n_batches * a.batch_size * a.output_tokens)
    return out


def hook_cost_us(engine: str, adapter, config) -> float | None:
    """The adapter's per-step timing work alone, in microseconds per step (best of 5 runs of 2000 calls: the
    cost itself, without the machine's interruptions). transformers: its real stopping-criterion hook, as
    `generate` calls it, minus an empty criteria list; llama.cpp: a perf_counter read and a list append."""
    n = 2000

    def best(fn) -> float:
        runs = []
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            runs.append((time.perf_counter() - t0) / n)
        return min(runs)

    if engine == "transformers":
        import torch
        from transformers import StoppingCriteriaList

        ids = torch.zeros((config.batch_size, config.max_input_tokens), dtype=torch.long, device=adapter.device)
        scores = torch.zeros((config.batch_size, adapter.model.config.vocab_size), device=adapter.device)
        hooked, empty = StoppingCriteriaList([adapter.step_hook()]), StoppingCriteriaList([])
        cost = best(lambda: hooked(ids, scores)) - best(lambda: empty(ids, scores))
        adapter._clock.begin()  # drop the marks this made
        return cost * 1e6
    if engine == "llama_cpp":
        times: list[float] = []
        return best(lambda: times.append(time.perf_counter())) * 1e6
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--engines", default="transformers,llama_cpp", help="comma-separated: transformers,llama_cpp,vllm")
    p.add_argument("--reps", type=int, default=15, help="interleaved repetitions per side (>= 5)")
    p.add_argument("--warmup", type=int, default=2, help="unmeasured repetitions per side first")
    p.add_argument("--batches", type=int, default=2, help="batches per repetition, at least")
    p.add_argument("--rep-s", type=float, default=2.0, help="seconds per repetition and side, about (sets the batches)")
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--input-tokens", type=int, default=16)
    p.add_argument("--output-tokens", type=int, default=32)
    p.add_argument("--threads", type=int, default=1, help="CPU threads (torch and llama.cpp)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="transformers device")
    p.add_argument("--model-dir", type=Path, default=None, help="a model made by `llem models make[-tiny]`")
    p.add_argument("--decompose", action="store_true",
                   help="also run the adapter's generate_batch without a session (window = adapter + session)")
    p.add_argument("--sync-per-step", action="store_true",
                   help="transformers: also run the bare loop with a device synchronise per step (the old hook)")
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
