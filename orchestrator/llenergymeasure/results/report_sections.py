"""Report sections about the numbers: the study's design, the summary table, the per-GPU comparison.

Configuration numbers (#1, #2 ...) are the order of `configuration_stats`, the same as the rows
of `llem results show`, and the labels of every figure.
"""
from __future__ import annotations

import json
from collections import Counter
from typing import Any

from .report_html import bullet_list, columns, esc, key_values, para, table
from .stats import STAT_METRICS

SUMMARY_METRICS = ("energy_per_output_token_j", "energy_per_output_token_adjusted_j", "output_tokens_per_s",
                   "ttft_s.p50", "e2e_latency_s.p50", "energy.mean_power_w")
GPU_METRICS = ("energy_per_output_token_j", "output_tokens_per_s", "ttft_s.p50", "energy.mean_power_w")
STATUSES = ("completed", "failed", "interrupted", "skipped", "pending", "running", "submitted")


def fmt(value: float | None) -> str:
    from .number_format import number

    return number(value)


def stat_cell(stats: dict[str, Any], metric: str) -> str:
    """Mean ± half-width and the 95% interval as every command writes them (results/number_format.py:
    cut at 0 and marked † for a non-negative quantity, `wide` where wider than the mean), or why none."""
    from .number_format import WIDE_MARK, has_interval, interval, is_wide, mean_pm

    if stats["mean"] is None:
        reason = stats.get("unavailable_reason") or "not measured"
        return f'<span class="muted" title="{esc(reason)}">—</span>'
    if not has_interval(stats):
        text = esc(fmt(stats["mean"]))
        text += f'<span class="ci">n = {stats["n"]} &lt; 3: no interval</span>'
    else:
        text = esc(mean_pm(stats["mean"], stats["ci95_half_width"]))
        text += f'<span class="ci">95% CI {esc(interval(stats, metric))}</span>'
        if is_wide(stats):
            text += f'<span class="flag">{WIDE_MARK}</span>'
    if stats.get("cv_exceeds_threshold"):
        text += f'<span class="flag">CV {stats["cv"]:.2f}</span>'
    return text


def _metric_head(metric: str) -> str:
    unit, label = STAT_METRICS[metric]
    return f"{label} [{unit}]"


def design_section(data, configurations: list[dict[str, Any]], snapshot: dict[str, Any] | None) -> str:
    """Cycles and order, the sweep, the base settings, and every configuration with its run outcomes."""
    manifest = data.manifest
    execution = (snapshot or {}).get("execution") or {}
    study = "<h3>Study</h3>" + key_values([
        ("study id", manifest.study_id), ("directory", str(data.study_dir)), ("status", manifest.status),
        ("started", manifest.created_at), ("last update", manifest.updated_at), ("executor", manifest.executor),
        ("cycles", manifest.n_cycles), ("cycle order", manifest.cycle_order),
        ("shuffle seed", execution.get("shuffle_seed") if manifest.cycle_order == "shuffled" else None),
        ("gap between experiments [s]", execution.get("experiment_gap_s")),
        ("gap between cycles [s]", execution.get("cycle_gap_s")),
        ("cool down to idle between runs", execution.get("cooldown_to_idle")),
        ("stopped early because", manifest.stop_reason),
        ("resumed", f"{len(manifest.resumes)} time(s)" if manifest.resumes else None),
    ])
    if snapshot is None:
        design = para("The study file snapshot (study.json) is absent: the settings are shown through each "
                      "configuration below.", "muted small")
    else:
        sweep = snapshot.get("sweep") or {}
        design = ("<h3>Sweep</h3>" + key_values((k, ", ".join(map(_plain, v))) for k, v in sweep.items())
                  if sweep else "")
        if snapshot.get("experiments"):
            design += para(f"{len(snapshot['experiments'])} explicit experiment(s) besides the sweep.")
        base = _flatten(snapshot.get("base") or {})
        if base:
            design += "<h3>Base settings</h3>" + key_values((k, _plain(v)) for k, v in base.items())
    return "\n".join([columns(study, design),
                      "<h3>Configurations</h3>" + _configuration_table(manifest, configurations)])


def _plain(value: Any) -> str:
    """A setting as written in a study file: strings bare, everything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def _configuration_table(manifest, configurations) -> str:
    """Every configuration the manifest planned: its number (when it has results), runner, outcomes."""
    numbers = {c["config_hash"]: i for i, c in enumerate(configurations, start=1)}
    counts: dict[str, Counter] = {c["config_hash"]: Counter() for c in configurations}
    labels = {c["config_hash"]: (c["config_summary"], None) for c in configurations}
    for entry in manifest.entries:
        key = entry.config_hash or f"summary:{entry.config_summary}"
        counts.setdefault(key, Counter())[entry.status] += 1
        if labels.get(key, (None, None))[1] is None:
            labels[key] = (entry.config_summary, entry.runner)
    rows = []
    for key, outcome in counts.items():
        summary, runner = labels[key]
        rows.append((esc(f"#{numbers[key]}" if key in numbers else "no result"), esc(summary),
                     f"<code>{esc('' if key.startswith('summary:') else key)}</code>", esc(runner or "—"),
                     esc(", ".join(f"{outcome[s]} {s}" for s in STATUSES if outcome[s]) or "—")))
    return table(("#", "configuration", "config hash", "runner", "runs"), rows)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value} if prefix else {}


def summary_section(configurations: list[dict[str, Any]]) -> str:
    """The headline table (mean, 95% CI or why none), then every measured metric in a fold."""
    metrics = [m for m in SUMMARY_METRICS if any(c["metrics"][m]["mean"] is not None for c in configurations)]
    rows = []
    for number, conf in enumerate(configurations, start=1):
        few = f'<span class="flag">fewer than {conf["min_runs"]}</span>' if conf.get("few_runs") else ""
        if conf.get("readings") == "replayed":
            few += '<span class="flag">replayed readings</span>'
        if conf.get("flagged_runs"):
            few += f'<span class="flag">{len(conf["flagged_runs"])} not comparable</span>'
        rows.append((esc(f"#{number}"), f"{esc(conf['config_summary'])}<span class='ci'>{esc(conf['config_hash'])}</span>",
                     esc(conf["n_runs"]) + few, *[stat_cell(conf["metrics"][m], m) for m in metrics]))
    head = ("#", "configuration", "runs", *[_metric_head(m) for m in metrics])
    parts = [table(head, rows, numeric=range(2, 3 + len(metrics)))]
    parts.append(para("Mean across cycles; 95% confidence interval of the mean (Student's t, n − 1 degrees of "
                      "freedom). With fewer than 3 runs no interval is given. † the interval reaches below zero "
                      "for a quantity that cannot be negative: it is shown cut at 0 and is too wide to rely on; wide: the "
                      "interval is wider than the mean itself. "
                      "CV: coefficient of variation across runs, shown where it exceeds the threshold.", "muted small"))
    unmeasured = {m: configurations[0]["metrics"][m].get("unavailable_reason") for m in SUMMARY_METRICS
                  if m not in metrics and configurations}
    if unmeasured:
        parts.append(bullet_list([f"{_metric_head(m)}: not measured ({why or 'no run measured it'})"
                                  for m, why in unmeasured.items()], "muted small"))
    every = [m for m in STAT_METRICS if any(c["metrics"][m]["mean"] is not None for c in configurations)]
    all_rows = [(f"<code>{esc(m)}</code>", esc(STAT_METRICS[m][0]), *[stat_cell(c["metrics"][m], m) for c in configurations])
                for m in every]
    parts.append("<details><summary>Every measured metric</summary>" + table(
        ("metric", "unit", *[f"#{i}" for i in range(1, len(configurations) + 1)]), all_rows,
        numeric=range(2, 2 + len(configurations))) + "</details>")
    return "\n".join(parts)


def gpu_set_letters(groups: list[dict[str, Any]]) -> dict[str, str]:
    """GPU set -> A, B, ... in order of first appearance (figures carry the letter, not the UUIDs)."""
    letters: dict[str, str] = {}
    for group in groups:
        if group["gpu_set"] not in letters:
            n = len(letters)
            letters[group["gpu_set"]] = chr(ord("A") + n) if n < 26 else f"S{n + 1}"
    return letters


def gpu_section_tables(results, groups: list[dict[str, Any]], letters: dict[str, str]) -> str:
    """Which GPUs each set is, then each configuration's figures per set."""
    from .tables import gpu_set

    names: dict[str, set[str]] = {}
    hosts: dict[str, set[str]] = {}
    for result in results:
        key = gpu_set(result)
        names.setdefault(key, set()).update(g.name or "?" for g in result.environment.gpus)
        hosts.setdefault(key, set()).add(result.environment.hostname or "?")
    sets = table(("set", "GPU set (UUIDs, or ids assigned)", "GPU model", "host"), [
        (esc(letter), f"<code>{esc(key)}</code>", esc(", ".join(sorted(names.get(key, ()))) or "—"),
         esc(", ".join(sorted(hosts.get(key, ()))))) for key, letter in letters.items()])
    if len(letters) < 2:
        return sets + para("Every run ran on this one GPU set: there is no comparison across GPUs in this study.",
                           "muted")
    rows = [(esc(f"#{g['number']}"), esc(letters[g["gpu_set"]]), esc(g["n_runs"]),
             *[stat_cell(g["metrics"][m], m) for m in GPU_METRICS]) for g in groups]
    return sets + table(("#", "set", "runs", *[_metric_head(m) for m in GPU_METRICS]), rows,
                        numeric=range(2, 3 + len(GPU_METRICS)))
