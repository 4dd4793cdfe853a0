"""Energy cross-checks: the counter's window energy beside an independent reading of the same window.

`EnergyCrossCheck` compares, per GPU, the energy counter's difference with the integral of the
sampled instant power over the same window (docs/methodology.md, "Cross-check inside every run").
The two readings come from the same board sensor, so agreement shows they are consistent (no broken
counter, no lost samples, a window long enough for its sampling), not that either is accurate:
only an external meter tests accuracy, which `ExternalEnergy` records when one is configured.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import OpenModel


class GpuCrossCheck(OpenModel):
    """One GPU: counter difference vs trapezoid of instant power over the window."""

    gpu_uuid: str
    gpu_index: int | None = Field(None, description="NVML index")
    counter_energy_j: float | None = Field(None, description="energy counter, end - start (null: no counter)")
    instant_integral_j: float | None = Field(
        None, description="trapezoid of the sampled instant power over the window (null: < 2 samples)")
    ratio: float | None = Field(None, description="instant_integral_j / counter_energy_j")
    n_samples: int = Field(0, description="instant-power samples inside the window (edge samples included)")
    sample_period_ms: float | None = Field(None, description="median interval between this window's samples")
    power_change_interval_ms: float | None = Field(
        None, description="median interval between changes of the instant power in this window (observed; never "
                          "shorter than the sample period, so an upper bound on the sensor's update period when equal)")
    counter_change_interval_ms: float | None = Field(
        None, description="median interval between changes of the energy counter in this window (observed)")
    power_update_period_ms: float | None = Field(
        None, description="the sensor's published update period for this GPU model (null: not known to llem)")
    sensor_averaging_share: float | None = Field(
        None, description="share of each update period the sensor averages over, where published for the model "
                          "(A100/H100: 0.25); power outside that share is never seen by the instant reading")
    sensor_source: str | None = Field(None, description="where the two published figures come from")
    tolerance: float | None = Field(
        None, description="largest |ratio - 1| the sampling explains: base tolerance + two edges of one period "
                          "at peak power, relative to the counter energy")
    flagged: bool | None = Field(None, description="|ratio - 1| > tolerance (null: no comparison possible)")
    unavailable_reason: str | None = None


class EnergyCrossCheck(OpenModel):
    """The run's counter energy beside its integrated instant power, per GPU (method in `method`)."""

    method: Literal["counter_vs_instant_trapezoid", "unavailable"] = "unavailable"
    unavailable_reason: str | None = None
    ratio: float | None = Field(None, description="summed instant integrals / summed counter energies")
    flagged: bool | None = Field(None, description="any GPU flagged (null: no GPU could be compared)")
    base_tolerance: float | None = Field(
        None, description="part of the tolerance not due to sampling: the two readings' firmware paths differ")
    per_gpu: list[GpuCrossCheck] = Field(default_factory=list)


class ExternalEnergy(OpenModel):
    """An external meter's energy over the same window (`measurement.external_energy_file`)."""

    method: Literal["external_power_trapezoid", "external_energy_difference", "unavailable"] = "unavailable"
    unavailable_reason: str | None = None
    source: str | None = Field(None, description="the readings file")
    meter: str | None = Field(None, description="what the file says it measures (its `meter` header, if any)")
    energy_j: float | None = Field(None, description="the external meter's energy over the window")
    n_readings: int = Field(0, description="readings inside the window")
    reading_period_ms: float | None = Field(None, description="median interval between readings in the window")
    counter_energy_j: float | None = Field(None, description="the GPUs' summed counter energy of the same window")
    ratio: float | None = Field(None, description="energy_j / counter_energy_j")
    scope: str | None = Field(None, description="what the meter measures, as its file says (`gpu`: the same GPUs)")
    tolerance: float | None = Field(
        None, description="largest |ratio - 1| the readings' period explains (only for a meter of scope `gpu`)")
    flagged: bool | None = Field(None, description="|ratio - 1| > tolerance (null unless scope is `gpu`)")
