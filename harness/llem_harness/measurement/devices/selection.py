"""Which NVML devices a run measures: the GPUs it was assigned, matched by UUID wherever one is given.

Why here, in the device layer: CUDA and NVML number GPUs differently, and a container renumbers
them from 0; getting the mapping wrong measures the wrong GPU with no error. Everything that maps
an id to a device is in this module.
"""
from __future__ import annotations

from . import GpuDevice


def _looks_like_uuid(token: str) -> bool:
    return token.upper().startswith(("GPU-", "MIG-"))


def _match_uuid(token: str, devices: list[GpuDevice]) -> GpuDevice | None:
    """CUDA accepts UUID prefixes ("GPU-8932f937"); match the unique device they name."""
    hits = [d for d in devices if d.uuid.upper().startswith(token.upper())]
    return hits[0] if len(hits) == 1 else None


def select_devices(all_devices: list[GpuDevice], gpu_ids: list[str] | None,
                   cuda_visible: str | None, cuda_device_order: str | None = None
                   ) -> tuple[list[GpuDevice], list[str]]:
    """Map the GPUs this run may use to NVML devices, by UUID wherever one is given.

    `cuda_visible` (CUDA_VISIBLE_DEVICES) narrows what the process sees; `gpu_ids` (RunSpec) then
    picks among the visible GPUs: a UUID matches directly, an integer is a CUDA index, i.e. a
    position in the visible list. Integers in CUDA_VISIBLE_DEVICES itself are CUDA ordinals whose
    order equals NVML's only with CUDA_DEVICE_ORDER=PCI_BUS_ID; otherwise we say so in a note.
    Returns (devices, notes). Raises ValueError for an id that names no visible GPU.
    """
    notes: list[str] = []
    by_index = {d.index: d for d in all_devices}
    visible = list(all_devices)
    if cuda_visible is not None:
        visible = []
        if cuda_visible.strip() in ("", "-1"):
            notes.append(f"CUDA_VISIBLE_DEVICES={cuda_visible!r} hides every GPU from this process")
        for token in (t.strip() for t in cuda_visible.split(",")):
            if not token:
                continue
            if _looks_like_uuid(token):
                dev = _match_uuid(token, all_devices)
                if dev is None:
                    # CUDA stops at the first invalid entry; so do we.
                    notes.append(f"CUDA_VISIBLE_DEVICES entry {token!r} matches no NVML device; later entries ignored")
                    break
            else:
                try:
                    dev = by_index.get(int(token))
                except ValueError:
                    notes.append(f"CUDA_VISIBLE_DEVICES entry {token!r} is neither an index nor a UUID; ignored")
                    break
                if dev is None:
                    notes.append(f"CUDA_VISIBLE_DEVICES index {token} has no NVML device; later entries ignored")
                    break
                if (cuda_device_order or "").upper() != "PCI_BUS_ID" and len(all_devices) > 1:
                    notes.append(f"CUDA_VISIBLE_DEVICES index {token} mapped to NVML index {token}; exact only "
                                 "with CUDA_DEVICE_ORDER=PCI_BUS_ID (prefer UUIDs)")
            if dev not in visible:
                visible.append(dev)
    if not gpu_ids:
        return visible, notes
    chosen: list[GpuDevice] = []
    for raw in gpu_ids:
        token = str(raw).strip()
        if _looks_like_uuid(token):
            dev = _match_uuid(token, visible)
            if dev is None:
                raise ValueError(f"assigned GPU {token} is not visible to this process "
                                 f"(visible: {[d.uuid for d in visible]})")
        else:
            pos = int(token)
            if not 0 <= pos < len(visible):
                raise ValueError(f"assigned GPU index {pos} out of range: {len(visible)} GPU(s) visible")
            dev = visible[pos]
        if dev not in chosen:
            chosen.append(dev)
    return chosen, notes


def select_for_run(all_devices: list[GpuDevice], gpu_ids: list[str] | None, cuda_visible: str | None,
                   cuda_device_order: str | None) -> tuple[list[GpuDevice], list[str]]:
    """`select_devices`, and the container case: the runtime exposes exactly the assigned GPUs,
    renumbered from 0, while the run spec may carry host indices (same count, all indices: they are
    the visible set, measured by UUID). Raises ValueError as `select_devices` does otherwise."""
    try:
        return select_devices(all_devices, gpu_ids, cuda_visible, cuda_device_order)
    except ValueError:
        visible, notes = select_devices(all_devices, None, cuda_visible, cuda_device_order)
        if gpu_ids and all(str(g).strip().isdigit() for g in gpu_ids) and len(visible) == len(gpu_ids):
            notes.append(f"assigned GPU indices {gpu_ids} are host numbering; this process sees exactly "
                         f"{len(visible)} GPU(s), measured by UUID {[d.uuid for d in visible]}")
            return visible, notes
        raise
