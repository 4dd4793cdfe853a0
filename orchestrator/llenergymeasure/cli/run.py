"""`llem run`: a study YAML, or one experiment from flags (flags override the YAML).

`--executor` is looked at in one place, `choose_launch`: it checks the flags that depend on it
and returns how the study is started and shown; the rest of the command never asks again.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import click

from .run_help import EXAMPLES, GroupedCommand

@dataclass(frozen=True)
class Launch:
    """What `--executor` chose: how progress is shown, and how the study is started and reported."""

    observer: Callable[[bool], object]  # quiet -> StudyObserver
    start: Callable[..., int]           # (run, resume_dir, skip_failed, quiet) -> exit code


def run_here(run, resume_dir, skip_failed: bool, quiet: bool, wait_for_devices: bool = False) -> int:
    """Sequential or parallel on this host, as `execution.parallel` says; returns the exit code."""
    from ..executors import for_study

    result = run.execute(for_study(run.study), resume_dir=resume_dir, skip_failed=skip_failed,
                         wait_for_devices=wait_for_devices)
    if quiet:
        click.echo(result.study_dir)
    if result.status == "stopped":
        return 1
    return 0 if result.summary.completed or not result.summary.failed else 1


def choose_launch(executor: str | None, previous, resume_dir, slurm_flags: dict, runner: str | None,
                  keep_failed: bool, wait_for_devices: bool) -> Launch:
    """The executor for this invocation (a Slurm study resumes on Slurm unless `--executor local`)."""
    from ..errors import ConfigError
    from .progress import SlurmObserver, make_observer

    if previous is not None:
        if executor is None and previous.executor == "slurm":
            executor = "slurm"
        if executor == "local" and any(e.status in ("submitted", "running") for e in previous.entries) \
                and previous.executor == "slurm":
            raise ConfigError(f"{resume_dir} still has runs in Slurm (`llem status {resume_dir}`); wait for them, "
                              "or scancel them, before resuming it locally")
    given = [flag for flag, value in slurm_flags.items() if value is not None]
    if given and executor != "slurm":
        raise ConfigError(f"{', '.join(given)} only apply with --executor slurm")
    if executor != "slurm":
        return Launch(make_observer, partial(run_here, wait_for_devices=wait_for_devices))
    if runner == "docker" or keep_failed or wait_for_devices:
        flag = "--runner docker" if runner == "docker" else "--keep-failed" if keep_failed else "--wait-for-devices"
        raise ConfigError(f"{flag} does not apply with --executor slurm: Slurm tasks run the local harness and "
                          "Slurm allocates the devices")
    from ..executors.slurm import SlurmOptions
    from .slurm_cmd import submit_and_report

    options = SlurmOptions(partition=slurm_flags["--slurm-partition"],
                           gpus_per_task=slurm_flags["--slurm-gpus-per-task"],
                           time_limit=slurm_flags["--slurm-time"], account=slurm_flags["--slurm-account"],
                           array_limit=slurm_flags["--slurm-array-limit"],
                           sbatch_args=list(slurm_flags["--slurm-sbatch-arg"] or ())).check()
    return Launch(SlurmObserver, partial(submit_and_report, options=options, wait=bool(slurm_flags["--wait"])))


def _check_plan_size(study, n_runs: int) -> None:
    """A study larger than execution.max_runs starts only with --yes: a sweep of 12,800 points × 10
    cycles is more often a slip than a plan, and `--dry-run` shows what it would cost."""
    from ..domain.study import LARGE_PLAN_RUNS
    from ..errors import ConfigError

    limit = study.execution.max_runs or LARGE_PLAN_RUNS
    if n_runs > limit:
        raise ConfigError(f"execution.max_runs: the study plans {n_runs:,} runs, more than {limit:,}; look at "
                          f"`llem run STUDY --dry-run` first, then add --yes, or set execution.max_runs: {n_runs}")


@click.command("run", cls=GroupedCommand, epilog=EXAMPLES)
@click.argument("config", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("-m", "--model", help="HF hub id or local model directory")
@click.option("-e", "--engine", "-b", "--backend", "engine", help="transformers (alias: pytorch), vllm, tensorrt_llm, llama_cpp")
@click.option("-d", "--dataset", help="'synthetic', a .jsonl file, or hf:<id>[:split]")
@click.option("-n", "--n-prompts", type=int, help="number of prompts (requests)")
@click.option("--batch-size", type=int, help="requests per static batch")
@click.option("-p", "--precision", type=click.Choice(["auto", "fp32", "fp16", "bf16"]))
@click.option("--max-input-tokens", type=int)
@click.option("--max-output-tokens", type=int)
@click.option("--cycles", type=click.IntRange(1, 1000), help="repeat every configuration this many times")
@click.option("-o", "--output", type=click.Path(file_okay=False), help="results directory")
@click.option("--runner", type=click.Choice(["local", "docker"]), help="force one runner for every engine")
@click.option("--keep-failed", is_flag=True, help="Docker: keep a failed run's container for inspection")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False, path_type=Path),
              help="continue STUDY_DIR from its manifest (completed runs are kept, the rest rerun)")
@click.option("--skip-failed", is_flag=True, help="with --resume: leave failed runs failed")
@click.option("--wait-for-devices", is_flag=True,
              help="if another llem holds this study's GPUs (or the CPU), wait instead of exiting")
@click.option("--executor", type=click.Choice(["local", "slurm"]),
              help="who runs the runs: this process (default), or Slurm as one job array (see llem status)")
@click.option("--slurm-partition", help="Slurm partition (sbatch --partition)")
@click.option("--slurm-gpus-per-task", type=click.IntRange(0, 64),
              help="GPUs per run (default: execution.gpus_per_run, else the largest tensor_parallel_size, else 1); "
                   "0 = CPU-only tasks, each given a whole node")
@click.option("--slurm-time", help="time limit per task, Slurm syntax (default: the run's own timeout + 5 min)")
@click.option("--slurm-account", help="Slurm account to charge (sbatch --account)")
@click.option("--slurm-array-limit", type=click.IntRange(1, 100000), help="at most N runs at once (--array=...%N)")
@click.option("--slurm-sbatch-arg", "slurm_sbatch_args", multiple=True,
              help="any further sbatch argument, e.g. --slurm-sbatch-arg=--qos=high (repeatable)")
@click.option("--wait", "wait_slurm", is_flag=True, help="with --executor slurm: stay until Slurm has run the study")
@click.option("--dry-run", is_flag=True, help="validate, check and print the plan and its wall time; run nothing "
              "(exit 2 naming what would fail; with --verbose every configuration of a large plan)")
@click.option("-y", "--yes", is_flag=True, help="start a study larger than execution.max_runs (default 1,000 runs)")
@click.option("-q", "--quiet", is_flag=True, help="only errors and the study directory")
@click.option("-v", "--verbose", is_flag=True, help="tracebacks and debug logging")
def run_cmd(config, model, engine, dataset, n_prompts, batch_size, precision, max_input_tokens,
            max_output_tokens, cycles, output, runner, keep_failed, resume_dir, skip_failed, wait_for_devices,
            executor, slurm_partition, slurm_gpus_per_task, slurm_time, slurm_account, slurm_array_limit,
            slurm_sbatch_args, wait_slurm, dry_run, yes, quiet, verbose):
    """Run a study (CONFIG.yaml) or one experiment given by flags."""
    import logging

    from ..errors import ConfigError
    from ..runners.resolve import FORCE_DOCKER_ENV
    from ..study.loader import load_yaml, study_from_mapping
    from ..study.study_run import StudyRun

    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING)
    overrides = {"model": model, "engine": engine, "dataset": dataset, "n_prompts": n_prompts,
                 "batch_size": batch_size, "precision": precision, "max_input_tokens": max_input_tokens,
                 "max_output_tokens": max_output_tokens}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if skip_failed and resume_dir is None:
        raise ConfigError("--skip-failed only applies with --resume STUDY_DIR")
    previous = None
    if resume_dir is not None:
        from ..study.resume import read_manifest, read_study_snapshot

        previous = read_manifest(resume_dir)  # a missing or corrupt manifest is named before anything else
    slurm_flags = {"--slurm-partition": slurm_partition, "--slurm-gpus-per-task": slurm_gpus_per_task,
                   "--slurm-time": slurm_time, "--slurm-account": slurm_account,
                   "--slurm-array-limit": slurm_array_limit, "--slurm-sbatch-arg": slurm_sbatch_args or None,
                   "--wait": wait_slurm or None}
    launch = choose_launch(executor, previous, resume_dir, slurm_flags, runner, keep_failed, wait_for_devices)
    if resume_dir is not None and config is None and not overrides:
        snapshot, snapshot_dirs = read_study_snapshot(resume_dir)
        data = snapshot.model_dump(mode="json", exclude_none=True)
    elif config is None and "model" not in overrides:
        raise ConfigError("give a study YAML (llem run study.yaml) or at least --model/-m (llem run -m DIR -n 4)")
    else:
        data = load_yaml(config) if config else {"name": "experiment", "base": {}}
    study = study_from_mapping(data, source=str(config) if config else "command-line flags")
    for key, value in overrides.items():  # flags override the YAML, including a sweep over the same field
        study.base[key] = value
        study.sweep.pop(key, None)
    if cycles is not None:
        study.execution.n_cycles = cycles
    if output:
        study.results_dir = output
    if keep_failed:
        study.docker.keep_failed = True
    study = study_from_mapping(study.model_dump(exclude_none=True, exclude_unset=False),  # python mode: .inf stays .inf
                               source=str(config) if config else "command-line flags")
    forced = "docker" if os.environ.get(FORCE_DOCKER_ENV) == "1" else runner
    search_dirs = [config.resolve().parent] if config else []
    if resume_dir is not None and config is None and not overrides:
        search_dirs = snapshot_dirs
    observer = launch.observer(quiet)
    start_cwd = None
    if resume_dir is not None:  # relative paths resolve as at the first start, whatever the directory now
        from ..study.resume import snapshot_cwd

        start_cwd = snapshot_cwd(resume_dir)
    scan = None
    if dry_run:  # the dry-run reads every configuration in the plan's own validation pass
        from .dry_run import SHOWN_LINES
        from .dry_run_scan import PlanScan

        scan = PlanScan(None if verbose else SHOWN_LINES)
    run = StudyRun(study, observer=observer, cli_runner=forced, search_dirs=search_dirs, cwd=start_cwd,
                   visit=scan.visit if scan is not None else None)
    if dry_run:
        from .dry_run import print_dry_run

        host_problems = print_dry_run(study, run.expanded, forced, scan=scan, verbose=verbose)
        from .dry_run_checks import start_problems

        problems = start_problems(study, run) + host_problems
        if problems:
            raise ConfigError(f"--dry-run: {len(problems)} problem(s) would stop or fail runs of this study:\n  "
                              + "\n  ".join(problems))
        return 0
    if not run.valid():
        reasons = "; ".join(f"#{e.index}: {e.skip_reason}" for e in run.expanded if e.skip_reason)
        raise ConfigError(f"no valid experiment in the study: {reasons}")
    if resume_dir is None and not yes:
        _check_plan_size(study, len(run.valid()) * study.execution.n_cycles)
    return launch.start(run, resume_dir, skip_failed, quiet)
