"""Disjoint GPU sets for parallel runs: a pure allocator, testable without hardware.

Why pure: the policy (a run never shares a GPU with another run; a finished or failed run frees
its GPUs; cycle order is kept per GPU set) must be checkable on a CPU-only CI machine. The
dispatcher (parallel.py) owns threads and processes; this module owns only bookkeeping.

GPU ids are opaque strings: UUIDs on a real host, or explicit "fake" ids on a CPU host
(execution.gpus given by the user), which are only passed through as CUDA_VISIBLE_DEVICES.
"""
from __future__ import annotations

from dataclasses import dataclass, field


class AllocationError(ValueError):
    """A run needs more GPUs than the host has: it could never start."""


def gpu_sets(gpu_ids: list[str], gpus_per_run: int) -> list[tuple[str, ...]]:
    """Split the GPUs into fixed, disjoint sets of `gpus_per_run` (left-over GPUs stay idle).

    Fixed sets (rather than any free k GPUs) keep each configuration's cycles comparable per set
    and let the summary compare the same configuration across sets.
    """
    if gpus_per_run < 1:
        raise AllocationError(f"execution.gpus_per_run must be >= 1, got {gpus_per_run}")
    if len(set(gpu_ids)) != len(gpu_ids):
        raise AllocationError(f"duplicate GPU ids in {gpu_ids}: each GPU may belong to one set only")
    if gpus_per_run > len(gpu_ids):
        raise AllocationError(f"a run needs {gpus_per_run} GPUs but only {len(gpu_ids)} are available "
                              f"({', '.join(gpu_ids) or 'none'}); lower execution.gpus_per_run")
    n_sets = len(gpu_ids) // gpus_per_run
    return [tuple(gpu_ids[i * gpus_per_run:(i + 1) * gpus_per_run]) for i in range(n_sets)]


def tensor_parallel_size(config) -> int:
    """GPUs one configuration needs: its engine section's tensor_parallel_size, else 1."""
    section = getattr(config, config.engine, None)
    return getattr(section, "tensor_parallel_size", None) or 1


def effective_gpus_per_run(gpus_per_run: int | None, configs: list) -> int:
    """`execution.gpus_per_run`, or the largest tensor-parallel size of the study when unset.

    A set smaller than a configuration's tensor-parallel size could never run it: refused by name."""
    needed = max((tensor_parallel_size(c) for c in configs), default=1)
    if gpus_per_run is None:
        return needed
    if needed > gpus_per_run:
        raise AllocationError(f"a configuration has tensor_parallel_size={needed} but execution.gpus_per_run="
                              f"{gpus_per_run}; set execution.gpus_per_run to at least {needed} (or leave it unset)")
    return gpus_per_run


def n_parallel(parallel: int | str, n_sets: int) -> int:
    """`auto` = every GPU set busy; N is capped by the number of disjoint sets."""
    if parallel == "auto":
        return max(1, n_sets)
    return max(1, min(int(parallel), n_sets))


@dataclass
class GpuAllocator:
    """Hands free GPU sets to runs and takes them back (success or failure alike)."""

    sets: list[tuple[str, ...]]
    limit: int
    busy: dict[int, object] = field(default_factory=dict)  # set index -> run key

    def acquire(self, run_key: object) -> tuple[int, tuple[str, ...]] | None:
        """The lowest-numbered free set for `run_key`, or None when all allowed sets are busy."""
        if len(self.busy) >= self.limit:
            return None
        for index, gpus in enumerate(self.sets[:self.limit]):
            if index not in self.busy:
                self.busy[index] = run_key
                return index, gpus
        return None

    def release(self, set_index: int) -> None:
        """Free a set; releasing a set that is not busy is a bookkeeping bug, so it raises."""
        if set_index not in self.busy:
            raise KeyError(f"GPU set {set_index} is not allocated")
        del self.busy[set_index]

    def in_use(self) -> set[str]:
        return {gpu for index in self.busy for gpu in self.sets[index]}
