"""The workload interface: what an offline batch loop and a serving load do differently.

Everything else about a run — the measurement session, the idle baseline before the model loads,
the loaded idle, warm-up, the energy window, the result — is the same in both modes and is written
once, in `measured_run.py` (the order) and `result_assembly.py` (the result). A workload only
loads its model, prepares its prompts, runs one warm-up step, runs its measured work between the
window's edges, and says what it measured (`WorkloadOutcome`).

Two workloads, looked up by `config.mode` in `WORKLOADS` (imported lazily, like engine adapters):
- offline (`offline_batches.OfflineBatches`): an engine adapter (engines/base.py `create_adapter`)
  generates the measured prompts in static batches; the window is synchronised at batch edges;
- serving (`serving/load.ServingLoad`): the engine's own server under an HTTP load; the load
  generator sets the window's edges live at steady state.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

from llenergymeasure.domain import (EnvironmentInfo, Metrics, PhaseEnergy, PromptCache, RequestRecord, RunSpec,
                                    ServingResult, TokenTiming)

if TYPE_CHECKING:
    from .after_window import AfterWindow
    from .measurement.session import MeasurementSession, WindowMeasurement

Emit = Callable[..., None]


@dataclass
class WorkloadOutcome:
    """What a workload measured, in the terms the result is assembled from."""

    requests: list[RequestRecord]
    metrics: Metrics
    prompt_cache: PromptCache
    phase_energy: PhaseEnergy
    effective: dict[str, Any] | None   # engine parameters in effect (None: could not be read)
    warnings: list[str] = field(default_factory=list)  # after the window and session warnings, in order
    serving: ServingResult | None = None
    token_timing: TokenTiming | None = None  # how per-token times were taken (None: could not be read)


class Workload(Protocol):
    load_stage: str               # stage entered while the model loads ("loading" / "server_starting")
    load_fields: dict[str, Any]   # fields of that stage event

    def import_engine(self) -> float | None:
        """Import the engine's modules in this process, timed apart from the load (startup.py);
        None when this process imports no engine (serving: the server process does)."""

    def load(self) -> float:
        """Load the model (offline: the adapter; serving: start the server); returns model_load_s."""

    def record_versions(self, environment: EnvironmentInfo, after: AfterWindow) -> None:
        """Record engine versions on `environment`, once the model is loaded."""

    def prepare(self) -> None:
        """The measured prompts and the warm-up prompts, cut to this engine's token counts."""

    def warmup_step(self) -> float:
        """One warm-up unit (a batch, a request) on prompts outside the measured set; its latency_s."""

    def measuring_fields(self) -> dict[str, Any]:
        """Fields of the `measuring` stage event."""

    def run_measured(self, session: MeasurementSession) -> WindowMeasurement:
        """Open the session's window, run the measured work, close it; returns the WindowMeasurement."""

    def outcome(self, session: MeasurementSession, window: WindowMeasurement, after: AfterWindow) -> WorkloadOutcome:
        """Records, metrics and descriptions of the measured work (reads after the window go through `after`)."""

    def close(self, after: AfterWindow) -> None:
        """Release the engine (failures reported through `after.call`, never raised)."""


WORKLOADS = {"offline": ("offline_batches", "OfflineBatches"), "serving": ("serving.load", "ServingLoad")}


def create_workload(spec: RunSpec, run_dir: Path, emit: Emit) -> Workload:
    """The workload of `spec.config.mode`; its module is imported only when chosen."""
    module_name, class_name = WORKLOADS[spec.config.mode]
    module = importlib.import_module(f"{__package__}.{module_name}")
    return getattr(module, class_name)(spec, run_dir, emit)
