"""The sequential executor: one run after another on this host (`execution.parallel: 1`).

Runs go in the study's execution order, with `cycle_gap_s` before a run whose cycle differs from
the previous one and `experiment_gap_s` otherwise, and stop dispatching once the circuit breaker
trips (the remaining runs stay pending for `--resume`).
"""
from __future__ import annotations

from .base import Executor
from .on_host import run_one


class SequentialExecutor(Executor):
    name = "local"

    def run(self, batch):
        ex = batch.run.study.execution
        outcomes = []
        previous_cycle = None
        for position, index in enumerate(batch.todo, 1):
            cycle = batch.order[index][1]
            if position > 1:
                batch.run.gap(ex.cycle_gap_s if cycle != previous_cycle else ex.experiment_gap_s)
            previous_cycle = cycle
            outcome = run_one(batch, batch.writer, index, position)
            entry = batch.writer.manifest.entries[index]
            outcomes.append((entry, outcome))
            if batch.breaker.record(entry):
                break
        return outcomes
