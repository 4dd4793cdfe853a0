"""Measurement for one harness run: GPU devices, idle baseline, warm-up, energy window.

The harness pipeline talks only to `MeasurementSession`; NVML (real or replayed) lives behind
it. See `session.py` for the contract.
"""
from .session import MeasurementSession, WindowMeasurement

__all__ = ["MeasurementSession", "WindowMeasurement"]
