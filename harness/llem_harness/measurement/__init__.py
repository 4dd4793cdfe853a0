"""Measurement for one harness run, in two layers.

- The device layer (`devices/`): every source of energy readings behind one interface — NVIDIA
  GPUs through NVML (`devices/nvml.py`), a replayed NVML trace (`devices/replay.py`), CPU package
  and DRAM zones through RAPL (`devices/rapl.py`) — with the choice of which measures this run
  (`devices/choice.py`) and which GPUs, by UUID (`devices/selection.py`).
- Measurement policy, on top: one named-window primitive (`windows.py`) over those meters and the
  sampler's timeline (`sampler.py`), on which the idle windows (`idle_power.py`), the run window and
  the prefill/decode phases (`phases.py`) are built; what a closed run window measured (`run_window.py`,
  `energy.py`, `cross_check.py`, `idle_gpus.py`, `throttle.py`); contention, stalls and warm-up.

The harness talks only to `MeasurementSession` (`session.py`, whose docstring is the contract).
`record.py` is a command that records a real NVML trace for replay.
"""
from .environment import environment_summary
from .session import MeasurementSession, WindowMeasurement

__all__ = ["MeasurementSession", "WindowMeasurement", "environment_summary"]
