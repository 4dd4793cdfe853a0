"""Collecting a Slurm study into its manifest: `llem status`, `--wait`, and before `--resume`.

One process at a time (the study lock) reads what the array tasks wrote in their run
directories and what Slurm says of the tasks, and updates the manifest — the only writer.
A run's outcome comes from its files first (`exit.json` + result/error, judged by the same
`collect_outcome` as on one host); Slurm's state is used only for tasks that left the queue
without recording one (cancelled before starting, node failure, killed past the time limit).
When no run is left in Slurm the study is finalised exactly like a local one: status, and
study_result.json, results.csv/.parquet, summary.csv.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ..domain import StudyManifest
from ..errors import ConfigError, StudyError
from ..study.manifest import ManifestWriter, manifest_path, utc_now
from ..study.observer import StudyObserver
from .slurm import (LIVE, SLURM_DIR, SLURM_INTERRUPTED, SLURM_RUNNING, accounting_states, job_name, local_plan,
                    queue_states, remove_secret_file)
from .slurm_task import EXIT_FILE, TASK_FILE

LOCK_WAIT_S = 30.0


@dataclass
class CollectReport:
    manifest: StudyManifest
    finished: bool          # nothing of this study is left in Slurm
    result: object = None   # the StudyResult once finished (written to disk as on one host)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _finished_run(study_dir: Path, entry, record: dict) -> tuple[dict, object]:
    from ..runners.base import ExitInfo, collect_outcome

    run_dir = study_dir / "runs" / entry.run_id
    exit_info = ExitInfo(**record["exit"])
    changes = dict(started_at=record.get("started_at"), finished_at=record.get("finished_at"),
                   duration_s=record.get("duration_s"))
    if record.get("interrupted"):
        return {**changes, "status": "interrupted", "error_type": "Interrupted",
                "error_message": exit_info.detail}, None
    outcome = collect_outcome(run_dir, exit_info)
    changes.update(status=outcome.status, error_type=outcome.error_type, error_message=outcome.error_message)
    if outcome.result is not None:
        changes["result_file"] = f"runs/{entry.run_id}/result.json"
    return changes, outcome


def _lost_run(study_dir: Path, entry, state: str | None) -> dict:
    """A task Slurm no longer lists and that recorded no outcome: say what Slurm said, if anything."""
    started = _read_json(study_dir / "runs" / entry.run_id / TASK_FILE)
    job, _, task = (entry.slurm_job_id or "?_?").partition("_")
    log = f"{SLURM_DIR}/logs/{job}_{task}.out"
    said = f"Slurm state {state}" if state else "Slurm's accounting (sacct) is not available to say why"
    changes = dict(finished_at=utc_now(), started_at=(started or {}).get("started_at"))
    if state == "TIMEOUT":
        return {**changes, "status": "failed", "error_type": "timeout",
                "error_message": f"the Slurm time limit was reached ({said}); raise --slurm-time. Log: {log}"}
    if state == "OUT_OF_MEMORY":
        return {**changes, "status": "failed", "error_type": "OOMKilled",
                "error_message": f"Slurm killed the task for exceeding its memory ({said}). Log: {log}"}
    if state in SLURM_INTERRUPTED or (state is None and started is None):
        how = said if state else f"it never started; {said} (scancel or a node failure)"
        return {**changes, "status": "interrupted", "error_type": "Interrupted",
                "error_message": f"the Slurm task ended without running to completion ({how}). Log: {log}"}
    return {**changes, "status": "failed", "error_type": "SlurmTaskFailed",
            "error_message": f"the Slurm task ended without recording an outcome ({said}). Log: {log}"}


def collect_into(writer: ManifestWriter, study_dir: Path, observer: StudyObserver | None = None) -> int:
    """Update the live entries of a Slurm study from run directories and Slurm; returns how many changed."""
    observer = observer or StudyObserver()
    manifest = writer.manifest
    live = [i for i, e in enumerate(manifest.entries) if e.status in LIVE]
    if not live:
        return 0
    job_ids = [str(job["job_id"]) for job in manifest.slurm_jobs]
    queued = queue_states(job_name(manifest.study_id), job_ids)  # asked before the files are read: no race
    accounted: dict[str, str] | None = None
    changes: dict[int, dict] = {}
    finished = []
    for index in live:
        entry = manifest.entries[index]
        run_dir = study_dir / "runs" / entry.run_id
        record = _read_json(run_dir / EXIT_FILE)
        if record is not None:
            changes[index], outcome = _finished_run(study_dir, entry, record)
            finished.append((index, outcome))
        elif entry.slurm_job_id in queued:
            if queued[entry.slurm_job_id] in SLURM_RUNNING and entry.status != "running":
                started = _read_json(run_dir / TASK_FILE) or {}
                changes[index] = dict(status="running", started_at=started.get("started_at") or utc_now())
        else:
            if accounted is None:
                accounted = accounting_states(job_ids)
            changes[index] = _lost_run(study_dir, entry, accounted.get(entry.slurm_job_id or ""))
            finished.append((index, None))
    writer.update_many(changes)
    for index, outcome in finished:
        observer.run_finished(manifest.entries[index], outcome)
    return len(changes)


def _final_status(c) -> str:
    """From the writer's counters (kept from the entries), not the counters the file was read with."""
    if c.interrupted or c.pending:
        return "interrupted"  # cancelled runs remain: `llem run --resume` resubmits them
    return "failed" if c.failed and not c.completed else "completed"


def _elapsed_s(start_iso: str, entries) -> float:
    ends = [e.finished_at for e in entries if e.finished_at]
    if not ends:
        return 0.0
    return max(0.0, (datetime.fromisoformat(max(ends)) - datetime.fromisoformat(start_iso)).total_seconds())


def finalise(writer: ManifestWriter, study_dir: Path):
    """Status and study outputs, from the study snapshot and the completed runs' result.json."""
    import logging

    from ..runners.base import completed_outcomes
    from ..study.resume import read_study_snapshot
    from ..study.summary import build_study_result

    manifest = writer.manifest
    outcomes = completed_outcomes(study_dir, manifest, logging.getLogger(__name__).warning, writer)
    writer.set_status(_final_status(writer.counters()))
    study, _ = read_study_snapshot(study_dir)
    plan = local_plan({e.engine for e in manifest.entries if e.engine})
    return build_study_result(study, study_dir, manifest, outcomes, manifest.created_at,
                              _elapsed_s(manifest.created_at, manifest.entries), plan)


def collect_study(study_dir: Path, observer: StudyObserver | None = None, on_idle=None) -> CollectReport:
    """`llem status`: collect under the study lock, finalise when nothing is left in Slurm.

    `on_idle(writer, study_dir, observer)`: called when nothing is left in Slurm; True when it submitted
    more (the next wave of a search or of adaptive cycles: slurm_submit.submit_next_wave), so the study
    is not finished."""
    from ..study.locks import StudyLock
    from ..study.resume import read_manifest

    study_dir = Path(study_dir).resolve()
    lock = StudyLock(study_dir)
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            lock.acquire()
            break
        except StudyError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    try:
        manifest = read_manifest(study_dir)
        if manifest.executor != "slurm":
            return CollectReport(manifest, finished=manifest.status != "running")
        writer = ManifestWriter(manifest, manifest_path(study_dir))
        collect_into(writer, study_dir, observer)
        finished = not any(e.status in LIVE for e in manifest.entries)
        if finished and manifest.status == "running" and on_idle is not None:
            finished = not on_idle(writer, study_dir, observer)  # a search or adaptive cycles go on in waves
        if finished:
            remove_secret_file(study_dir)
        result = None
        if finished and manifest.status == "running":
            result = finalise(writer, study_dir)
        return CollectReport(manifest, finished, result)
    finally:
        lock.release()


def wait_for_study(study_dir: Path, observer: StudyObserver | None = None, poll_s: float = 10.0,
                   on_idle=None) -> CollectReport:
    """Collect every `poll_s` seconds until nothing of the study is left in Slurm.

    A failed `squeue` (slurmctld restarting) is retried; the third failure in a row is raised."""
    failures = 0
    while True:
        try:
            report = collect_study(study_dir, observer, on_idle)
            failures = 0
        except ConfigError as error:
            failures += 1
            if failures >= 3 or "squeue failed" not in str(error):
                raise
            (observer or StudyObserver()).notice(f"{error}; retrying in {poll_s:g} s")
            report = None
        if report is not None and report.finished:
            return report
        time.sleep(poll_s)
