"""The serving workload: the engine's own server under an HTTP load.

Runs inside the same run skeleton as the offline batches (measured_run.py); what differs is that
the model runs in the engine's own server process (started by `load`, stopped by `close`), and
that the window edges are set live by the load generator's steady-state tracker (window.py), so
the energy counter is read at the moment the load reaches its target and when the drain starts.
Only the counters are read inside the load's event loop; the rest of the window is built after the
load (window.LiveEdges). Device synchronisation at the edges is a no-op: work is in another process
and the window is defined by the load, not by a batch boundary.

Cache-clean: prompts are cut and counted with the server's tokenize endpoint (or the model's tokenizer),
warm-up uses prompts disjoint from the measured ones, and the server's prefix caching follows the
study's `prefix_caching` (servers.py); cached prompt tokens the server reports are recorded.
"""
from __future__ import annotations

import asyncio
import importlib.metadata
import time
from pathlib import Path

from llenergymeasure.domain import PhaseEnergy, RunSpec, prompt_cache, token_timing
from llenergymeasure.domain.latency import LATENCY_REFERENCE_DEFINITION

from ..datasets import load_prompts, warmup_prompts
from ..workload import Emit, WorkloadOutcome
from . import listener
from .arrivals import send_offsets_s
from .bunching import bunched_streams
from .loadgen import LoadPlan, RequestTrace, drive
from .process import SERVER_LOG_FILE, ServerFailed, ServerProcess
from .prompt_fit import prompt_fitter
from .report import (REQUESTS_FILE, check_window, itl_split, serving_metrics, serving_result, to_records,
                     window_figures, write_requests_file)
from .servers import SERVED_MODEL_NAME, free_port, server_spec
from .window import LiveEdges, WindowTracker

WINDOW_DEFINITION = {
    "concurrency": "from the first refill (the send that brings the in-flight count back to the concurrency "
                   "after the first completion, so the first wave of cold prefills is outside) to the first drop "
                   "below the concurrency once no request is left to send",
    "request_rate": "from the send of request number ramp_requests to the last send (arrivals end)",
}


class ServingLoad:
    load_stage = "server_starting"

    def __init__(self, spec: RunSpec, run_dir: Path, emit: Emit):
        self.config, self.cfg = spec.config, spec.config.serving
        self.run_dir, self.emit = run_dir, emit
        port = self.cfg.port or free_port()
        self.server_def = server_spec(self.config, port, files_dir=run_dir)
        for path, text in self.server_def.files.items():
            Path(path).write_text(text)
        self.base_url = f"http://127.0.0.1:{port}"
        self.server = ServerProcess(self.server_def.argv, self.base_url, self.server_def.ready_path, run_dir)
        self.load_fields = {"command": " ".join(self.server_def.argv[:4])}
        self.load_kind = "concurrency" if self.cfg.concurrency is not None else "request_rate"
        self.warnings: list[str] = []            # the workload's own, in the order they arise
        self.ready_s = 0.0                       # server start to ready (model_load_s in serving)
        self.prompt_tokens: list[int | None] = []
        self.prompts_sent: dict | None = None    # how prompts were cut and their token counts as sent
        self.bodies: list[dict] = []
        self.warm_bodies: list[dict] = []
        self.traces: list[RequestTrace] = []
        self.live: LiveEdges | None = None       # the window edges read inside the load

    def import_engine(self) -> float | None:
        return None  # the server process imports its engine, inside model_load_s

    def load(self) -> float:
        if self.cfg.port:  # a configured port someone already listens on: the answers would not be the server's
            taken = listener.port_in_use(self.cfg.port)
            if taken:
                raise ServerFailed(f"serving.port {self.cfg.port} is already in use ({taken}); free it, choose "
                                   "another port, or leave serving.port unset (llem then picks a free one)")
        self.server.start()
        self.ready_s = self.server.wait_ready(self.cfg.ready_timeout_s)
        return self.ready_s

    def record_versions(self, environment, after) -> None:
        environment.engine_version = package_version(self.server_def.package)

    def prepare(self) -> None:
        config, server_def = self.config, self.server_def
        fitter = prompt_fitter(config, self.base_url, server_def)  # cut to the token count (prompt_fit.py)
        prompts = load_prompts(config, fitter.fit)
        self.prompt_tokens = [fitter.count(p) for p in prompts]
        self.bodies = [request_body(config, p, server_def) for p in prompts]
        self.warm_bodies = [request_body(config, p, server_def)
                            for p in warmup_prompts(config, fitter.fit, 1, prompts)]
        counts = [n for n in self.prompt_tokens if n is not None]
        self.prompts_sent = {
            "cut_by": fitter.method if config.dataset.source == "synthetic" else "not cut (dataset prompts)",
            "target_tokens": config.dataset.input_tokens or config.max_input_tokens
            if config.dataset.source == "synthetic" else None,
            "tokens_min": min(counts) if counts else None, "tokens_max": max(counts) if counts else None,
            "tokens_mean": sum(counts) / len(counts) if counts else None,
            "counted_as": "the server reads them, special tokens included" if counts else
            "not counted before sending (the server's usage.prompt_tokens gives each request's count)"}

    def warmup_step(self) -> float:  # a prompt outside the measured set: nothing measured is cached
        trace = RequestTrace(index=-1, prompt_index=0, send_s=time.time())
        asyncio.run(single_request(self.base_url, self.warm_bodies[0], trace))
        if not trace.ok:
            raise ServerFailed(f"warm-up request failed: {trace.error}; see {SERVER_LOG_FILE}")
        return trace.done_s - trace.send_s

    def measuring_fields(self) -> dict:
        return {"n_requests": self.cfg.n_requests}

    def run_measured(self, session):
        cfg, config = self.cfg, self.config
        plan = LoadPlan(n_requests=cfg.n_requests, concurrency=cfg.concurrency, duration_cap_s=cfg.duration_s,
                        send_offsets_s=None if cfg.request_rate is None else
                        send_offsets_s(cfg.n_requests, cfg.request_rate, config.random_seed, cfg.burstiness))
        tracker = WindowTracker(cfg.concurrency, cfg.ramp() if cfg.request_rate else 1, n_total=cfg.n_requests)
        self.live = live = LiveEdges(session, self.emit)

        self.traces = traces = asyncio.run(drive(self.base_url, self.bodies, plan, tracker, live.on_edge))
        if tracker.start_s is None:
            raise RuntimeError(f"the steady-state window never opened ({WINDOW_DEFINITION[self.load_kind]}); "
                               f"{sum(t.ok for t in traces)}/{len(traces)} requests succeeded")
        if tracker.end_s is None:  # e.g. every late request failed at once: close at the end of the load
            tracker.end_s = max(t.done_s for t in traces if t.done_s is not None)
            live.on_edge("end")
            self.warnings.append("steady-state window closed at the end of the load, not at the drain")
        return live.finish()

    def outcome(self, session, window, after) -> WorkloadOutcome:
        config, cfg, server_def, traces = self.config, self.cfg, self.server_def, self.traces
        start_s, end_s = window.start_unix_s, window.end_unix_s  # the instants the counters were read
        self.refuse_unserved_load(start_s, end_s)
        # still the server llem started on the port (an impostor cannot share it while it listens)
        foreign = listener.foreign_listener(self.server.port, self.server.pid())
        if foreign:
            raise ServerFailed(foreign)
        records, _every_gap = to_records(traces, self.prompt_tokens, config.max_output_tokens)
        sw = check_window(window_figures(traces, start_s, end_s, WINDOW_DEFINITION[self.load_kind]), cfg,
                          config.measurement.sampling_period_ms / 1000.0)
        if sw.unmeasured_reason is not None:
            self.warnings.append(f"{sw.unmeasured_reason}: the window's throughput and energy figures are null")
        metrics = serving_metrics(records, itl_split(traces)[0], sw, window.energy)  # inter-token gaps only
        write_requests_file(self.run_dir / REQUESTS_FILE, traces, start_s, end_s, metrics.energy_per_output_token_j)
        cache, cache_warnings = prompt_cache(records, config.prefix_caching, "server usage.prompt_tokens_details."
                                             "cached_tokens", f"the {config.engine} server reports no cached tokens")
        serving = serving_result(self.load_kind, cfg, server_def, self.ready_s, traces, records, sw, metrics)
        n_bunched, bunched_warning = bunched_streams(traces) if cfg.streaming else (None, None)
        serving = serving.model_copy(update={"server_start": self.server.start_info, "bunched_responses": n_bunched})
        if bunched_warning:
            self.warnings.append(bunched_warning)
        if serving.requests_over_max_output_tokens:
            self.warnings.append(f"{serving.requests_over_max_output_tokens} request(s) returned more than "
                                 f"max_output_tokens ({config.max_output_tokens}) tokens: flagged per request, "
                                 "counted as returned")
        warnings = self.warnings + cache_warnings
        if not server_def.verified:
            warnings.append(f"server command for engine '{config.engine}' is unverified (written from its docs)")
        effective = {"server_command": server_def.argv, "request_body": request_body(config, "<prompt>", server_def),
                     "prefix_caching": config.prefix_caching, **server_def.prefix_caching,
                     "server_listener": {"port": self.server.port, "pid": self.server.pid(),
                                         "verified": listener.verification_available(),
                                         "check": listener.CHECK_DEFINITION},
                     "latency_reference": LATENCY_REFERENCE_DEFINITION["serving"],
                     "window_edge_stall_ms": [round(x * 1000, 3) for x in self.live.stalls_s],
                     "prompt_tokens_sent": self.prompts_sent}
        return WorkloadOutcome(
            requests=records, metrics=metrics, prompt_cache=cache, effective=effective, warnings=warnings,
            phase_energy=PhaseEnergy(unavailable_reason="serving: prefill and decode of concurrent requests overlap"),
            serving=serving,
            token_timing=token_timing("client_stream_arrival", note="the engine's server runs unmodified"))

    def refuse_unserved_load(self, start_s: float, end_s: float) -> None:
        """A load the server did not serve is not a measurement: the run fails (error.json) when the server
        exited during the load or more than `max_error_share` of the requests failed. The requests file
        is kept for the post-mortem."""
        traces, cfg = self.traces, self.cfg
        errors = [t for t in traces if not t.ok]
        alive = self.server.alive()
        if alive and len(errors) <= cfg.max_error_share * len(traces):
            return
        write_requests_file(self.run_dir / REQUESTS_FILE, traces, start_s, end_s, None)
        why = ("the server exited during the load" if not alive else
               f"{len(errors)} of {len(traces)} requests failed (more than serving.max_error_share "
               f"{cfg.max_error_share:g})")
        first = f", first error: {errors[0].error}" if errors else ""
        raise ServerFailed(f"{why}{first}; {len(errors)}/{len(traces)} requests failed; not published as a "
                           f"measurement (see {REQUESTS_FILE}, {SERVER_LOG_FILE}); log tail:\n"
                           f"{self.server.log_tail()}")

    def close(self, after) -> None:
        after.call("server.stop", self.server.stop)


async def single_request(base_url: str, body: dict, trace: RequestTrace) -> None:
    import httpx

    from .loadgen import _one_request
    async with httpx.AsyncClient(base_url=base_url, timeout=600.0) as client:
        await _one_request(client, body, trace)


def request_body(config, prompt: str, server_def) -> dict:
    greedy = config.decoding.strategy == "greedy"
    body = {"model": SERVED_MODEL_NAME, "prompt": prompt, "max_tokens": config.max_output_tokens,
            "stream": config.serving.streaming, "temperature": 0.0 if greedy else config.decoding.temperature,
            "top_p": 1.0 if greedy else config.decoding.top_p, "seed": config.random_seed}
    if config.serving.streaming and server_def.usage_in_stream:
        body["stream_options"] = {"include_usage": True}
    body.update(server_def.extra_body)
    return body


def package_version(name: str | None) -> str | None:
    try:
        return importlib.metadata.version(name) if name else None
    except importlib.metadata.PackageNotFoundError:
        return None
