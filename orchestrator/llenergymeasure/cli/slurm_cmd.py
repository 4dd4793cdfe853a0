"""`llem run --executor slurm` output, and `llem status STUDY_DIR` (any study; Slurm ones are collected)."""
from __future__ import annotations

from pathlib import Path

import click

from .safe_text import visible

MAX_LISTED = 20


def submit_and_report(run, resume_dir, skip_failed: bool, quiet: bool, options=None, wait: bool = False) -> int:
    from ..executors.slurm_collect import collect_study, wait_for_study
    from ..executors.slurm_submit import SlurmExecutor

    report = SlurmExecutor(options).submit(run, resume_dir, skip_failed)
    say = (lambda text: None) if quiet else (lambda text: click.echo(visible(text)))
    say(f"Study directory: {report.study_dir}")
    if report.job_id:
        say(f"Submitted {report.n_tasks} runs as Slurm job array {report.job_id} "
            f"(script: {report.study_dir}/slurm/, logs: {report.study_dir}/slurm/logs/)")
    else:
        say("Nothing to submit: every run is completed" + (" or failed (--skip-failed)" if skip_failed else "")
            + (f"; {report.in_slurm} still in Slurm" if report.in_slurm else ""))
    if report.in_slurm and report.job_id:
        say(f"{report.in_slurm} runs of earlier submissions are still in Slurm")
    if not wait and (report.job_id or report.in_slurm):
        say(f"Follow it with: llem status {report.study_dir}   (add --wait to stay until it is done)")
        if quiet:
            click.echo(report.study_dir)
        return 0
    try:
        from ..executors.slurm_submit import submit_next_wave  # a search's next wave of trials

        collected = wait_for_study(report.study_dir, run.observer, on_idle=submit_next_wave) if wait else \
            collect_study(report.study_dir, on_idle=submit_next_wave)
    except KeyboardInterrupt:
        click.echo(f"Stopped waiting; the study goes on in Slurm. Follow it with: llem status {report.study_dir}",
                   err=True)
        raise
    return _finish(collected, quiet, run.observer)


def _finish(collected, quiet: bool, observer) -> int:
    if collected.result is not None:
        observer.study_finished(collected.result)
    if quiet:
        click.echo(collected.manifest.study_dir)
    c = collected.manifest.counters
    if collected.manifest.status == "stopped":
        return 1
    return 0 if c.completed or not c.failed else 1


def _describe(manifest) -> list[str]:
    from collections import Counter

    c = Counter(e.status for e in manifest.entries)  # from the entries themselves, not the cached counters
    parts = [f"{c['completed']} completed", f"{c['running']} running"]
    if manifest.executor == "slurm":
        parts.append(f"{c['submitted']} queued in Slurm")
    parts += [f"{c[s]} {s}" for s in ("pending", "failed", "interrupted", "skipped")]
    lines = [f"Study: {manifest.study_name} ({manifest.study_dir})",
             f"Status: {manifest.status} — " + ", ".join(parts) + f" (of {len(manifest.entries)})"]
    if manifest.executor == "slurm":
        jobs = ", ".join(str(j["job_id"]) for j in manifest.slurm_jobs) or "none yet"
        lines.append(f"Executor: slurm — job arrays {jobs}")
    if manifest.stop_reason:
        lines.append(f"Stopped: {manifest.stop_reason}")
    troubled = [e for e in manifest.entries if e.status in ("failed", "interrupted")]
    for entry in troubled[:MAX_LISTED]:
        lines.append(f"  {entry.status}: {entry.run_id or entry.config_summary} (cycle {entry.cycle}): "
                     f"{entry.error_type}: {entry.error_message}")
    if len(troubled) > MAX_LISTED:
        lines.append(f"  … and {len(troubled) - MAX_LISTED} more (see manifest.json)")
    return lines


def _local_hint(manifest, study_dir: Path) -> str | None:
    """A local study marked running whose process is gone: say how to continue it."""
    from ..errors import StudyError
    from ..study.locks import StudyLock

    if manifest.executor != "local" or manifest.status != "running":
        return None
    lock = StudyLock(study_dir)
    try:
        lock.acquire()
    except StudyError:
        return None  # a live llem is running it
    lock.release()
    return f"No llem process is running this study (it was stopped or crashed): llem run --resume {study_dir}"


def _slurm_here() -> bool:
    from ..errors import ConfigError
    from ..executors.slurm import require_slurm

    try:
        require_slurm()
        return True
    except ConfigError:
        return False


@click.command("status")
@click.argument("study_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--wait", is_flag=True, help="Slurm studies: collect until nothing is left in Slurm")
@click.option("--interval", type=click.FloatRange(1, 3600), default=10.0, show_default=True,
              help="seconds between collections with --wait")
@click.option("-q", "--quiet", is_flag=True, help="only errors and the study directory")
@click.option("-v", "--verbose", is_flag=True, help="tracebacks")
def status_cmd(study_dir, wait, interval, quiet, verbose):
    """Progress of a study: collects a Slurm study's finished runs into its manifest."""
    from ..executors.slurm_collect import collect_study, wait_for_study
    from ..study.resume import read_manifest
    from .progress import SlurmObserver

    study_dir = study_dir.resolve()
    manifest = read_manifest(study_dir)  # exit 2 naming the path when it is not a study directory
    observer = SlurmObserver(quiet)
    collected = None
    if manifest.executor == "slurm" and not wait and not _slurm_here():
        click.echo("note: Slurm is not reachable from here (no sbatch/squeue on PATH): showing the manifest as "
                   "last collected", err=True)
    elif manifest.executor == "slurm":
        from ..executors.slurm import require_slurm

        require_slurm()  # --wait without Slurm: exit 2 naming what is missing
        # Without --wait the description below lists what failed; --wait reports each run as it ends.
        from ..executors.slurm_submit import submit_next_wave  # a search's next wave of trials

        collected = wait_for_study(study_dir, observer, interval, on_idle=submit_next_wave) if wait else \
            collect_study(study_dir, on_idle=submit_next_wave)
        manifest = collected.manifest
    if not quiet:
        for line in _describe(manifest):
            click.echo(visible(line))  # names and messages from study files: no control character to the terminal
        hint = _local_hint(manifest, study_dir)
        if hint:
            click.echo(hint)
        if manifest.status == "interrupted" and manifest.executor == "slurm":
            click.echo(f"Resubmit what did not finish: llem run --resume {study_dir}")
    if collected is not None and collected.finished:
        return _finish(collected, quiet, observer)
    if quiet:
        click.echo(study_dir)
    return 0
