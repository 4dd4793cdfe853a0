"""What else ran during the measured window: foreign GPU processes and host CPU load.

A measurement on a busy device is not a measurement of the workload alone: a foreign process on a
measured GPU adds its energy to the counter, and foreign CPU load slows a CPU engine (and the host
side of a GPU engine). The harness samples both over the window and marks the run
(`significant`) when either crosses the thresholds recorded beside the figures.
"""
from __future__ import annotations

from typing import Any

from pydantic import Field

from .base import OpenModel


class ContentionResult(OpenModel):
    """Foreign GPU processes and foreign host CPU time over the measured window."""

    gpu_foreign_processes: list[dict[str, Any]] = Field(
        default_factory=list, description="processes not of this run seen on a measured GPU during the window: "
        "pid, gpu_uuid, gpu_index, type (compute|graphics), used_memory_mb, samples_seen")
    gpu_process_samples: int = Field(0, description="how many times the GPUs' process lists were read in the window")
    gpu_unavailable_reason: str | None = None
    host_cpu_foreign_s: float | None = Field(
        None, description="CPU-seconds used by other processes during the window: /proc/stat busy time "
        "minus this run's process tree")
    host_cpu_own_s: float | None = Field(None, description="CPU-seconds used by this run's process tree")
    host_cpu_foreign_cores: float | None = Field(
        None, description="host_cpu_foreign_s / window wall seconds: mean number of cores other processes kept busy")
    host_cpu_count: int | None = None
    host_cpu_unavailable_reason: str | None = None
    significant: bool = Field(False, description="either contention crossed its threshold; see reasons")
    reasons: list[str] = Field(default_factory=list)
    thresholds: dict[str, float] = Field(default_factory=dict, description="the thresholds applied")
