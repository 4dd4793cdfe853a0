"""The offline workload: an engine adapter generates the measured prompts in static batches.

The engine is an adapter looked up by name (engines/base.py `create_adapter`); this module never
branches on the engine. The window is synchronised with the device at both edges (work queued
before it is finished before it opens; work inside it is finished before it closes), and holds
nothing but the batches. Warm-up repeats one full batch of prompts outside the measured set:
identical work each time, so the latency CV measures settling, and no measured prompt is in any
prefix cache.
"""
from __future__ import annotations

import time
from pathlib import Path

from llenergymeasure.domain import (FlopsEstimate, MemoryStats, PhaseEnergy, RequestRecord, RunSpec, compute_metrics,
                                    prompt_cache)
from llenergymeasure.domain.latency import LATENCY_REFERENCE_DEFINITION, request_latency

from .datasets import load_prompts, warmup_prompts
from .engines.base import BatchOutput, create_adapter
from .startup import import_engine
from .workload import Emit, WorkloadOutcome


class OfflineBatches:
    load_stage = "loading"

    def __init__(self, spec: RunSpec, run_dir: Path, emit: Emit):
        self.config = spec.config
        self.emit = emit
        self.load_fields = {"model": self.config.model}
        self.adapter = create_adapter(self.config)
        self.prompts: list[str] = []
        self.batches: list[list[str]] = []
        self.warm_batch: list[str] = []
        self.outputs: list[BatchOutput] = []
        self.perf_to_unix_s = 0.0

    def import_engine(self) -> float | None:
        return import_engine(self.config.engine, self.config.model)

    def load(self) -> float:
        load_start = time.monotonic()
        self.adapter.load()
        return time.monotonic() - load_start

    def record_versions(self, environment, after) -> None:
        for key, value in after.read("versions", self.adapter.versions, lambda _reason: {}).items():
            setattr(environment, key, value)
        if environment.cuda_version is None:  # no CUDA torch build: report the driver's CUDA version
            environment.cuda_version = next((g.cuda_driver_version for g in environment.gpus
                                             if g.cuda_driver_version), None)

    def prepare(self) -> None:
        config, fit = self.config, self.adapter.fit_to_tokens
        self.prompts = load_prompts(config, fit)
        self.batches = [self.prompts[i:i + config.batch_size] for i in range(0, len(self.prompts), config.batch_size)]
        self.warm_batch = warmup_prompts(config, fit, len(self.batches[0]), self.prompts)

    def warmup_step(self) -> float:
        out = self.adapter.generate_batch(self.warm_batch)
        return out.end_s - out.start_s

    def measuring_fields(self) -> dict:
        return {"n_batches": len(self.batches), "n_prompts": len(self.prompts)}

    def run_measured(self, session):
        adapter = self.adapter
        adapter.reset_peak_memory()
        self.outputs = []
        session.start_window(adapter.synchronize)
        perf_origin_s, unix_origin_s = time.perf_counter(), time.time()  # maps adapter clocks to unix time
        self.perf_to_unix_s = unix_origin_s - perf_origin_s
        for i, batch in enumerate(self.batches):
            self.outputs.append(adapter.generate_batch(batch))
            self.emit("batch", stage="measuring", done=i + 1, total=len(self.batches))
        return session.stop_window(adapter.synchronize)

    def outcome(self, session, window, after) -> WorkloadOutcome:
        config, adapter = self.config, self.adapter
        memory = after.read("memory", adapter.memory, lambda why: MemoryStats(unavailable_reason=why))
        requests, itl_values, intervals = _requests_from_outputs(self.outputs, self.perf_to_unix_s,
                                                                 config.max_output_tokens)
        _label_repeats(requests, self.prompts)
        phase_energy = after.read("phase_energy", lambda: _phase_energy(session, self.outputs, intervals, window),
                                  lambda why: PhaseEnergy(unavailable_reason=why))
        flops = after.read("flops", lambda: _estimate_flops(adapter, requests),
                           lambda why: FlopsEstimate(unavailable_reason=why))
        engine_effective = after.read("effective", adapter.effective_parameters, lambda _why: None)
        effective = None if engine_effective is None else {
            **engine_effective, "prefix_caching": config.prefix_caching,
            "latency_reference": LATENCY_REFERENCE_DEFINITION["offline"]}
        metrics = compute_metrics(requests, itl_values, window.window_s, window.energy, flops, memory)
        cache, cache_warnings = prompt_cache(requests, config.prefix_caching, f"{config.engine} engine",
                                             f"{config.engine} reports no cached prompt tokens")
        timing = after.read("token_timing", adapter.token_timing, lambda _why: None)
        return WorkloadOutcome(requests=requests, metrics=metrics, prompt_cache=cache, phase_energy=phase_energy,
                               effective=effective, warnings=cache_warnings, token_timing=timing)

    def close(self, after) -> None:
        after.call("adapter.close", self.adapter.close)


def _requests_from_outputs(outputs: list[BatchOutput], to_unix: float, max_output_tokens: int):
    """Per-request records, all inter-token gaps, and prefill/decode intervals in unix time.

    Adapters time with perf_counter; `to_unix` is the offset that converts it to unix seconds
    (the clock of the power sampler), for integrating power over prefill and decode. Latencies come
    from domain/latency.py, from each request's submission (its own start where the engine reports
    one, else its batch's start: a static batch hands all its requests to the engine at once).
    """
    requests: list[RequestRecord] = []
    itl_values: list[float] = []
    intervals: list[tuple[float, float, str]] = []
    index = 0
    for b, out in enumerate(outputs):
        for req in out.requests:
            sent_s = req.start_s if req.start_s is not None else out.start_s
            first_s, last_s = req.first_and_last_s()
            lat = request_latency(sent_s, req.output_tokens, req.token_times_s, first_s, last_s)
            itl_values.extend(lat.itl_s)
            # Prefill from the engine's first scheduling where it reports one (a request queued behind a
            # full batch is not in prefill while it waits), else from submission.
            prefill_s = req.scheduled_s if req.scheduled_s is not None else sent_s
            if first_s is not None and last_s is not None:
                intervals += [(prefill_s + to_unix, first_s + to_unix, "prefill"),
                              (first_s + to_unix, last_s + to_unix, "decode")]
            if req.scheduled_s is not None:
                intervals.append((sent_s + to_unix, req.scheduled_s + to_unix, "queue"))
            requests.append(RequestRecord(index=index, batch_index=b, input_tokens=req.input_tokens,
                                          output_tokens=req.output_tokens, ttft_s=lat.ttft_s,
                                          e2e_latency_s=lat.e2e_latency_s, tpot_s=lat.tpot_s,
                                          finished_by=req.finished_by,
                                          timing_unavailable_reason=req.timing_unavailable_reason,
                                          cached_prompt_tokens=req.cached_prompt_tokens,
                                          exceeds_max_output_tokens=req.output_tokens > max_output_tokens,
                                          queue_s=max(0.0, req.scheduled_s - sent_s)
                                          if req.scheduled_s is not None else None))
            index += 1
    return requests, itl_values, intervals


def _phase_energy(session, outputs: list[BatchOutput], intervals, window) -> PhaseEnergy:
    """The prefill/decode split, or null with the reason where an engine that queues requests did not
    say when it scheduled one (its prefill would start at submission and swallow its wait)."""
    requests = [req for out in outputs for req in out.requests]
    missing = next((r.schedule_unavailable_reason for r in requests if r.schedule_unavailable_reason), None)
    if missing is not None:
        return PhaseEnergy(unavailable_reason=f"prefill start unknown: {missing}; a queued request would count "
                                              "its wait as prefill")
    phase = session.phase_energy(intervals, window)
    if phase.method != "unavailable":
        scheduled = any(r.scheduled_s is not None for r in requests)
        phase.prefill_start = "first_scheduled" if scheduled else "submission"
    return phase


def _label_repeats(requests: list[RequestRecord], prompts: list[str]) -> None:
    """`prompt_repeat`: how often a request's prompt text came earlier in the measured set (a dataset
    with duplicates): a prefix cache could serve it."""
    seen: dict[str, int] = {}
    for record, prompt in zip(requests, prompts):
        record.prompt_repeat = seen.get(prompt, 0)
        seen[prompt] = record.prompt_repeat + 1


def _estimate_flops(adapter, requests: list[RequestRecord]):
    try:
        from llenergymeasure.domain.estimates import estimate_flops
    except ImportError:
        return None
    model_config = adapter.model_config_dict()
    if not model_config:
        return None
    return estimate_flops(model_config, [r.input_tokens for r in requests], [r.output_tokens for r in requests])
