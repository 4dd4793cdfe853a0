"""`--dry-run`: the resolved experiment list, the run order, the runner (and image) each engine
will use, and a wall-time estimate that says where its numbers come from."""
from __future__ import annotations

import click

from ..study.expand import run_order


def print_dry_run(study, expanded, cli_runner: str | None = None) -> None:
    from ..domain.estimates import dtype_bytes, estimate_vram_bytes, read_local_model_config
    from ..runners.gpu_presence import gpu_only_unavailable

    ex = study.execution
    valid = [e for e in expanded if e.valid]
    no_gpu = gpu_only_unavailable({e.engine for e in valid}, study.images)
    click.echo(f"Study '{study.name}': {len(expanded)} configurations ({len(valid)} valid, "
               f"{len(expanded) - len(valid)} skipped) × {ex.n_cycles} cycles = {len(valid) * ex.n_cycles} runs")
    for e in expanded:
        if not e.valid:
            click.echo(f"  #{e.index}: SKIPPED {e.label}: {e.skip_reason}")
            continue
        cfg = e.config
        line = f"  #{e.index}: {cfg.summary()} [{cfg.config_hash()}]"
        model_config = read_local_model_config(cfg.model)
        width = dtype_bytes(cfg.precision, model_config) or 4
        if model_config:
            vram = estimate_vram_bytes(model_config, cfg.batch_size, cfg.max_input_tokens + cfg.max_output_tokens,
                                       width)
            if "total_bytes" in vram:
                line += f"  VRAM estimate {vram['total_bytes'] / 2**30:.2f} GiB"
            else:
                line += f"  VRAM estimate: unknown ({vram.get('unavailable_reason')})"
        else:
            line += "  VRAM estimate: unknown (no local config.json)"
        click.echo(line)
        if cfg.engine in no_gpu:
            click.echo(f"      UNAVAILABLE here (runs will be recorded failed, EngineUnavailable): {no_gpu[cfg.engine]}")
    order = run_order(len(expanded), ex.planned_cycles, ex.cycle_order, ex.shuffle_seed)
    shown = [f"#{i}c{c}" for i, c in order if expanded[i].valid]
    click.echo(f"Cycle order ({ex.cycle_order}): {' '.join(shown[:60])}{' …' if len(shown) > 60 else ''}")
    runners = print_runner_plan(study, {e.config.engine for e in valid}, cli_runner)
    print_wall_time_estimate(study, valid, runners, len(expanded))


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


def print_wall_time_estimate(study, valid, runners: dict[str, str], n_experiments: int) -> None:
    """Per configuration: seconds per run, its parts and where they come from; then the study total with
    its gaps, cool-downs and the study's own overhead (study/history.py says what is learned here)."""
    from ..domain.estimates import estimate_run_wall_time_s, read_local_model_config
    from ..study.history import cooldown_s, estimate_wall_s, history_path, load_history, study_overhead_s

    history = load_history()
    ex = study.execution
    per_run: dict[int, float] = {}
    measured_only = True
    click.echo(f"Wall-time estimate ({len(history)} runs measured on this host in {history_path()}):")
    for e in valid:
        cfg = e.config
        crude = estimate_run_wall_time_s(cfg, read_local_model_config(cfg.model))
        seconds, source, parts = estimate_wall_s(cfg, runners.get(cfg.engine), history, crude)
        measured_only &= source.startswith(("median", "scaled"))
        per_run[e.index] = seconds
        detail = "" if "run" in parts else (
            f" = start-up, import and load {parts['start-up']:.0f} s + baselines {parts['baseline']:.0f} s + warm-up "
            f"{parts['warm-up']:.0f} s ({parts['warm-up batches']:.0f} batches) + window {parts['window']:.0f} s")
        click.echo(f"  #{e.index}: {seconds:.0f} s per run × {ex.n_cycles} cycles{detail} — {source}")
    order = [(i, c) for i, c in run_order(n_experiments, ex.planned_cycles, ex.cycle_order, ex.shuffle_seed)
             if i in per_run]
    runs_s = sum(per_run[i] for i, _ in order)
    gaps_s = sum(ex.cycle_gap_s if c != prev[1] else ex.experiment_gap_s for prev, (_, c) in zip(order, order[1:]))
    cool_s, cool_source = cooldown_s(history, ex.cooldown_max_s) if ex.cooldown_to_idle else (0.0, "off")
    cool_s *= len(order)  # after every run
    overhead_s, overhead_source = study_overhead_s()
    measured_only &= overhead_source.startswith("median")
    total_s = runs_s + gaps_s + cool_s + overhead_s
    click.echo(f"  runs {runs_s:.0f} s + gaps {gaps_s:.0f} s + cool-down {cool_s:.0f} s ({cool_source}) + "
               f"study overhead {overhead_s:.0f} s ({overhead_source}; pre-flight, manifest, outputs)")
    label = "measured here" if measured_only else "partly assumed"
    click.echo(f"Estimated study wall time: {total_s / 60:.1f} min ({total_s:.0f} s; {label}; "
               "each completed study adds to the history)")
