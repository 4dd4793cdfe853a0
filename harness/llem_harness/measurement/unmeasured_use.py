"""A GPU the run uses but does not measure: an error, not a figure.

Why: the run's energy is the sum over the GPUs it measures (the ones it was given). A process of
this run on any other GPU (an engine that ignores CUDA_VISIBLE_DEVICES, a runner that exposed the
wrong GPUs) draws energy that no figure contains, so J/token would be too low with nothing to say
so. Checked once the model is resident (its memory is then on every GPU the engine uses), from the
process lists of the GPUs this process can see through the device backend but does not measure.
"""
from __future__ import annotations

from .devices import GpuDevice


class UnmeasuredGpuUse(RuntimeError):
    """This run's processes are on a GPU it does not measure."""


def check_unmeasured_use(all_devices: list[GpuDevice], measured: list[GpuDevice], own_pids: set[int]) -> list[str]:
    """Raise UnmeasuredGpuUse naming the GPU(s) and PIDs; returns notes for process lists it could not read."""
    measured_uuids = {d.uuid for d in measured}
    used, notes = [], []
    for dev in all_devices:
        if dev.uuid in measured_uuids:
            continue
        try:
            procs = dev.processes()
        except Exception as exc:  # noqa: BLE001 - an unreadable list proves nothing either way
            notes.append(f"GPU {dev.index} process list unreadable ({type(exc).__name__}: {exc}): "
                         "cannot check that this run does not use it")
            continue
        pids = sorted({int(p["pid"]) for p in procs if p.get("pid") is not None and int(p["pid"]) in own_pids})
        if pids:
            used.append(f"GPU {dev.index} ({dev.uuid}): pid {', '.join(map(str, pids))}")
    if used:
        raise UnmeasuredGpuUse(f"this run's processes are on GPU(s) it does not measure: {'; '.join(used)}. "
                               f"Measured: {sorted(measured_uuids)}. Their energy would be missing from every "
                               "figure; give the run those GPUs (execution.gpus_per_run) or keep the engine off them")
    return notes
