"""One planned run on this host: the runner's process from `running` to its outcome.

Shared by the sequential and the parallel executor, so a run means the same under both: its
directory and experiment.json come from the plan (`StudyRun.prepare_run`), the manifest entry
goes pending -> running -> outcome through the one writer, a fresh idle baseline is remembered
for the next run on the same GPUs, and the run's own GPUs cool down before that next run.
"""
from __future__ import annotations

import os
import socket
import time

from ..runners.base import RunOutcome, RunRequest, collect_outcome
from ..runners.signals import stop_signal
from ..study.manifest import utc_now
from ..study.study_run import Batch, StudyRun, default_timeout_s


def run_one(batch: Batch, writer, index: int, position: int, gpu_ids: list[str] | None = None) -> RunOutcome | None:
    """Run manifest entry `index` (its `position` of len(batch.todo) in this invocation).

    `writer` is the batch's writer, or a serialised view of it when several runs are in flight."""
    run = batch.run
    exp_index, cycle = batch.order[index]
    prepared = run.prepare_run(writer, index, run.expanded[exp_index], cycle, batch.sequence[index],
                               batch.study_id, batch.study_dir, batch.plan, gpu_ids)
    if prepared is None:
        return None
    run_dir, spec, runner = prepared
    run_id, config_hash = spec.run_id, spec.config_hash
    baseline_key = run.baseline_key(spec.gpu_ids, runner, batch.plan, spec.config.engine)
    entry = writer.update(index, status="running", run_id=run_id, runner=runner.name, started_at=utc_now())
    run.observer.run_started(position, len(batch.todo), entry)
    execution = run.study.execution
    timeout_s = execution.timeout_s or default_timeout_s(spec)
    labels = {"llem.study_id": batch.study_id, "llem.experiment_hash": config_hash, "llem.cycle": str(cycle),
              "llem.run_id": run_id, "llem.orchestrator_host": socket.gethostname(),
              "llem.orchestrator_pid": str(os.getpid())}
    request = RunRequest(run_dir=run_dir, spec=spec, timeout_s=timeout_s,
                         silence_timeout_s=execution.silence_timeout_s,
                         on_event=run.observer.run_event, labels=labels)
    started = time.monotonic()
    try:
        exit_info = runner.execute(request)
    except KeyboardInterrupt:
        writer.update(index, status="interrupted", finished_at=utc_now(),
                      duration_s=time.monotonic() - started, error_type="Interrupted",
                      error_message=f"interrupted by {stop_signal()}")
        raise
    outcome = collect_outcome(run_dir, exit_info)
    changes = dict(status=outcome.status, finished_at=utc_now(), duration_s=round(time.monotonic() - started, 3),
                   error_type=outcome.error_type, error_message=outcome.error_message)
    if outcome.result is not None:
        changes["result_file"] = str((run_dir / "result.json").relative_to(batch.study_dir))
        run.remember_baseline(baseline_key, outcome.result.baseline)
    entry = writer.update(index, **changes)
    run.observer.run_finished(entry, outcome)
    cool_down(run, outcome, spec.gpu_ids)
    return outcome


def cool_down(run: StudyRun, outcome: RunOutcome, gpu_ids: list[str] | None) -> None:
    """Wait for the run's own GPUs (all GPUs when none were assigned) to return near idle."""
    ex = run.study.execution
    if not ex.cooldown_to_idle or outcome.result is None or outcome.result.baseline is None:
        return
    baseline = outcome.result.baseline
    idle_c = baseline.idle_temperature_per_gpu_c or baseline.idle_temperature_c
    if not idle_c:
        run.observer.notice("cool-down skipped: no idle temperature was measured")
        return
    from ..study.cooldown import wait_for_cooldown

    waited_s, reached = wait_for_cooldown(gpu_ids, idle_c, ex.cooldown_delta_c, ex.cooldown_max_s)
    run.cooldown_waits[tuple(gpu_ids or ["all"])] = round(waited_s, 3)
    run.waited_s += waited_s
    state = {True: "reached", False: "cap reached", None: "temperatures unreadable"}[reached]
    run.observer.notice(f"cool-down: waited {waited_s:.1f} s for GPUs to return within "
                        f"{ex.cooldown_delta_c:g} °C of idle ({state})")
