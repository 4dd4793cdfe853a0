"""`--dry-run`: the resolved experiment list, the run order, the runner (and image) each engine
will use, and a wall-time estimate that says where its numbers come from."""
from __future__ import annotations

import click

from ..study.expand import run_order


SHOWN_LINES = 200  # configurations listed one by one; past that a summary (--verbose lists all)
HEAD_LINES = 20    # configurations listed before the summary of a larger plan
LARGE_PLAN_DAYS = 1.0  # an estimate above this many days is warned about


def print_dry_run(study, expanded, cli_runner: str | None = None, scan=None, verbose: bool = False) -> list[str]:
    """Print the plan; return the problems that depend on this host (each a line naming field and fix).

    Configurations are numbered from 1, as in every other command and the report. `scan` is the
    PlanScan the plan's validation pass filled (cli/dry_run_scan.py); without one, it is filled here."""
    from ..runners.gpu_presence import gpu_only_unavailable
    from .dry_run_scan import PlanScan

    if scan is None:
        scan = PlanScan(None)
        for e in expanded:
            if e.valid:
                scan.visit(e.index, e.config)
    ex = study.execution
    n = len(expanded)
    n_valid = n - len(expanded.skip_reasons)
    engines = {engine for engine in expanded.engines if engine}
    no_gpu = gpu_only_unavailable(engines, study.images)
    click.echo(f"Study '{study.name}': {n:,} configurations ({n_valid:,} valid, "
               f"{n - n_valid:,} skipped) × {ex.planned_cycles} cycles = {n_valid * ex.planned_cycles:,} runs"
               + (" at most (adaptive cycles)" if ex.target_ci_pct is not None else ""))
    shown = n if verbose or n <= SHOWN_LINES else HEAD_LINES
    for e in expanded[:shown]:
        if not e.valid:
            click.echo(f"  #{e.index + 1}: SKIPPED {e.label}: {e.skip_reason}")
            continue
        click.echo(f"  #{e.index + 1}: {e.summary} [{e.config_hash}]  {scan.vram.get(e.index, '')}".rstrip())
        if e.index in scan.window_warnings:
            click.echo(f"      WARNING: {scan.window_warnings[e.index]}")
        if e.engine in no_gpu:
            click.echo(f"      UNAVAILABLE here (runs will be recorded failed, EngineUnavailable): {no_gpu[e.engine]}")
    if shown < n:
        skipped_later = sum(1 for i in expanded.skip_reasons if i >= shown)
        click.echo(f"  … {n - shown:,} more configurations ({skipped_later:,} of them skipped); "
                   "--verbose lists every one")
    order = run_order(n, ex.planned_cycles, ex.cycle_order, ex.shuffle_seed)
    skips = expanded.skip_reasons
    listed = []
    for i, c in order:
        if i not in skips:
            listed.append(f"#{i + 1}c{c}")
            if len(listed) > 60:
                break
    click.echo(f"Cycle order ({ex.cycle_order}): {' '.join(listed[:60])}{' …' if len(listed) > 60 else ''}")
    runners = print_runner_plan(study, engines, cli_runner)
    total_s = print_wall_time_estimate(study, expanded, scan, runners, order, shown)
    _warn_if_large(study, n_valid * ex.planned_cycles, total_s)
    return scan.environment_problems(runners, n_valid, frozenset(no_gpu))


def _warn_if_large(study, n_runs: int, total_s: float) -> None:
    """A plan larger than a person usually means: say so, and what a real run will ask for."""
    from ..domain.study import LARGE_PLAN_RUNS

    limit = study.execution.max_runs or LARGE_PLAN_RUNS
    days = total_s / 86_400
    if n_runs > limit:
        click.echo(f"warning: {n_runs:,} runs, more than execution.max_runs ({limit:,}); a real run starts only "
                   f"with --yes, or with execution.max_runs: {n_runs} in the study")
    if days > LARGE_PLAN_DAYS:
        click.echo(f"warning: the estimate is {days:,.1f} days of runs; remove sweep values or cycles if that "
                   "is more than meant")


def print_runner_plan(study, engines: set[str], cli_runner: str | None) -> dict[str, str]:
    """Which runner each engine resolves to (and why), its image and whether that image exists."""
    from ..errors import PreFlightError
    from ..runners.resolve import engine_installed, resolve_runners

    if not engines:
        return {}
    click.echo("Runners:")
    try:
        plan = resolve_runners(study, engines, cli_runner)
    except PreFlightError as exc:
        click.echo(f"  the study would not start: {exc}")
        return {}
    try:
        for engine in sorted(engines):
            if engine in plan.unavailable:
                click.echo(f"  {engine}: UNAVAILABLE: {plan.unavailable[engine]}")
                continue
            runner, source = plan.runners[engine], plan.sources[engine]
            if runner == "local":
                click.echo(f"  {engine}: local ({source}); engine installed here: "
                           f"{'yes' if engine_installed(engine) else 'no'}")
            else:
                image = plan.images[engine]
                click.echo(f"  {engine}: docker ({source}), image {image}: {_image_state(image, engine)}")
        for message in plan.notices + plan.warnings:
            click.echo(f"  note: {message}")
        return dict(plan.runners)
    finally:
        plan.close()


def _image_state(image: str, engine: str) -> str:
    from ..errors import PreFlightError
    from ..runners.docker_support import docker_client

    try:
        client = docker_client(timeout_s=10)
    except PreFlightError as exc:
        return f"cannot check ({exc})"
    try:
        import docker

        try:
            client.images.get(image)
            return "present"
        except docker.errors.ImageNotFound:
            return f"NOT BUILT (llem images build {engine})"
    finally:
        client.close()


def print_wall_time_estimate(study, expanded, scan, runners: dict[str, str], order, shown: int) -> float:
    """Per configuration: seconds per run, its parts and where they come from; then the study total with
    its gaps, cool-downs and the study's own overhead (study/history.py says what is learned here).
    Returns the total in seconds. Configurations alike in what the estimate reads share one estimate."""
    from ..study.history import cooldown_s, history_path, load_history, study_overhead_s

    history = load_history()
    ex = study.execution
    estimates, _ = scan.estimates(runners)
    per_run: dict[int, float] = {}
    measured_only = all(source.startswith(("median", "scaled")) for _, source, _ in estimates.values())
    click.echo(f"Wall-time estimate ({len(history)} runs measured on this host in {history_path()}):")
    for index, key in scan.estimate_of:
        seconds, source, parts = estimates[key]
        per_run[index] = seconds
        if index >= shown:
            continue
        detail = "" if "run" in parts else (
            f" = start-up, import and load {parts['start-up']:.0f} s + baselines {parts['baseline']:.0f} s + warm-up "
            f"{parts['warm-up']:.0f} s ({parts['warm-up batches']:.0f} batches) + window {parts['window']:.0f} s")
        click.echo(f"  #{index + 1}: {seconds:.0f} s per run × {ex.planned_cycles} cycles{detail} — {source}")
    if len(per_run) > shown and shown < len(expanded):
        values = sorted(per_run.values())
        click.echo(f"  … {len(per_run) - sum(1 for i in per_run if i < shown):,} more configurations: "
                   f"{values[0]:.0f} to {values[-1]:.0f} s per run")
    runs_s, gaps_s, prev_cycle, count = 0.0, 0.0, None, 0
    for i, c in order:
        seconds = per_run.get(i)
        if seconds is None:
            continue
        runs_s += seconds
        if prev_cycle is not None:
            gaps_s += ex.cycle_gap_s if c != prev_cycle else ex.experiment_gap_s
        prev_cycle, count = c, count + 1
    cool_s, cool_source = cooldown_s(history, ex.cooldown_max_s) if ex.cooldown_to_idle else (0.0, "off")
    cool_s *= count  # after every run
    overhead_s, overhead_source = study_overhead_s()
    measured_only &= overhead_source.startswith("median")
    total_s = runs_s + gaps_s + cool_s + overhead_s
    click.echo(f"  runs {runs_s:.0f} s + gaps {gaps_s:.0f} s + cool-down {cool_s:.0f} s ({cool_source}) + "
               f"study overhead {overhead_s:.0f} s ({overhead_source}; pre-flight, manifest, outputs)")
    label = "measured here" if measured_only else "partly assumed"
    click.echo(f"Estimated study wall time: {_duration(total_s)} ({total_s:.0f} s; {label}; "
               "each completed study adds to the history)")
    return total_s


def _duration(seconds: float) -> str:
    if seconds >= 2 * 86_400:
        return f"{seconds / 86_400:,.1f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.1f} min"
