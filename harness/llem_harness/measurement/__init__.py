"""Measurement for one harness run: GPU devices, idle baseline, warm-up, energy window.

The harness pipeline talks only to `MeasurementSession`; NVML (real or replayed) lives behind
it. See `session.py` for the contract. Modules: `devices` (interface, backend choice, GPU
selection by UUID), `nvml_real`, `replay`, `sampler`, `energy`, `baseline`, `warmup`,
`throttle`, `rapl`, `environment`, `record` (CLI that records a real trace).
"""
from .environment import environment_summary
from .session import MeasurementSession, WindowMeasurement

__all__ = ["MeasurementSession", "WindowMeasurement", "environment_summary"]
