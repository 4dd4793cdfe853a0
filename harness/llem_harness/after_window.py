"""Reads after the measured window must never lose the measured run.

Once `stop_window` has returned, the energy, tokens and timings are measured; what is read next
(engine effective parameters, memory, the FLOPs estimate, the phase split, closing the engine) is
description. An engine attribute renamed in a new release, a driver call that fails, a model
config the estimator does not know: each becomes `null` with the reason in
`result.after_window_unavailable` and a warning — never an exception that discards the run.
"""
from __future__ import annotations

import logging
from typing import Callable, TypeVar

from llenergymeasure.domain import ExperimentResult
from llenergymeasure.domain.metrics import per_output_token_j, window_counts

T = TypeVar("T")
log = logging.getLogger("llem_harness")


class AfterWindow:
    """Collects what could not be read after the window, as {name: reason} and warnings."""

    def __init__(self, emit: Callable[..., None] | None = None):
        self.emit = emit
        self.unavailable: dict[str, str] = {}
        self.warnings: list[str] = []

    def _failed(self, name: str, exc: BaseException) -> str:
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        self.unavailable[name] = reason
        message = f"{name} could not be read after the measured window ({reason}); reported as null, run kept"
        self.warnings.append(message)
        log.warning("after the window: %s", message, exc_info=exc)
        if self.emit is not None:
            self.emit("warning", message=message)
        return reason

    def read(self, name: str, fn: Callable[[], T], fallback: Callable[[str], T]) -> T:
        """fn(), or fallback(reason) when it raises (Exception only: an interrupt still stops the run)."""
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - whatever the engine raises, the measurement stays
            return fallback(self._failed(name, exc))

    def call(self, name: str, fn: Callable[[], object]) -> None:
        """Cleanup (closing the engine, the session) whose failure is reported, not raised."""
        self.read(name, fn, lambda _reason: None)


def attach_window_records(result: ExperimentResult, loaded_idle, contention,
                          after: AfterWindow) -> ExperimentResult:
    """Add loaded idle, contention, CPU J/token (over the window's tokens, as GPU J/token) and after-window gaps."""
    result.loaded_idle = loaded_idle
    result.contention = contention
    result.after_window_unavailable = dict(after.unavailable)
    cpu = result.cpu_energy
    # The same denominator as the GPU figures (domain/metrics.py): serving divides by the window's tokens.
    cpu.package_energy_per_output_token_j = per_output_token_j(cpu.package_energy_j, window_counts(result)[0])
    extra = list(after.warnings)
    if cpu.method == "unavailable" and result.environment.device == "cpu":  # the run's only energy: say why
        extra.append(f"CPU energy not measured: {cpu.unavailable_reason or 'no RAPL reading'}")
    result.measurement_warnings = list(dict.fromkeys(result.measurement_warnings + extra))
    return result
