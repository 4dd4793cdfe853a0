"""One harness run: baseline, load, warm up, measure, write.

Order matters for the measurement (docs/methodology.md): idle baseline before the model loads;
warm-up on prompts outside the measured set until latency settles; a window synchronised at both
edges with nothing but the workload inside it; the result written atomically, or error.json when
anything fails.
"""
from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from llenergymeasure.domain import (ERROR_FILE, HARNESS_EXIT_STORAGE, HARNESS_LOG_FILE, RESULT_FILE, RUN_SPEC_FILE,
                                    ExperimentResult, FlopsEstimate, HarnessError, MemoryStats, PhaseEnergy,
                                    RequestRecord, RunSpec, compute_metrics, prompt_cache)
from llenergymeasure.domain.io import write_json_atomic
from llenergymeasure.domain.latency import LATENCY_REFERENCE, LATENCY_REFERENCE_DEFINITION, request_latency
from llenergymeasure.domain.progress import encode_event

from .after_window import AfterWindow, attach_window_records
from .engines.base import BatchOutput, create_adapter
from .host_info import base_environment
from .startup import harness_start, import_engine
from .lifecycle import ignore_further_signals, install_signal_handlers, stop_with_parent, storage_failure

log = logging.getLogger("llem_harness")


def emit(event: str, **fields) -> None:
    """One progress event per stdout line (the host's progress display and silence detector)."""
    sys.stdout.write(encode_event(event, **fields) + "\n")
    sys.stdout.flush()


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class Phase:
    """Tracks the current phase so error.json can say where the run failed."""

    name = "starting"

    @classmethod
    def enter(cls, name: str, **fields) -> None:
        cls.name = name
        log.info("phase %s %s", name, fields or "")
        emit("phase", phase=name, **fields)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m llem_harness RUN_DIR", file=sys.stderr)
        return 2
    run_dir = Path(argv[0])
    install_signal_handlers()  # before anything slow: a stop must always reach the except below
    stop_with_parent()
    try:
        logging.basicConfig(filename=str(run_dir / HARNESS_LOG_FILE), level=logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        spec = RunSpec.model_validate_json((run_dir / RUN_SPEC_FILE).read_text())
        result = run(spec, run_dir)
        Phase.enter("writing")
        write_json_atomic(run_dir / RESULT_FILE, result)
        emit("done", ok=True)
        return 0
    except BaseException as exc:  # noqa: BLE001 - every failure must leave error.json behind
        ignore_further_signals()  # a second signal must not cut the writing of error.json short
        log.exception("run failed in phase %s", Phase.name)
        storage = storage_failure(exc)
        kind = "StorageError" if storage is not None else type(exc).__name__
        message = (f"out of storage: {storage.strerror or storage} ({storage.filename or run_dir})"
                   if storage is not None else str(exc) or type(exc).__name__)
        error = HarnessError(type=kind, message=message, traceback=traceback.format_exc(), phase=Phase.name)
        try:
            write_json_atomic(run_dir / ERROR_FILE, error)
        except OSError:
            pass  # disk full: the exit status below still says StorageError
        emit("done", ok=False, error_type=error.type, message=error.message)
        if storage is not None:
            return HARNESS_EXIT_STORAGE
        return 130 if isinstance(exc, KeyboardInterrupt) else 1


def run(spec: RunSpec, run_dir: Path) -> ExperimentResult:
    from .measurement import MeasurementSession
    from .datasets import load_prompts, warmup_prompts

    if spec.config.mode == "serving":  # the engine's own server under HTTP load (serving/run.py)
        from .serving.run import run_serving

        return run_serving(spec, run_dir, Phase, emit, now_iso)
    wall_start = time.monotonic()
    started_at = now_iso()
    config = spec.config
    Phase.enter("starting", run_id=spec.run_id)
    # The Docker runner sets LLEM_GPUS_ISOLATED=1 when the container sees exactly its GPUs
    # (renumbered from 0): host indices in spec.gpu_ids would then point at the wrong devices.
    gpu_ids = None if os.environ.get("LLEM_GPUS_ISOLATED") == "1" else spec.gpu_ids
    session = MeasurementSession(config.measurement, gpu_ids, spec.baseline, run_dir, emit)
    adapter = create_adapter(config)
    after = AfterWindow(emit)
    try:
        Phase.enter("environment")
        environment = base_environment()
        environment.gpus, environment.foreign_processes = session.gpu_environment()
        emit("environment", summary=session.summary())
        Phase.enter("baseline")
        baseline = session.baseline()
        Phase.enter("importing", engine=config.engine)
        engine_import_s = import_engine(config.engine, config.model)
        Phase.enter("loading", model=config.model)
        load_start = time.monotonic()
        adapter.load()
        model_load_s = time.monotonic() - load_start
        for key, value in after.read("versions", adapter.versions, lambda _reason: {}).items():
            setattr(environment, key, value)
        Phase.enter("loaded_idle")
        loaded_idle = session.after_load()
        if environment.cuda_version is None:  # no CUDA torch build: report the driver's CUDA version
            environment.cuda_version = next((g.cuda_driver_version for g in environment.gpus
                                             if g.cuda_driver_version), None)
        prompts = load_prompts(config, adapter.fit_to_tokens)
        batches = [prompts[i:i + config.batch_size] for i in range(0, len(prompts), config.batch_size)]
        warm_batch = warmup_prompts(config, adapter.fit_to_tokens, len(batches[0]), prompts)

        Phase.enter("warmup")

        def warmup_batch() -> float:
            # Always the same full batch, outside the measured set: identical work each time, so the
            # latency CV measures settling, and no measured prompt is in any prefix cache.
            out = adapter.generate_batch(warm_batch)
            return out.end_s - out.start_s

        warmup = session.warmup(warmup_batch)

        Phase.enter("measuring", n_batches=len(batches), n_prompts=len(prompts))
        adapter.reset_peak_memory()
        outputs: list[BatchOutput] = []
        session.start_window(adapter.synchronize)
        perf_origin_s, unix_origin_s = time.perf_counter(), time.time()  # maps adapter clocks to unix time
        for i, batch in enumerate(batches):
            outputs.append(adapter.generate_batch(batch))
            emit("batch", phase="measuring", done=i + 1, total=len(batches))
        window = session.stop_window(adapter.synchronize)
        window.thermal.cooldown_wait_s = spec.cooldown_wait_s
        memory = after.read("memory", adapter.memory, lambda why: MemoryStats(unavailable_reason=why))
        requests, itl_values, intervals = _requests_from_outputs(outputs, unix_origin_s - perf_origin_s,
                                                                 config.max_output_tokens)
        _label_repeats(requests, prompts)
        phase_energy = after.read("phase_energy",
                                  lambda: session.phase_energy(intervals, window.energy.gpu_energy_raw_j),
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
        warnings = list(window.warnings) + list(session.warnings()) + cache_warnings
        result = ExperimentResult(
            run_id=spec.run_id, study_id=spec.study_id, experiment_index=spec.experiment_index, cycle=spec.cycle,
            config_hash=spec.config_hash, config=config, started_at=started_at, finished_at=now_iso(),
            effective=effective, n_requests=len(requests), latency_reference=LATENCY_REFERENCE, prompt_cache=cache,
            input_tokens_total=sum(r.input_tokens for r in requests),
            output_tokens_total=sum(r.output_tokens for r in requests),
            window_s=window.window_s, model_load_s=model_load_s, engine_import_s=engine_import_s,
            harness_start=harness_start(), harness_wall_s=time.monotonic() - wall_start,
            requests=requests, metrics=metrics, energy=window.energy, phase_energy=phase_energy,
            baseline=baseline, warmup=warmup, sampler=window.sampler, throttle=window.throttle,
            thermal=window.thermal, cpu_energy=window.cpu_energy, environment=environment,
            timeseries_file=window.timeseries_file, measurement_warnings=_dedupe(warnings),
            assigned_gpu_ids=spec.gpu_ids)
        return attach_window_records(result, loaded_idle, window.contention, after)
    finally:
        after.call("adapter.close", adapter.close)
        after.call("session.close", session.close)


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
            if first_s is not None and last_s is not None:
                intervals += [(sent_s + to_unix, first_s + to_unix, "prefill"),
                              (first_s + to_unix, last_s + to_unix, "decode")]
            requests.append(RequestRecord(index=index, batch_index=b, input_tokens=req.input_tokens,
                                          output_tokens=req.output_tokens, ttft_s=lat.ttft_s,
                                          e2e_latency_s=lat.e2e_latency_s, tpot_s=lat.tpot_s,
                                          finished_by=req.finished_by,
                                          timing_unavailable_reason=req.timing_unavailable_reason,
                                          cached_prompt_tokens=req.cached_prompt_tokens,
                                          exceeds_max_output_tokens=req.output_tokens > max_output_tokens))
            index += 1
    return requests, itl_values, intervals


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


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
