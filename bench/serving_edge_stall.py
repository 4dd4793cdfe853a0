"""How long do the serving window's edges stall the load generator's event loop?

The window edges are taken inside the asyncio loop that streams every request: while an edge runs,
no token of any request in flight is read. This measures, side by side in one process, the time
one edge holds the loop with

- `inline`: the whole window work at the edge (`start_window` / `stop_window`: NVML edge samples,
  sampler thread start and join, time-series file), as serving did before;
- `live`: only the counters at the edge (`LiveEdges`, what serving does now), the rest after the load.

Devices: real NVML when available, else the replay device (LLEM_NVML_REPLAY, default
tests/fixtures/traces/ci_idle_load.jsonl) — then only the Python-side cost is measured, not NVML
call latency, and the output says so. `save_timeseries` is on (the worst case). Target: live edge
stall <= 1 ms. On a loaded machine a single edge can be descheduled by the OS: read the medians
beside the maxima, and rerun on a quiet one.

    python bench/serving_edge_stall.py [--reps 10] [--window-s 0.5]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _session(run_dir: Path):
    from llem_harness.measurement import MeasurementSession
    from llenergymeasure.domain import MeasurementConfig

    cfg = MeasurementConfig(save_timeseries=True, sampling_period_ms=50.0)
    return MeasurementSession(cfg, None, None, run_dir, lambda *a, **k: None)


async def _one(mode: str, window_s: float, run_dir: Path) -> tuple[float, float]:
    """(start-edge stall, end-edge stall) in seconds, with a ticker coroutine standing in for the streams."""
    from llem_harness.serving.window import LiveEdges, _no_sync

    session = _session(run_dir)
    stop = asyncio.Event()

    async def ticker() -> None:  # requests in flight: the loop must keep turning
        while not stop.is_set():
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    try:
        await asyncio.sleep(0.05)
        live = LiveEdges(session)
        t = time.perf_counter()
        if mode == "inline":
            session.start_window(_no_sync)
        else:
            live.on_edge("start")
        start_stall = time.perf_counter() - t
        await asyncio.sleep(window_s)
        t = time.perf_counter()
        if mode == "inline":
            session.stop_window(_no_sync)
        else:
            live.on_edge("end")
        end_stall = time.perf_counter() - t
    finally:
        stop.set()
        await task
    if mode == "live":
        live.finish()  # after the load: sampler join, files
    session.close()
    return start_stall, end_stall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--window-s", type=float, default=0.5)
    args = parser.parse_args()

    from llem_harness.measurement.devices.choice import REPLAY_ENV, open_backend

    replay = os.environ.get(REPLAY_ENV)
    if not replay and open_backend().backend is None:
        os.environ[REPLAY_ENV] = str(REPO / "tests/fixtures/traces/ci_idle_load.jsonl")
    backend = open_backend().backend
    print(f"devices: {getattr(backend, 'description', 'none')}"
          + (" (replay: Python-side cost only, no NVML call latency)" if os.environ.get(REPLAY_ENV) else ""))
    results: dict[str, list[float]] = {"inline": [], "live": []}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            for mode in (("inline", "live") if rep % 2 == 0 else ("live", "inline")):  # alternate the order
                start, end = asyncio.run(_one(mode, args.window_s, Path(tmp)))
                results[mode] += [start, end]
    for mode, values in results.items():
        for name, edge in (("start", values[0::2]), ("end", values[1::2])):
            ms = [v * 1000 for v in edge]
            print(f"{mode:6s} {name:5s} edge stall: median {statistics.median(ms):.3f} ms, max {max(ms):.3f} ms "
                  f"over {len(ms)} edges")
    live_max = max(results["live"]) * 1000
    ratio = statistics.median(results["inline"]) / max(statistics.median(results["live"]), 1e-9)
    print(f"live edge stall max {live_max:.3f} ms (target <= 1 ms): {'OK' if live_max <= 1.0 else 'ABOVE TARGET'}; "
          f"inline/live median ratio {ratio:.1f}x")


if __name__ == "__main__":
    main()
