"""The one interface every executor implements.

An executor is handed a `Batch` (study/study_run.py): the planned manifest entries to run now,
in execution order, with the one manifest writer and the observer to report to. It decides only
*how* those runs are executed — here, one after another (sequential.py), several at once on
disjoint GPU sets (parallel.py), or as a Slurm job array (slurm_submit.py). What runs, in which
order, what a resume reruns, and how the study is summarised is the plan's (study/), written
once for all three.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

from ..domain import ManifestEntry
from ..runners.base import RunOutcome
from ..study.study_run import Batch, StudyRun


class Executor(ABC):
    """Runs planned entries and reports each outcome to the manifest writer and the observer."""

    name = "local"  # recorded as the manifest's `executor`; `llem status` and `--resume` read it

    def check(self, run: StudyRun) -> None:
        """Refuse what this executor cannot run (ConfigError names the field), before anything is created."""

    @abstractmethod
    def run(self, batch: Batch) -> list[tuple[ManifestEntry, RunOutcome | None]]:
        """Run (or hand to a scheduler) the entries `batch.todo`; every state change goes through
        `batch.writer` and `batch.run.observer`. Returns (entry, outcome) for the runs that ended
        in this call, in study order; the circuit breaker's verdict is left in `batch.breaker`."""
