"""Progress and end-of-study output for the CLI.

A live display (rich) when stdout is a TTY; one plain line per run otherwise; nothing but
errors with --quiet. The harness's progress events drive the current-stage text.
"""
from __future__ import annotations

import os
import sys

import click

from ..domain import ManifestEntry
from ..study.observer import StudyObserver
from .console import make_console
from .run_summary import ENERGY_UNAVAILABLE, print_summary_table  # noqa: F401 (the observer's end of study)
from .safe_text import markup_safe, visible


def _fmt(value, digits=3) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def silence(stream) -> None:
    """Point a stream whose reader is gone (or whose disk is full) at /dev/null, so that nothing later,
    the interpreter's final flush included, fails on it again."""
    try:
        stream.flush()
    except (OSError, ValueError):
        pass
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


class PlainObserver(StudyObserver):
    """Line-oriented output: safe for logs, CI and pipes.

    Output is a courtesy, the study is the point: when stdout fails (`llem run ... | head` closed
    the pipe, or a redirect filled the disk) the study goes on silently after one note on stderr;
    the manifest and results are written as usual."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self._seen: set[str] = set()  # a line repeated by every run is printed once
        self._said: list[str] = []    # what was printed, so that a reason already given is not repeated
        self._lost: set[bool] = set()  # the streams (err=True/False) that failed: written no more

    def _say(self, text: str) -> None:
        if not self.quiet:
            self._said.append(text)
            self._emit(text)

    def _emit(self, text: str) -> None:
        self._write(lambda: click.echo(visible(text, keep_newlines=True)))

    def _write(self, write, err: bool = False) -> None:
        if err in self._lost:
            return
        try:
            write()
        except OSError as exc:  # BrokenPipeError, ENOSPC, EIO: the reader or the disk is gone
            self._lost.add(err)
            silence(sys.stderr if err else sys.stdout)
            if not err:
                note = (f"note: standard output failed ({exc.strerror or exc}); the study goes on without "
                        "progress output (see manifest.json)")
                self._write(lambda: click.echo(note, err=True), err=True)

    def already_said(self, reason: str) -> bool:
        return any(reason in line for line in self._said)

    def study_started(self, study_dir: str, n_runs: int, n_skipped: int) -> None:
        skipped = f", {n_skipped} skipped (invalid grid points)" if n_skipped else ""
        self._say(f"Study directory: {study_dir}\n{n_runs} runs to measure{skipped}")

    def notice(self, message: str) -> None:
        self._say(f"note: {message}")

    def run_started(self, position: int, n_runs: int, entry: ManifestEntry) -> None:
        self._say(f"[{position}/{n_runs}] {entry.config_summary} (cycle {entry.cycle}, {entry.runner})")

    def run_event(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "environment":
            self._once(f"    env: {event.get('summary')}")  # with a GPU, temperatures and clocks change per run
        elif kind == "warning":
            message = str(event.get("message"))
            if message.startswith(ENERGY_UNAVAILABLE) and self.already_said(message[len(ENERGY_UNAVAILABLE):]):
                return  # the environment line gave this reason already
            self._once(f"    warning: {message}")

    def _once(self, line: str) -> None:
        if line not in self._seen:
            self._seen.add(line)
            self._say(line)

    def run_finished(self, entry: ManifestEntry, outcome) -> None:
        if entry.status == "completed" and outcome is not None and outcome.result is not None:
            m = outcome.result.metrics
            self._say(f"    completed in {_fmt(entry.duration_s)} s: {_fmt(m.output_tokens_per_s)} output tok/s, "
                      f"{_fmt(m.energy_per_output_token_j)} J/output token")
        else:
            line = visible(f"    {entry.status}: {entry.error_type}: {entry.error_message}", keep_newlines=True)
            self._write(lambda: click.echo(line, err=True), err=True)

    def study_finished(self, result) -> None:
        if not self.quiet and result.experiments:
            self._write(lambda: print_summary_table(result, said=self.already_said))
        elif not self.quiet:
            self._say(f"No run completed. Manifest: {result.study_dir}/manifest.json")


class SlurmObserver(PlainObserver):
    """Slurm studies: runs start and end in Slurm, so each collected run is named on its own line."""

    def run_finished(self, entry: ManifestEntry, outcome) -> None:
        self._say(f"{entry.run_id} (cycle {entry.cycle}, Slurm task {entry.slurm_job_id}):")
        super().run_finished(entry, outcome)


class LiveObserver(PlainObserver):
    """A rich progress bar over runs plus the current run's stage."""

    def __init__(self):
        super().__init__(quiet=False)
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = make_console()
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=self.console, transient=True)
        self.task = None

    def _emit(self, text: str) -> None:
        self._write(lambda: self.console.print(visible(text, keep_newlines=True), highlight=False, markup=False))

    def study_started(self, study_dir: str, n_runs: int, n_skipped: int) -> None:
        super().study_started(study_dir, n_runs, n_skipped)
        self.progress.start()
        self.task = self.progress.add_task("starting", total=n_runs)

    def run_event(self, event: dict) -> None:
        super().run_event(event)
        if event.get("event") == "stage":
            self.progress.update(self.task, description=markup_safe(event.get("stage")))
        elif event.get("event") == "batch":
            stage = markup_safe(event.get("stage") or "measuring")  # warm-up batches are not measured ones
            self.progress.update(self.task, description=f"{stage} batch {event.get('done')}/{event.get('total')}")

    def run_finished(self, entry: ManifestEntry, outcome) -> None:
        super().run_finished(entry, outcome)
        self.progress.advance(self.task)

    def study_finished(self, result) -> None:
        self.progress.stop()
        super().study_finished(result)


def make_observer(quiet: bool) -> StudyObserver:
    if quiet:
        return PlainObserver(quiet=True)
    return LiveObserver() if sys.stdout.isatty() else PlainObserver()
