"""Measured GPUs that did nothing in the window: a run that measures a GPU its engine never used.

Why: the harness measures the GPUs its process was given, and the figures (raw energy, J/token,
mean power) sum them. A GPU that stayed idle through the window adds its idle draw to every figure
while doing no work — on an 8-GPU node, seven idle GPUs about double the true raw J/token. Each
run is given only the GPUs it needs (the executors), so an idle GPU here means the configuration
asked for more than its engine used (`execution.gpus_per_run` above the tensor-parallel size, a
model placed on one GPU of two): the run says so, and `energy.idle_gpu_uuids` lets the statistics
flag it.

Idle means both: every utilisation sample of the window at or below UTIL_IDLE_PCT, and the GPU's
mean window power within IDLE_POWER_TOLERANCE of its own idle power (loaded idle where measured,
else the pre-load idle). A GPU without utilisation readings is never called idle; without an idle
power, utilisation alone decides.
"""
from __future__ import annotations

from llenergymeasure.domain import BaselineResult, EnergyResult

from .devices import GpuDevice
from .sampler import Tick

UTIL_IDLE_PCT = 1.0               # NVML utilisation: % of the sample period a kernel ran
IDLE_POWER_TOLERANCE = (1.10, 5.0)  # power <= idle x 1.10 + 5 W counts as "at its idle power"


def _idle_power(uuid: str, baselines: list[BaselineResult | None]) -> float | None:
    for baseline in baselines:
        if baseline is not None and uuid in baseline.idle_power_per_gpu_w:
            return baseline.idle_power_per_gpu_w[uuid]
    return None


def idle_gpus(devices: list[GpuDevice], ticks: list[Tick], energy: EnergyResult,
              baselines: list[BaselineResult | None]) -> tuple[list[str], list[str]]:
    """(UUIDs of the measured GPUs idle through the window, one warning per such GPU)."""
    energy_by_uuid = {g.gpu_uuid: g.energy_j for g in energy.per_gpu}
    window_s = energy.window_s or 0.0
    idle, warnings = [], []
    for pos, dev in enumerate(devices):
        utils = [tk.samples[pos].utilization_pct for tk in ticks if tk.samples[pos].utilization_pct is not None]
        if not utils or max(utils) > UTIL_IDLE_PCT:
            continue
        energy_j = energy_by_uuid.get(dev.uuid)
        if energy_j is not None and window_s > 0:
            power_w = energy_j / window_s
        else:
            powers = [tk.samples[pos].power_instant_w for tk in ticks if tk.samples[pos].power_instant_w is not None]
            power_w = sum(powers) / len(powers) if powers else None
        idle_w = _idle_power(dev.uuid, baselines)
        factor, margin_w = IDLE_POWER_TOLERANCE
        if idle_w is not None and (power_w is None or power_w > idle_w * factor + margin_w):
            continue
        idle.append(dev.uuid)
        at = f" at {power_w:.0f} W" + (f" (idle {idle_w:.0f} W)" if idle_w is not None else "") if power_w else ""
        warnings.append(f"GPU {dev.index} ({dev.uuid}) was measured but stayed idle through the window (utilisation "
                        f"{max(utils):.0f} %{at}): its idle draw is counted in this run's energy; give the run "
                        "only the GPUs its engine uses (execution.gpus_per_run, tensor_parallel_size)")
    return idle, warnings
