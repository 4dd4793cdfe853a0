"""In-process device checks of bench/gpu_validation.py: idle, agreement, cool-down, sampler overhead.

Run by gpu_validation.py as a subprocess (so its CUDA context is gone before the study starts):

    python bench/gpu_validation_device.py OUT_DIR --model DIR [--replay TRACE --speed X]

One process, in this order: idle before any model is loaded (no CUDA context yet), model load,
loaded idle, a ramp into a steady decode loop, the steady window measured three ways (energy
counter difference, trapezoid of instant power, trapezoid of the 1-s averaged power), cool-down
to idle temperature, then the sampler overhead (default period vs off, interleaved) and the
per-batch time of each study batch size (to size the study's windows). Every NVML sample of the
first five phases is written as an `LLEM_NVML_REPLAY` trace with the phases marked in its header.

With `--replay TRACE` (a session trace written by this script, recorded or synthetic) each phase
plays its own slice of that trace at `--speed`, and the model runs on CPU: the same code, rehearsed
without a GPU; the figures then describe the trace, not this machine. Never changes device settings.
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for sub in ("orchestrator", "harness"):
    if str(REPO / sub) not in sys.path:
        sys.path.insert(0, str(REPO / sub))

from gpu_validation_stats import (agreement, cooldown_time, idle_stats, overhead_verdict,  # noqa: E402
                                  update_periods)

RECORD_PERIOD_MS = 50.0     # the sampler's fastest allowed period: finest traces
DEFAULT_PERIOD_MS = 100.0   # MeasurementConfig.sampling_period_ms default: what the overhead check uses


@dataclass
class Phase:
    name: str
    t0: float
    t1: float
    e0: int | None
    e1: int | None
    ticks: list


class Recorder:
    """Phases on one continuous NVML sampler, or (replay) each phase on its own slice of a trace."""

    def __init__(self, replay: str | None, speed: float):
        from llem_harness.measurement.sampler import Sampler

        self._Sampler = Sampler
        self.replay, self.speed = replay, speed
        if replay:
            from llem_harness.measurement.devices.replay import read_trace

            self.header, self._rows = read_trace(replay)
            self.marks = self.header.get("phases") or {}
            self.backend = self.device = self.sampler = None
        else:
            import os

            from llem_harness.measurement.devices.choice import open_backend
            from llem_harness.measurement.devices.selection import select_devices

            choice = open_backend()
            if choice.backend is None:
                raise RuntimeError(f"no NVML: {choice.unavailable_reason}")
            self.backend = choice.backend
            visible, _ = select_devices(choice.backend.devices(), None, os.environ.get("CUDA_VISIBLE_DEVICES"),
                                        os.environ.get("CUDA_DEVICE_ORDER"))
            self.device = visible[0]  # the GPU torch calls cuda:0
            self.sampler = Sampler(self.backend, [self.device], RECORD_PERIOD_MS)
            self.sampler.start()
        self.phases: list[Phase] = []

    def _open_slice(self, name: str, start_sampler: bool = True) -> float:
        from llem_harness.measurement.devices.replay import ReplayBackend

        t0, t1 = self.marks[name]
        rows = [r for r in self._rows if t0 <= r["t_s"] <= t1]
        self.backend = ReplayBackend(self.header, rows, speed=self.speed, path=self.replay)
        self.device = self.backend.devices()[0]
        self.sampler = self._Sampler(self.backend, [self.device], RECORD_PERIOD_MS)
        if start_sampler:
            self.sampler.start()
        return t1 - t0

    def run(self, name: str, seconds: float, work=None, stop_when=None) -> Phase:
        """Measure one phase: `work()` runs first (e.g. a model load), then wait `seconds` more
        (device seconds), ending early when `stop_when(latest_sample)` is true."""
        if self.replay:
            seconds = min(seconds, self._open_slice(name))
        t0 = self.backend.clock()
        e0 = self.device.read_energy().energy_mj
        self.sampler.sample_now()
        if work is not None:
            work()
        end = self.backend.clock() + seconds
        stop = threading.Event()
        while self.backend.clock() < end:
            ticks = self.sampler.snapshot()
            if stop_when is not None and ticks and stop_when(ticks[-1].samples[0]):
                break
            self.backend.wait(stop, min(0.25, end - self.backend.clock()))
        self.sampler.sample_now()
        t1 = self.backend.clock()
        e1 = self.device.read_energy().energy_mj
        ticks = [tk for tk in self.sampler.snapshot() if t0 <= tk.t_s <= t1]
        if self.replay:
            self.sampler.stop()
        phase = Phase(name, t0, t1, e0, e1, ticks)
        self.phases.append(phase)
        print(f"[{time.strftime('%H:%M:%S')}] phase {name}: {t1 - t0:.1f} device s, {len(ticks)} samples", flush=True)
        return phase

    def write_traces(self, out_dir: Path) -> list[str]:
        """The whole session as one trace, plus one trace per phase (what tests replay)."""
        from llem_harness.measurement.devices.replay import write_trace

        if self.sampler is not None and not self.replay:
            self.sampler.stop()
        origin = self.phases[0].t0
        info = self.device.info()
        if self.replay:
            hdr = {k: v for k, v in self.header.items() if k not in ("format", "version", "phases")}
            hdr["note"] = f"REHEARSAL: re-sampled on CPU from {Path(self.replay).name}; not a new measurement"
        else:
            hdr = {"source": "recorded", "gpu_model": info.name, "driver_version": info.driver_version,
                   "cuda_driver_version": info.cuda_driver_version,
                   "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   "note": "bench/gpu_validation.py session: idle, model load, loaded idle, ramp, steady decode, "
                           "cool-down (phases in `phases`)",
                   "gpus": [{**info.model_dump(exclude={"driver_version", "cuda_driver_version"}),
                             "energy_counter_supported": self.phases[0].e0 is not None, "processes": []}]}
        hdr.update(loop=False, period_ms=RECORD_PERIOD_MS, generated_by="bench/gpu_validation_device.py")
        tag = "rehearsal" if self.replay else (info.name or "gpu").replace(" ", "_").lower()
        rows_by_phase = {}
        for ph in self.phases:
            rows = []
            for tk in ph.ticks:
                row = asdict(tk.samples[0])
                row.update(t_s=round(tk.t_s - origin, 6), gpu=self.device.index)
                rows.append(row)
            rows_by_phase[ph.name] = rows
        marks = {ph.name: [round(ph.t0 - origin, 6), round(ph.t1 - origin, 6)] for ph in self.phases}
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        session = out_dir / f"{tag}_session.jsonl"
        write_trace(session, {**hdr, "phases": marks}, [r for rows in rows_by_phase.values() for r in rows])
        written.append(str(session))
        for name, rows in rows_by_phase.items():
            if rows:
                path = out_dir / f"{tag}_{name}.jsonl"
                write_trace(path, {**hdr, "phases": {name: marks[name]}}, rows)
                written.append(str(path))
        return written


class Model:
    """The model under test and a fixed decode workload (greedy, fixed length)."""

    def __init__(self, model_dir: str, device: str):
        import torch  # noqa: F401 - imported now, so the load phase times the load, not the imports
        import transformers  # noqa: F401

        self.model_dir, self.device = model_dir, device
        self.model = self.tok = None

    def load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        self.tok = AutoTokenizer.from_pretrained(self.model_dir)
        self.tok.padding_side = "left"
        self.model = AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=dtype).to(self.device).eval()
        self.sync()

    def sync(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()

    def generate(self, batch: int, new_tokens: int) -> int:
        import torch

        prompts = [f"measuring the energy of inference, request {i}" for i in range(batch)]
        inputs = self.tok(prompts, return_tensors="pt", padding=True).to(self.device)
        with torch.no_grad():
            out = self.model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                      do_sample=False, pad_token_id=self.tok.pad_token_id)
        self.sync()
        return (out.shape[1] - inputs["input_ids"].shape[1]) * out.shape[0]


def steady_load(model: Model, batch: int, new_tokens: int, stop: threading.Event, errors: list[str]) -> None:
    try:
        while not stop.is_set():
            model.generate(batch, new_tokens)
    except Exception as exc:  # noqa: BLE001 - reported as the steady load's error; the window is then not a load
        errors.append(f"{type(exc).__name__}: {exc}")


def sampler_overhead(model: Model, rec: Recorder, reps: int, calls: int, batch: int, new_tokens: int) -> dict:
    """Throughput with the sampler at its default period vs off, same process, order alternating."""
    from llem_harness.measurement.sampler import Sampler

    def one(on: bool) -> float:
        sampler = Sampler(rec.backend, [rec.device], DEFAULT_PERIOD_MS) if on else None
        if sampler:
            sampler.start()
        t0 = time.perf_counter()
        tokens = sum(model.generate(batch, new_tokens) for _ in range(calls))
        elapsed = time.perf_counter() - t0
        if sampler:
            sampler.stop()
        return tokens / elapsed

    one(False)  # warm
    rows = []
    for rep in range(reps):
        order = (True, False) if rep % 2 == 0 else (False, True)
        tput = {on: one(on) for on in order}
        rows.append({"on_tok_s": tput[True], "off_tok_s": tput[False], "ratio": tput[True] / tput[False]})
    return {"period_ms": DEFAULT_PERIOD_MS, "reps": rows, **overhead_verdict([r["ratio"] for r in rows]),
            "backend": rec.backend.source}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out_dir", type=Path)
    p.add_argument("--model", required=True)
    p.add_argument("--replay", help="session trace to replay (CPU rehearsal)")
    p.add_argument("--speed", type=float, default=1.0)
    p.add_argument("--idle-s", type=float, default=20.0)
    p.add_argument("--steady-s", type=float, default=20.0)
    p.add_argument("--ramp-s", type=float, default=3.0)
    p.add_argument("--cooldown-max-s", type=float, default=45.0)
    p.add_argument("--cooldown-delta-c", type=float, default=2.0)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--overhead-reps", type=int, default=4)
    p.add_argument("--overhead-calls", type=int, default=2)
    p.add_argument("--study-batches", default="1,8")
    a = p.parse_args(argv)
    a.out_dir.mkdir(parents=True, exist_ok=True)
    out: dict = {"replay": a.replay, "errors": {}}
    result_file = a.out_dir / "device.json"

    def save() -> None:
        result_file.write_text(json.dumps(out, indent=2, default=str) + "\n")

    def section(name: str, fn) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {name}", flush=True)
        try:
            out[name] = fn()
        except Exception as exc:  # noqa: BLE001 - record and go on: later sections may still work
            out["errors"][name] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        save()

    try:
        rec = Recorder(a.replay, a.speed)
    except Exception as exc:  # noqa: BLE001 - no device at all: say so in device.json, measure nothing
        out["errors"]["device"] = f"{type(exc).__name__}: {exc}"
        save()
        return 1
    out["backend"] = rec.backend.description if rec.backend else f"replay of {a.replay}"
    device = "cpu" if a.replay else "cuda"
    model = Model(a.model, device)
    load_errors: list[str] = []
    try:
        idle = rec.run("idle", a.idle_s)
        section("idle_preload", lambda: idle_stats(idle))
        rec.run("load", 2.0, work=model.load)
        section("loaded_idle", lambda: idle_stats(rec.run("loaded_idle", a.idle_s)))
        stop = threading.Event()
        worker = threading.Thread(target=steady_load, args=(model, a.batch, a.new_tokens, stop, load_errors),
                                  daemon=True)
        rec.run("ramp", a.ramp_s, work=worker.start)
        steady = rec.run("steady", a.steady_s)
        stop.set()
        worker.join()
        if load_errors:
            out["errors"]["steady_load"] = load_errors[0]
        else:
            section("agreement", lambda: {**agreement(steady), "update_periods": update_periods(steady),
                                          "workload": f"batch {a.batch} x {a.new_tokens} new tokens, greedy, repeated"})
        idle_temp = out.get("idle_preload", {}).get("temperature_c_mean")
        target_c = idle_temp + a.cooldown_delta_c if idle_temp is not None else None
        cool = rec.run("cooldown", a.cooldown_max_s, stop_when=(
            lambda s: s.temperature_c is not None and s.temperature_c <= target_c) if target_c else None)
        section("cooldown", lambda: cooldown_time(cool, target_c, a.cooldown_max_s))
    except Exception as exc:  # noqa: BLE001 - e.g. the model does not load: keep what was sampled
        out["errors"]["phases"] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    finally:
        section("traces", lambda: rec.write_traces(a.out_dir / "traces"))
        if rec.sampler is not None:
            rec.sampler.stop()  # the overhead's "off" side must have no sampler at all
    if "phases" in out["errors"]:
        return 1
    if a.replay:  # the overhead sampler polls a device; in rehearsal, the steady slice's replay device
        rec._open_slice("steady", start_sampler=False)
    section("overhead", lambda: sampler_overhead(model, rec, a.overhead_reps, a.overhead_calls, a.batch, a.new_tokens))

    def calibrate() -> dict:
        times = {}
        for b in (int(x) for x in a.study_batches.split(",")):
            model.generate(b, a.new_tokens)
            t0 = time.perf_counter()
            model.generate(b, a.new_tokens)
            times[str(b)] = time.perf_counter() - t0
        return {"new_tokens": a.new_tokens, "seconds_per_batch": times}

    section("calibration", calibrate)
    return 0 if not out["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
