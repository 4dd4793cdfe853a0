"""What the study loop tells the outside world (progress display, logs).

The loop calls these hooks; the CLI implements them with a live display. The default does
nothing, so `run_study` from Python is silent unless the caller passes an observer.
"""
from __future__ import annotations

from ..domain import ManifestEntry
from ..runners.base import RunOutcome


class StudyObserver:
    def study_started(self, study_dir: str, n_runs: int, n_skipped: int) -> None: ...

    def notice(self, message: str) -> None: ...

    def run_started(self, position: int, n_runs: int, entry: ManifestEntry) -> None: ...

    def run_event(self, event: dict) -> None: ...

    def run_finished(self, entry: ManifestEntry, outcome: RunOutcome | None) -> None: ...

    def study_finished(self, result) -> None: ...
