"""Does the power/thermal sampler slow inference? Tiny-model throughput with the sampler on vs off.

One process, interleaved (on/off order alternates every repetition so drift and thermal trends hit
both sides equally), several repetitions; prints per-repetition throughput, the on/off ratio and
its spread. The sampler polls real NVML when available; otherwise it runs against the replay
device (LLEM_NVML_REPLAY, default tests/fixtures/traces/ci_idle_load.jsonl) — then this measures
only the Python-side cost of the sampler thread (GIL, wake-ups), not NVML call latency, and the
output says so.

    python bench/sampler_overhead.py [--reps 8] [--batches 10] [--period-ms 100]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def open_devices():
    from llem_harness.measurement.devices.choice import REPLAY_ENV, open_backend

    os.environ.setdefault(REPLAY_ENV, str(REPO / "tests/fixtures/traces/ci_idle_load.jsonl"))
    if not os.environ.get("LLEM_BENCH_FORCE_REPLAY"):
        replay = os.environ.pop(REPLAY_ENV)
        choice = open_backend()  # real NVML first
        if choice.backend is None:
            os.environ[REPLAY_ENV] = replay
            choice = open_backend()
    else:
        choice = open_backend()
    return choice.backend


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=8)
    parser.add_argument("--batches", type=int, default=10, help="generate() calls per measurement")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--period-ms", type=float, default=100.0)
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llem_harness.measurement.sampler import Sampler
    from llenergymeasure.models.tiny import make_tiny_model

    backend = open_devices()
    model_dir = make_tiny_model(Path(tempfile.gettempdir()) / "llem-bench-tiny-llm")
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    inputs = tok(["the quick brown fox jumps over the lazy dog"] * args.batch_size, return_tensors="pt",
                 padding=True).to(device)

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    def run(with_sampler: bool) -> float:
        sampler = Sampler(backend, backend.devices(), args.period_ms) if with_sampler else None
        if sampler:
            sampler.start()
        sync()
        t0 = time.perf_counter()
        tokens = 0
        with torch.no_grad():
            for _ in range(args.batches):
                out = model.generate(**inputs, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                                     do_sample=False, pad_token_id=tok.pad_token_id)
                tokens += (out.shape[1] - inputs["input_ids"].shape[1]) * out.shape[0]
        sync()
        elapsed = time.perf_counter() - t0
        if sampler:
            sampler.stop()
        return tokens / elapsed

    run(False)  # warm-up, not counted
    ratios, on_all, off_all = [], [], []
    for rep in range(args.reps):
        order = (True, False) if rep % 2 == 0 else (False, True)
        tput = {mode: run(mode) for mode in order}
        on_all.append(tput[True])
        off_all.append(tput[False])
        ratios.append(tput[True] / tput[False])
        print(f"rep {rep}: sampler on {tput[True]:8.1f} tok/s | off {tput[False]:8.1f} tok/s | "
              f"ratio {ratios[-1]:.3f}")
    print(f"device backend: {backend.source} — {backend.description}")
    if backend.source == "replay":
        print("NOTE: no NVML here; the sampler polled the REPLAY device, so this is the sampler thread's "
              "Python-side overhead only (NVML call latency not included).")
    print(f"inference on {device}, {torch.get_num_threads()} torch threads, period {args.period_ms:g} ms, "
          f"{args.reps} reps x {args.batches} batches of {args.batch_size}x{args.new_tokens} tokens")
    print(f"throughput on/off ratio: median {statistics.median(ratios):.3f}, mean {statistics.fmean(ratios):.3f}, "
          f"std {statistics.stdev(ratios) if len(ratios) > 1 else 0:.3f}, min {min(ratios):.3f}, max {max(ratios):.3f}")
    print(f"median tok/s: on {statistics.median(on_all):.1f}, off {statistics.median(off_all):.1f}")


if __name__ == "__main__":
    main()
