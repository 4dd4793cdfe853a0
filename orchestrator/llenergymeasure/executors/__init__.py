"""Executors: how a study's planned runs are executed. One interface, three implementations.

The plan — expansion, order, manifest, resume rules, locks, run directories, summary, history,
cool-down — lives in study/ and is the same for every executor. An executor (base.Executor) is
handed the planned entries to run now and reports each outcome to the manifest writer and the
observer:

- sequential.SequentialExecutor — one run after another on this host (`execution.parallel: 1`);
- parallel.ParallelExecutor — several runs at once on disjoint GPU sets (`execution.parallel`);
- slurm_submit.SlurmExecutor — one Slurm array task per run (`llem run --executor slurm`); the
  collector (slurm_collect.py, `llem status`) turns the tasks' files into manifest entries.

What each rule means under each executor (the one place where they differ):

| rule | sequential | parallel | Slurm |
| --- | --- | --- | --- |
| what a run is | `runners` on this host, one process per run | the same, each on its own GPU set | the local runner inside one array task on the node Slurm picks |
| manifest writer | this process | this process, one lock for all threads | the collector, under the study lock |
| resume | reruns pending, interrupted, failed (unless `--skip-failed`); a `running` entry left by a dead process becomes interrupted first | the same | the same, after collecting; runs still queued or running in Slurm are left alone |
| circuit breaker | stops dispatching after N counted failures in a row | the same, in the order runs end; runs in flight finish | does not apply: every run is submitted at once |
| gaps | `cycle_gap_s` when the cycle changes, else `experiment_gap_s` | the same, per GPU set | not applied: Slurm places the tasks |
| cool-down | the run's GPUs, before the next run | per GPU set | not applied |
| idle baseline | reused by later runs on the same GPUs, runner and image | per GPU set | measured by each task |
| GPU lock | held for the whole study | held for the whole study | none: Slurm allocates the devices |
| study summary | when the last run ends | when the last run ends | when the collector finds nothing left in Slurm |
| adaptive cycles, search | each run decided after the previous outcome (study/adaptive.py, study/search.py) | adaptive cycles: each run decided as it starts, from the runs finished by then (runs in flight when a configuration stops finish and are recorded); a search in waves of trials, each wave in parallel | in waves, one array each, the next decided and submitted by the collector: adaptive cycles take every configuration to its minimum, then one run each per wave; a search `trials_per_wave` trials |
"""
from __future__ import annotations


def for_study(study):
    """The executor that runs `study` on this host: parallel when `execution.parallel` is not 1."""
    if study.execution.parallel != 1:
        from .parallel import ParallelExecutor

        return ParallelExecutor()
    from .sequential import SequentialExecutor

    return SequentialExecutor()
