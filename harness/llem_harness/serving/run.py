"""One serving run: baseline, start the server, warm up, drive the load, measure the window, write.

Same order and the same MeasurementSession as the offline pipeline; the differences are that the
model runs in the engine's own server process (started here, stopped in `finally`), and that the
window edges are set live by the load generator's steady-state tracker (window.py), so the
energy counter is read at the moment the load reaches its target and when the drain starts. Only
the counters are read inside the load's event loop; the rest of the window is built after the
load (window.LiveEdges). Device synchronisation at the edges is a no-op: work is in another process
and the window is defined by the load, not by a batch boundary.

Cache-clean: prompts are counted with the server's tokenize endpoint (or the model's tokenizer),
warm-up uses prompts disjoint from the measured ones, and the server's prefix caching follows the
study's `prefix_caching` (servers.py); cached prompt tokens the server reports are recorded.
"""
from __future__ import annotations

import asyncio
import importlib.metadata
import os
import time
from pathlib import Path

from llenergymeasure.domain import ExperimentResult, PhaseEnergy, RunSpec, ServingResult, prompt_cache
from llenergymeasure.domain.latency import LATENCY_REFERENCE, LATENCY_REFERENCE_DEFINITION

from ..after_window import AfterWindow, attach_window_records
from ..host_info import base_environment
from ..startup import harness_start
from .arrivals import send_offsets_s
from .loadgen import LoadPlan, RequestTrace, count_prompt_tokens, drive
from .process import SERVER_LOG_FILE, ServerFailed, ServerProcess
from .report import (ATTRIBUTION, REQUESTS_FILE, goodput, output_tokens, serving_metrics, to_records,
                     window_figures, write_requests_file)
from .servers import SERVED_MODEL_NAME, free_port, server_spec
from .window import LiveEdges, WindowTracker

WINDOW_DEFINITION = {
    "concurrency": "from the first refill (the send that brings the in-flight count back to the concurrency "
                   "after the first completion, so the first wave of cold prefills is outside) to the first drop "
                   "below the concurrency once no request is left to send",
    "request_rate": "from the send of request number ramp_requests to the last send (arrivals end)",
}


def run_serving(spec: RunSpec, run_dir: Path, phase, emit, now_iso) -> ExperimentResult:
    from ..datasets import load_prompts, warmup_prompts
    from ..measurement import MeasurementSession

    wall_start, started_at = time.monotonic(), now_iso()
    config, cfg = spec.config, spec.config.serving
    phase.enter("starting", run_id=spec.run_id)
    gpu_ids = None if os.environ.get("LLEM_GPUS_ISOLATED") == "1" else spec.gpu_ids
    session = MeasurementSession(config.measurement, gpu_ids, spec.baseline, run_dir, emit)
    port = cfg.port or free_port()
    server_def = server_spec(config, port, files_dir=run_dir)
    for path, text in server_def.files.items():
        Path(path).write_text(text)
    base_url = f"http://127.0.0.1:{port}"
    server = ServerProcess(server_def.argv, base_url, server_def.ready_path, run_dir)
    try:
        phase.enter("environment")
        environment = base_environment()
        environment.gpus, environment.foreign_processes = session.gpu_environment()
        environment.engine_version = _package_version(server_def.package)
        emit("environment", summary=session.summary())
        phase.enter("baseline")
        baseline = session.baseline()
        phase.enter("server_starting", command=" ".join(server_def.argv[:4]))
        server.start()
        ready_s = server.wait_ready(cfg.ready_timeout_s)
        phase.enter("loaded_idle")
        loaded_idle = session.after_load()

        counter = _token_counter(config, base_url, server_def)

        def fit(text: str, n_tokens: int) -> str:  # cut by the server's own token count
            words = text.split()
            count = counter(text) or len(words)
            return " ".join(words[:max(1, int(len(words) * n_tokens / count))])

        prompts = load_prompts(config, fit)
        prompt_tokens = [counter(p) for p in prompts]
        bodies = [_body(config, p, server_def) for p in prompts]
        warm_bodies = [_body(config, p, server_def) for p in warmup_prompts(config, fit, 1, prompts)]

        phase.enter("warmup")

        def warmup_request() -> float:  # a prompt outside the measured set: nothing measured is cached
            trace = RequestTrace(index=-1, prompt_index=0, send_s=time.time())
            asyncio.run(_single(base_url, warm_bodies[0], trace))
            if not trace.ok:
                raise ServerFailed(f"warm-up request failed: {trace.error}; see {SERVER_LOG_FILE}")
            return trace.done_s - trace.send_s

        warmup = session.warmup(warmup_request)

        phase.enter("measuring", n_requests=cfg.n_requests)
        load = "concurrency" if cfg.concurrency is not None else "request_rate"
        plan = LoadPlan(n_requests=cfg.n_requests, concurrency=cfg.concurrency, duration_cap_s=cfg.duration_s,
                        send_offsets_s=None if cfg.request_rate is None else
                        send_offsets_s(cfg.n_requests, cfg.request_rate, config.random_seed, cfg.burstiness))
        tracker = WindowTracker(cfg.concurrency, cfg.ramp() if cfg.request_rate else 1, n_total=cfg.n_requests)
        live = LiveEdges(session, emit)

        traces = asyncio.run(drive(base_url, bodies, plan, tracker, live.on_edge))
        extra_warnings: list[str] = []
        if tracker.start_s is None:
            raise RuntimeError(f"the steady-state window never opened ({WINDOW_DEFINITION[load]}); "
                               f"{sum(t.ok for t in traces)}/{len(traces)} requests succeeded")
        if tracker.end_s is None:  # e.g. every late request failed at once: close at the end of the load
            tracker.end_s = max(t.done_s for t in traces if t.done_s is not None)
            live.on_edge("end")
            extra_warnings.append("steady-state window closed at the end of the load, not at the drain")
        window = live.finish()
        window.thermal.cooldown_wait_s = spec.cooldown_wait_s
        start_s, end_s = live.start_wall_s, live.end_wall_s  # the instants the counters were read
        errors = [t for t in traces if not t.ok]
        if len(errors) == len(traces):
            raise ServerFailed(f"all {len(traces)} requests failed, first: {errors[0].error}; "
                               f"server alive: {server.alive()}; log tail:\n{server.log_tail()}")
        if not server.alive():
            extra_warnings.append("the server exited during the load; see " + SERVER_LOG_FILE)
        records, itl = to_records(traces, prompt_tokens, config.max_output_tokens)
        sw = window_figures(traces, start_s, end_s, WINDOW_DEFINITION[load])
        metrics = serving_metrics(records, itl, sw, window.energy)
        per_token = metrics.energy_per_output_token_j
        write_requests_file(run_dir / REQUESTS_FILE, traces, start_s, end_s, per_token)
        good_rate, good_share, good_reason = goodput(records, cfg, sw.run_s)
        usage_seen = any(t.usage and t.usage.get("completion_tokens") is not None for t in traces)
        cache, cache_warnings = prompt_cache(records, config.prefix_caching, "server usage.prompt_tokens_details."
                                             "cached_tokens", f"the {config.engine} server reports no cached tokens")
        over = sum(r.exceeds_max_output_tokens for r in records)
        if over:
            extra_warnings.append(f"{over} request(s) returned more than max_output_tokens "
                                  f"({config.max_output_tokens}) tokens: flagged per request, counted as returned")
        n_out_total = sum(output_tokens(t) for t in traces if t.ok)
        serving = ServingResult(
            load=load, concurrency=cfg.concurrency, request_rate_offered_per_s=cfg.request_rate,
            server_command=server_def.argv, server_command_verified=server_def.verified,
            server_log_file=SERVER_LOG_FILE, server_ready_s=ready_s, requests_file=REQUESTS_FILE,
            n_sent=len(traces), n_ok=len(records), n_errors=len(errors),
            error_examples=list(dict.fromkeys(t.error for t in errors))[:5],
            achieved_request_rate_per_s=len(records) / sw.run_s if sw.run_s > 0 else None,
            output_tokens_per_s_run=n_out_total / sw.run_s if sw.run_s > 0 else None,
            requests_over_max_output_tokens=over,
            output_tokens_source="server usage.completion_tokens" if usage_seen
            else "streamed chunks with text (the server sends no usage while streaming)",
            window=sw, energy_per_output_token_window_j=per_token,
            energy_per_request_window_j=metrics.energy_per_request_j, energy_attribution=ATTRIBUTION,
            slo=cfg.slo, goodput_requests_per_s=good_rate, goodput_share=good_share,
            goodput_unavailable_reason=good_reason)
        warnings = list(window.warnings) + list(session.warnings()) + extra_warnings + cache_warnings
        if not server_def.verified:
            warnings.append(f"server command for engine '{config.engine}' is unverified (written from its docs)")
        result = ExperimentResult(
            run_id=spec.run_id, study_id=spec.study_id, experiment_index=spec.experiment_index, cycle=spec.cycle,
            config_hash=spec.config_hash, config=config, started_at=started_at, finished_at=now_iso(),
            effective={"server_command": server_def.argv, "request_body": _body(config, "<prompt>", server_def),
                       "prefix_caching": config.prefix_caching, **server_def.prefix_caching,
                       "latency_reference": LATENCY_REFERENCE_DEFINITION["serving"],
                       "window_edge_stall_ms": [round(x * 1000, 3) for x in live.stalls_s]},
            n_requests=len(records), input_tokens_total=sum(r.input_tokens for r in records),
            output_tokens_total=n_out_total, latency_reference=LATENCY_REFERENCE, prompt_cache=cache,
            window_s=window.window_s, model_load_s=ready_s, harness_wall_s=time.monotonic() - wall_start,
            harness_start=harness_start(),
            requests=records, metrics=metrics, energy=window.energy,
            phase_energy=PhaseEnergy(unavailable_reason="serving: prefill and decode of concurrent requests overlap"),
            baseline=baseline, warmup=warmup, sampler=window.sampler, throttle=window.throttle,
            thermal=window.thermal, cpu_energy=window.cpu_energy, environment=environment,
            timeseries_file=window.timeseries_file, measurement_warnings=list(dict.fromkeys(warnings)),
            serving=serving, assigned_gpu_ids=spec.gpu_ids)
        return attach_window_records(result, loaded_idle, window.contention, AfterWindow(emit))
    finally:  # a failing cleanup is reported, never allowed to replace the measured result
        cleanup = AfterWindow(emit)
        cleanup.call("server.stop", server.stop)
        cleanup.call("session.close", session.close)


async def _single(base_url: str, body: dict, trace: RequestTrace) -> None:
    import httpx

    from .loadgen import _one_request
    async with httpx.AsyncClient(base_url=base_url, timeout=600.0) as client:
        await _one_request(client, body, trace)


def _token_counter(config, base_url: str, server_def):
    """Prompt -> token count: the server's tokenize endpoint, else the model's own tokenizer, else None."""
    if server_def.tokenize is not None:
        return lambda prompt: count_prompt_tokens(base_url, server_def.tokenize, prompt)
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(config.model)
    except Exception:  # noqa: BLE001 - no tokenizer here: counts come from the server's usage
        return lambda prompt: None
    return lambda prompt: len(tokenizer(prompt)["input_ids"])


def _body(config, prompt: str, server_def) -> dict:
    greedy = config.decoding.strategy == "greedy"
    body = {"model": SERVED_MODEL_NAME, "prompt": prompt, "max_tokens": config.max_output_tokens,
            "stream": config.serving.streaming, "temperature": 0.0 if greedy else config.decoding.temperature,
            "top_p": 1.0 if greedy else config.decoding.top_p, "seed": config.random_seed}
    if config.serving.streaming and server_def.usage_in_stream:
        body["stream_options"] = {"include_usage": True}
    body.update(server_def.extra_body)
    return body


def _package_version(name: str | None) -> str | None:
    try:
        return importlib.metadata.version(name) if name else None
    except importlib.metadata.PackageNotFoundError:
        return None
