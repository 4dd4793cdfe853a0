"""`--dry-run`: the resolved experiment list, the run order, and labelled estimates."""
from __future__ import annotations

import click

from ..study.expand import run_order


def print_dry_run(study, expanded) -> None:
    from ..domain.estimates import (dtype_bytes, estimate_run_wall_time_s, estimate_vram_bytes,
                                    read_local_model_config)

    from ..runners.gpu_presence import gpu_only_unavailable

    ex = study.execution
    valid = [e for e in expanded if e.config is not None]
    no_gpu = gpu_only_unavailable({e.config.engine for e in valid}, study.images)
    click.echo(f"Study '{study.name}': {len(expanded)} configurations ({len(valid)} valid, "
               f"{len(expanded) - len(valid)} skipped) × {ex.n_cycles} cycles = {len(valid) * ex.n_cycles} runs")
    total_s = 0.0
    for e in expanded:
        if e.config is None:
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
        total_s += estimate_run_wall_time_s(cfg, model_config)["estimated_wall_time_s"] * ex.n_cycles
    order = run_order(len(expanded), ex.n_cycles, ex.cycle_order, ex.shuffle_seed)
    shown = [f"#{i}c{c}" for i, c in order if expanded[i].config is not None]
    click.echo(f"Cycle order ({ex.cycle_order}): {' '.join(shown[:60])}{' …' if len(shown) > 60 else ''}")
    click.echo(f"Estimated study wall time (crude estimate, not a measurement): {total_s / 60:.1f} min")
