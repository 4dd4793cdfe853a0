"""The sequential executor: one run after another on this host (`execution.parallel: 1`).

Runs go in the study's execution order, with `cycle_gap_s` before a run whose cycle differs from
the previous one and `experiment_gap_s` otherwise, and stop dispatching once the circuit breaker
trips (the remaining runs stay pending for `--resume`).

Which GPUs: every run gets the same `gpus_per_run` GPUs (the largest tensor-parallel size of the
study, else 1, as under the parallel executor): the first set of the GPUs the study may use
(`execution.gpus`, else every GPU this host measures). Why not all of them: the harness measures
the GPUs its process sees, so a one-GPU engine on an 8-GPU node would publish seven idle GPUs'
energy as its own. On a host without GPUs nothing is assigned (the run measures the CPU).
"""
from __future__ import annotations

from ..errors import ConfigError
from .base import Executor
from .gpu_alloc import AllocationError, effective_gpus_per_run, gpu_sets
from .on_host import run_one


def sequential_gpu_set(study, configs: list) -> list[str] | None:
    """The GPUs every sequential run gets (None on a host without GPUs); ConfigError names the field."""
    from ..runners.gpu_presence import measurable_gpu_uuids

    ex = study.execution
    pool = [str(g) for g in ex.gpus] if ex.gpus else measurable_gpu_uuids()
    if not pool:
        return None
    try:
        return list(gpu_sets(pool, effective_gpus_per_run(ex.gpus_per_run, configs))[0])
    except AllocationError as error:
        field = "execution.gpus" if ex.gpus else "this host's GPUs"
        raise ConfigError(f"{error} ({field}: {', '.join(pool)})") from None


class SequentialExecutor(Executor):
    name = "local"
    gpu_ids: list[str] | None = None

    def check(self, run) -> None:
        self.gpu_ids = sequential_gpu_set(run.study, run.expanded.tensor_parallel_configs())
        if self.gpu_ids:
            run.observer.notice(f"each run is given and measures GPU(s) {', '.join(self.gpu_ids)}")

    def run(self, batch):
        ex = batch.run.study.execution
        outcomes = []
        previous_cycle = None
        for position, index in enumerate(batch.todo, 1):
            cycle = batch.order[index][1]
            if position > 1:
                batch.run.gap(ex.cycle_gap_s if cycle != previous_cycle else ex.experiment_gap_s)
            previous_cycle = cycle
            outcome = run_one(batch, batch.writer, index, position, gpu_ids=self.gpu_ids)
            entry = batch.writer.manifest.entries[index]
            outcomes.append((entry, outcome))
            if batch.breaker.record(entry):
                break
        return outcomes
