"""The parallel executor: several runs at once, each on its own disjoint GPU set.

Why threads: each run is already a separate process (harness subprocess or container); the
orchestrator only waits on it. Runs are handed out in the study's cycle order, so each GPU set
sees a subsequence of that order and interleaving still spreads drift. The manifest keeps ONE
writer object; updates from worker threads go through a lock so each write is whole. Each run
is the same as under the sequential executor (on_host.run_one).

On a CPU-only host, `execution.gpus` may name fake ids (passed through CUDA_VISIBLE_DEVICES, no
energy is read from them); such parallel runs are refused unless `execution.allow_parallel_cpu`
is set, because concurrent CPU runs skew each other's timing and energy.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from ..errors import ConfigError
from ..runners.signals import stop_requested
from .base import Executor
from .gpu_alloc import AllocationError, GpuAllocator, effective_gpus_per_run, gpu_sets, n_parallel
from .on_host import run_one


def plan_gpu_sets(study, configs: list) -> list[tuple[str, ...]]:
    """Validate the parallel settings before anything is created; ConfigError names the field."""
    from ..runners.gpu_presence import visible_gpu_uuids, visible_nvidia_gpus

    ex = study.execution
    n_gpus, how = visible_nvidia_gpus()
    ids = ex.gpus or study.docker.gpus or (visible_gpu_uuids() or [str(i) for i in range(n_gpus)])
    if n_gpus == 0 and not ex.allow_parallel_cpu:
        raise ConfigError(f"execution.parallel={ex.parallel} needs GPUs, but none is visible ({how}). Parallel "
                          "CPU runs share cores and skew each other's timing and energy, so they are refused for "
                          "measurement studies. Set execution.parallel: 1, or execution.allow_parallel_cpu: true "
                          "with execution.gpus: [fake ids] for machinery tests only.")
    if not ids:
        raise ConfigError("execution.parallel needs GPU ids: set execution.gpus (e.g. [0, 1])")
    try:
        return gpu_sets([str(g) for g in ids], effective_gpus_per_run(ex.gpus_per_run, configs))
    except AllocationError as error:
        raise ConfigError(str(error)) from None


_SKIPPED = object()  # a run adaptive cycles found not needed (AdaptiveTodo.skip)


class _LockedWriter:
    """The one ManifestWriter, serialised: worker threads never interleave two writes."""

    def __init__(self, writer):
        self._writer, self._lock = writer, threading.Lock()
        self.lock = self._lock  # held around an adaptive decision, which updates the raw writer

    def update(self, index, **changes):
        with self._lock:
            return self._writer.update(index, **changes)

    def __getattr__(self, name):
        return getattr(self._writer, name)


class ParallelExecutor(Executor):
    """`execution.parallel` other than 1: the GPU sets are checked before the study directory exists."""

    name = "local"

    def check(self, run) -> None:
        from ..study.adaptive import refuse_unless_sequential

        refuse_unless_sequential(run.study, "parallel", search_in_waves=True, adaptive_cycles=True)
        plan_gpu_sets(run.study, run.expanded.tensor_parallel_configs())  # ConfigError: no GPUs, too few

    def run(self, batch) -> list:
        if batch.run.study.search is not None:  # trials in waves, each wave's runs in parallel
            from ..study.search import run_in_waves

            return run_in_waves(batch, run_parallel)
        return run_parallel(batch)


def run_parallel(batch) -> list:
    """Run the manifest entries `batch.todo` on free GPU sets; returns (entry, outcome) in study order.

    Per GPU set, as on one GPU: the gap before each run (`cycle_gap_s` when the cycle changes on
    that set, else `experiment_gap_s`) and the cool-down of that set's GPUs. The circuit breaker
    counts failures in the order runs end; once it trips no further run starts (runs already in
    flight finish) and the rest stay pending for `--resume`.

    With adaptive cycles (`batch.todo` is a study/adaptive.py AdaptiveTodo) each run is decided as a
    worker is about to start it, from the runs finished by then: a configuration that converged or is
    dominated has its remaining runs skipped with the reason, as under the sequential executor."""
    from ..study.adaptive import AdaptiveTodo

    study_run, writer, order, breaker = batch.run, batch.writer, batch.order, batch.breaker
    adaptive = batch.todo if isinstance(batch.todo, AdaptiveTodo) else None
    todo = list(adaptive.todo) if adaptive is not None else list(batch.todo)
    sets = plan_gpu_sets(study_run.study, [e.config for e in study_run.valid()])
    ex = study_run.study.execution
    allocator = GpuAllocator(sets, n_parallel(ex.parallel, len(sets)))
    lock, locked = threading.Lock(), _LockedWriter(writer)
    last_cycle: dict[int, int] = {}  # GPU set -> cycle of the last run it ran
    study_run.observer.notice(f"parallel: {allocator.limit} runs at once on GPU sets "
                              f"{[list(s) for s in sets[:allocator.limit]]}")

    def one(index: int, position: int):
        cycle = order[index][1]
        with lock:
            if breaker.reason:
                return None  # tripped: this run stays pending
            if adaptive is not None:
                with locked.lock:
                    if adaptive.skip(index):
                        return _SKIPPED
            set_index, gpus = allocator.acquire(position)  # never None: workers == sets in use
            previous = last_cycle.get(set_index)
            last_cycle[set_index] = cycle
        try:
            if previous is not None:
                study_run.gap(ex.cycle_gap_s if cycle != previous else ex.experiment_gap_s)
            outcome = run_one(batch, locked, index, position, gpu_ids=list(gpus))
            with lock:
                breaker.record(writer.manifest.entries[index])
            return outcome
        finally:
            with lock:
                allocator.release(set_index)  # success or failure alike frees the GPUs

    with ThreadPoolExecutor(max_workers=allocator.limit, thread_name_prefix="llem-run") as pool:
        futures = [(index, pool.submit(one, index, position)) for position, index in enumerate(todo, 1)]
        try:
            done = [(index, future.result()) for index, future in futures]
        except KeyboardInterrupt:
            # Only this thread sees Ctrl-C/SIGTERM: start no queued run, and make the running ones stop
            # their processes (their runners poll `stop_requested`) before the pool is left.
            stop_requested.set()
            for _, future in futures:
                future.cancel()
            raise
    if adaptive is not None and all(writer.manifest.entries[i].status != "pending" for i in todo):
        with locked.lock:
            adaptive.finish()  # every planned run decided: the caps and the runs that were in flight
    return [(writer.manifest.entries[index], outcome) for index, outcome in done
            if writer.manifest.entries[index].status != "pending" and outcome is not _SKIPPED]
