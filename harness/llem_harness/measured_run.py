"""One measured run, whatever the workload: the order of the measurement, written once.

    set up the measurement -> environment -> pre-load idle -> import (offline) -> load -> loaded idle -> prepare prompts
    -> warm-up -> window open, workload, window closed -> result

Order matters for the measurement (docs/methodology.md): idle power before the model loads;
warm-up on prompts outside the measured set until latency settles; a window with nothing but the
workload inside it; reads after the window never lose the measured run (after_window.py). The
workload (workload.py: an offline batch loop, or a serving load) supplies only what differs.
Stage names and their order are what the host's progress display and error.json rely on.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from llenergymeasure.domain import ExperimentResult, RunSpec

from .after_window import AfterWindow
from .host_info import base_environment
from .measurement import MeasurementSession
from .progress import Stage, blocked_note, emit, now_iso
from .result_assembly import RunFacts, assemble_result
from .workload import create_workload


def measured_run(spec: RunSpec, run_dir: Path) -> ExperimentResult:
    wall_start_s, started_at = time.monotonic(), now_iso()
    Stage.enter("starting", run_id=spec.run_id)
    # The Docker runner sets LLEM_GPUS_ISOLATED=1 when the container sees exactly its GPUs
    # (renumbered from 0): host indices in spec.gpu_ids would then point at the wrong devices.
    gpu_ids = None if os.environ.get("LLEM_GPUS_ISOLATED") == "1" else spec.gpu_ids
    session = MeasurementSession(spec.config.measurement, gpu_ids, spec.baseline, run_dir, emit)
    workload = create_workload(spec, run_dir, emit)
    after = AfterWindow(emit)
    try:
        Stage.enter("environment")
        environment = base_environment()
        environment.gpus, environment.foreign_processes = session.gpu_environment()
        emit("environment", summary=session.summary())

        Stage.enter("pre_load_idle")
        baseline = session.measure_pre_load_idle()

        engine_import_s = None
        if spec.config.mode == "offline":  # serving: the server process imports its engine while it starts
            Stage.enter("importing", engine=spec.config.engine)
            engine_import_s = workload.import_engine()
        Stage.enter(workload.load_stage, **workload.load_fields)
        model_load_s = workload.load()
        workload.record_versions(environment, after)

        Stage.enter("loaded_idle")
        loaded_idle = session.measure_loaded_idle()
        workload.prepare()

        Stage.enter("warmup")
        warmup = session.warmup(workload.warmup_step)

        Stage.enter("measuring", **workload.measuring_fields())
        window = workload.run_measured(session)
        window.thermal.cooldown_wait_s = spec.cooldown_wait_s
        outcome = workload.outcome(session, window, after)

        facts = RunFacts(started_at=started_at, wall_start_s=wall_start_s, environment=environment,
                         baseline=baseline, loaded_idle=loaded_idle, warmup=warmup, model_load_s=model_load_s,
                         engine_import_s=engine_import_s)
        result = assemble_result(spec, facts, window, outcome, session.warnings(), after)
        note = blocked_note()  # llem stopped reading: said, not hidden (the window did not wait for it)
        if note is not None:
            result.measurement_warnings.append(note)
        return result
    finally:  # a failing cleanup is reported, never allowed to replace the measured result
        workload.close(after)
        after.call("session.close", session.close)
