"""Figures and table of bench/measurement_overhead.py: spreads, bootstrap intervals, the accounting."""
from __future__ import annotations

import argparse
import os
import random
import statistics


def accounted(r: dict, hook_us: float | None, other_share: float, tokens_per_step: int, tokens_per_rep: int) -> dict:
    """The window's added work, summed from its parts (less disturbed by a loaded machine than throughput):
    per-step timing cost x steps per second, the other threads' CPU time per window second (an upper bound:
    with a free core it costs the engine only GIL hand-overs), and the empty window's edges per repetition."""
    window_tok_s = r["window"]["median"]
    steps_per_s = window_tok_s / tokens_per_step
    hook_share = (hook_us or 0.0) * 1e-6 * steps_per_s
    edge_share = r["empty_window_ms"]["median"] / 1e3 / (tokens_per_rep / window_tok_s)
    return {"hook_us_per_step": hook_us, "hook_share": hook_share, "other_threads_cpu_share": other_share,
            "edge_share": edge_share, "ratio_bound": 1 / (1 + hook_share + other_share + edge_share)}


def spread(values: list[float]) -> dict:
    q = statistics.quantiles(values, n=4) if len(values) >= 2 else [values[0]] * 3
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "q1": q[0], "q3": q[2]}


def median_ci(values: list[float], n_boot: int = 2000) -> list[float]:
    """95 % bootstrap interval of the median (seeded): how finely this run resolves the ratio."""
    rng = random.Random(0)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(n_boot))
    return [medians[int(0.025 * n_boot)], medians[int(0.975 * n_boot) - 1]]


def print_table(results: list[dict], a: argparse.Namespace) -> None:
    print(f"\nbatch {a.batch_size}, {a.input_tokens} in / {a.output_tokens} out tokens, "
          f"{a.threads} thread(s), {a.reps} interleaved repetitions; load average {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} CPUs")
    print(f"{'engine':<13}{'side':<15}{'tok/s median (min-max)':>26}{'ratio':>7}{'95% CI':>15}{'best/best':>10}"
          f"{'per CPU s':>10}{'95% CI':>15}")
    for r in results:
        for n in ("bare", "window", "adapter", "sync_per_step"):
            if n not in r:
                continue
            t = r[n]
            line = f"{r['engine']:<13}{n:<15}{t['median']:>10.1f} ({t['min']:.0f}-{t['max']:.0f}){'':>3}"
            if n != "bare":
                q, c = r[f"{n}_ratio"], r[f"{n}_cpu_ratio"]
                line += (f"{q['median']:>7.3f}{'':>3}{q['ci95'][0]:.3f}-{q['ci95'][1]:.3f}{q['best_of_n']:>9.3f}"
                         f"{c['median']:>10.3f}{'':>3}{c['ci95'][0]:.3f}-{c['ci95'][1]:.3f}")
            print(line)
        c = r["accounted"]
        print(f"{'':<13}accounted: timing {c['hook_us_per_step'] or 0:.2f} us/step ({c['hook_share']:.2%}), other "
              f"threads' CPU {c['other_threads_cpu_share']:.2%} of the window, edges {c['edge_share']:.2%} -> "
              f"window/bare >= {c['ratio_bound']:.3f}")
        print(f"{'':<13}{r['batches_per_rep']} batches per repetition; empty window "
              f"{r['empty_window_ms']['median']:.2f} ms (median of 10); token timing: {r['token_timing']['method']} on {r['device']}; session "
              f"devices: {r['session_devices']}")
    print("ratio: median of the per-repetition ratios side/bare of throughput (target for window: >= 0.98), with "
          "the 95 % bootstrap interval of that median (this run's resolution); best/best: fastest repetition of "
          "each side (what a loaded machine disturbs least); per CPU s: the ratio of tokens per CPU second of "
          "this process (all its threads, the session's sampler included); accounted: the window's added work "
          "summed from its parts, an upper bound less disturbed by the load; adapter: generate_batch alone, no "
          "session; sync_per_step: the bare loop plus "
          "the per-step synchronise + timestamp hook the harness used before (only meaningful on CUDA)")
