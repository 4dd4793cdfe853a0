"""Record a real NVML trace for replay: `python -m llem_harness.measurement.record OUT.jsonl --duration-s N`.

Samples every assigned GPU (CUDA_VISIBLE_DEVICES / --gpu honoured, by UUID) at --period-ms and writes
the trace format of `devices/replay.py` with provenance (GPU model, driver, CUDA driver, UTC date,
source "recorded"). Needs a machine with an NVIDIA GPU; put load on the GPU from another process
while it records if the trace should show more than idle.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
from dataclasses import asdict
from datetime import datetime, timezone

from .devices.selection import select_devices
from .devices.nvml import NvmlBackend, NvmlUnavailable
from .devices.replay import write_trace


def record(out: str, duration_s: float, period_ms: float, gpu_ids: list[str] | None) -> int:
    from .sampler import Sampler

    try:
        backend = NvmlBackend.open()
    except NvmlUnavailable as exc:
        print(f"cannot record: {exc}", file=sys.stderr)
        return 2
    try:
        devices, notes = select_devices(backend.devices(), gpu_ids, os.environ.get("CUDA_VISIBLE_DEVICES"),
                                        os.environ.get("CUDA_DEVICE_ORDER"))
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        infos = [d.info() for d in devices]
        sampler = Sampler(backend, devices, period_ms)
        t0 = backend.clock()
        sampler.start()
        backend.wait(threading.Event(), duration_s)
        sampler.stop()
        rows = []
        for tick in sampler.snapshot():
            for dev, sample in zip(devices, tick.samples):
                row = asdict(sample)
                row["t_s"] = round(tick.t_s - t0, 6)
                row["gpu"] = dev.index
                rows.append(row)
        gpus = [{**info.model_dump(exclude={"driver_version", "cuda_driver_version"}),
                 "energy_counter_supported": dev.read_energy().energy_mj is not None, "processes": []}
                for dev, info in zip(devices, infos)]
        hdr = {"source": "recorded", "gpu_model": ", ".join(sorted({i.name or "?" for i in infos})),
               "driver_version": infos[0].driver_version if infos else None,
               "cuda_driver_version": infos[0].cuda_driver_version if infos else None,
               "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "loop": False,
               "period_ms": period_ms, "generated_by": "python -m llem_harness.measurement.record", "gpus": gpus}
        write_trace(out, hdr, rows)
        stats = sampler.stats()
        print(f"wrote {out}: {len(devices)} GPU(s), {stats.n_samples} samples, median period "
              f"{stats.achieved_period_median_ms} ms, max gap {stats.max_gap_ms} ms")
        return 0
    finally:
        backend.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--duration-s", type=float, default=30.0)
    parser.add_argument("--period-ms", type=float, default=100.0)
    parser.add_argument("--gpu", action="append", help="GPU index or UUID (repeatable); default: all visible")
    args = parser.parse_args(argv)
    return record(args.out, args.duration_s, args.period_ms, args.gpu)


if __name__ == "__main__":
    sys.exit(main())
