"""`llem results pareto DIR [--slo NAME=VALUE ...] [--x METRIC] [--y METRIC] [--throughput METRIC | --no-throughput]`.

The front of energy (`--y`) against a latency figure (`--x`) and, where measured, a throughput
(`--throughput`, default output tokens/s, maximised): three objectives unless `--no-throughput`.

Exit 0 with the front and, when an SLO is given (here or as `slo:` in the study), the least-energy
configuration that meets it with its margins, or "none meets it". The rules (noise-aware
dominance, what "meets" means) are results/pareto.py's and are printed with the answer.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


def _parse_slo(items: tuple[str, ...]) -> dict[str, float] | None:
    from ..domain.decision import check_slo
    from ..errors import ConfigError

    if not items:
        return None
    slo: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            slo[name.strip()] = float(value)
            if not sep:
                raise ValueError
        except ValueError:
            raise ConfigError(f"--slo: '{item}' is not NAME=VALUE; write e.g. --slo ttft_p90_s=0.2") from None
    try:
        return check_slo(slo)
    except ValueError as exc:
        raise ConfigError(f"--{exc}") from None


def _study_settings(study_dir: Path) -> tuple[dict | None, dict | None]:
    """(slo, carbon) of the study as it started (study.json), or (None, None)."""
    from ..errors import ConfigError
    from ..results.load import read_study_snapshot

    try:
        study, _ = read_study_snapshot(study_dir)
    except ConfigError:
        return None, None
    return study.slo, study.carbon.model_dump() if study.carbon else None


def _interval(stats: dict[str, Any]) -> str:
    if stats["mean"] is None:
        return "—"
    text = f"{stats['mean']:.4g}"
    if stats.get("ci95_low") is not None:
        text += f" [{stats['ci95_low']:.4g}, {stats['ci95_high']:.4g}]"
    else:
        text += f" (n={stats['n']}: no interval)"
    return text


@click.command("pareto")
@click.argument("study_dir", type=click.Path(path_type=Path))
@click.option("--slo", "slo_items", multiple=True, metavar="NAME=VALUE",
              help="a latency target, e.g. ttft_p90_s=0.2 or tpot_p90_s=0.05 (repeatable; replaces the study's slo:)")
@click.option("--x", "x_metric", default=None, metavar="METRIC",
              help="the latency or throughput axis (default: TTFT p90, else TPOT p90, e2e p90, output tokens/s)")
@click.option("--y", "y_metric", default="energy_per_output_token_j", show_default=True, metavar="METRIC",
              help="the energy axis (e.g. energy_per_request_j)")
@click.option("--throughput", "throughput_metric", default=None, metavar="METRIC",
              help="the throughput objective, maximised (default: output_tokens_per_s where every configuration "
                   "measured it)")
@click.option("--no-throughput", is_flag=True, help="a front of two objectives: energy against --x only")
@click.option("--json", "as_json", is_flag=True, help="print the front and the answer as JSON")
@click.option("--cv-threshold", type=click.FloatRange(min=0.0, min_open=True), default=0.1, show_default=True,
              help="flag a metric whose coefficient of variation exceeds this")
def pareto_cmd(study_dir: Path, slo_items: tuple[str, ...], x_metric: str | None, y_metric: str,
               throughput_metric: str | None, no_throughput: bool, as_json: bool, cv_threshold: float) -> None:
    """The Pareto front of energy against latency and throughput (noise-aware) and the least-energy
    configuration under an SLO."""
    from ..errors import ConfigError, StudyError
    from ..results.carbon import carbon_section
    from ..results.load import load_study
    from ..results.pareto import AUTO, check_axis, maximised, pareto_front
    from ..results.stats import STAT_METRICS, configuration_stats
    from .console import make_console
    from rich.markup import escape

    slo = _parse_slo(slo_items)
    if x_metric:
        check_axis(x_metric, "--x")
    check_axis(y_metric, "--y")
    if throughput_metric and no_throughput:
        raise ConfigError("--throughput and --no-throughput: give one or the other")
    if throughput_metric:
        check_axis(throughput_metric, "--throughput")
        if not maximised(throughput_metric) or throughput_metric in (x_metric, y_metric):
            raise ConfigError(f"--throughput: '{throughput_metric}' is not a throughput distinct from the axes; "
                              "write e.g. --throughput output_tokens_per_s or --throughput requests_per_s")
    throughput = None if no_throughput else (throughput_metric or AUTO)
    data = load_study(study_dir)
    if not data.results:
        raise StudyError(f"{study_dir} has no completed runs; manifest status: {data.manifest.status}")
    study_slo, carbon = _study_settings(study_dir)
    configurations = configuration_stats(data.results, cv_threshold=cv_threshold)
    carbon_figs = carbon_section(configurations, carbon)
    front = pareto_front(configurations, x_metric, y_metric, slo if slo is not None else study_slo,
                         carbon_figs["configurations"], throughput=throughput)
    if as_json:
        click.echo(json.dumps({**front, "carbon": {k: v for k, v in carbon_figs.items() if k != "configurations"}},
                              indent=2))
        return
    console = make_console(width=200, highlight=False)
    x, y, t = front["x"], front["y"], front["throughput"]
    console.print(escape(f"{data.name}: {len(configurations)} configurations, {len(data.results)} runs"))
    console.print(escape(f"Pareto front of {STAT_METRICS[y][1]} [{STAT_METRICS[y][0]}] (lower is better) against "
                         f"{STAT_METRICS[x][1]} [{STAT_METRICS[x][0]}] "
                         f"({'higher' if front['x_direction'] == 'max' else 'lower'} is better)"
                         + (f" and {STAT_METRICS[t][1]} [{STAT_METRICS[t][0]}] (higher is better)"
                            if t else " (two objectives)") + "; mean [95% CI]"))
    console.print(escape(f"rule: {front['rule']}"))
    by_hash = {p["config_hash"]: p for p in front["points"]}
    for p in sorted(front["points"], key=lambda p: (not p["on_front"], p[y]["mean"])):
        mark = "front " if p["on_front"] else "      "
        line = f"{mark} {p['label']}  n={p['n_runs']}  {y}: {_interval(p[y])}  {x}: {_interval(p[x])}"
        if t:
            line += f"  {t}: {_interval(p[t])}"
        if p["dominated_by"]:
            more = p.get("n_dominated_by", 0) - min(3, len(p["dominated_by"]))
            line += f"  dominated by: {'; '.join(by_hash[h]['label'] for h in p['dominated_by'][:3])}" + \
                (f" (+{more} more)" if more > 0 else "")
        for tie in p["tied_with"][:3]:
            need = tie["cycles_to_separate"]
            line += (f"  tied with {tie['label']} (cycles to separate: "
                     f"{need if need is not None else 'unknown: fewer than 2 runs'})")
        console.print(escape(line))
    for item in front["left_out"]:
        console.print(escape(f"left out: {item['label']}: {item['reason']}"))
    _print_answer(console, front, carbon_figs, escape)


def _print_answer(console, front: dict[str, Any], carbon_figs: dict[str, Any], escape) -> None:
    ans = front["answer"]
    if ans is None:
        console.print("no SLO given (--slo NAME=VALUE or `slo:` in the study): the front only")
        return
    targets = ", ".join(f"{k} {'≥' if k.startswith('min_') else '≤'} {v:g}" for k, v in ans["slo"].items())
    console.print(escape(f"SLO: {targets} ({ans['rule']})"))
    best = ans["best"]
    if best is None:
        console.print(escape(f"answer: {ans['message']}"))
        return
    console.print(escape(f"answer: {best['label']}: {ans['energy_metric']} {_interval(best['energy'])}"
                         + (" (by means only)" if best["verdict"] == "meets_mean_only" else "")))
    for name, t in best["targets"].items():
        console.print(escape(f"  {name}: {t['value']:.4g} against {t['target']:g}, margin {t['margin']:.4g} "
                             f"({t['margin_pct']:.1f} %)" if t["margin_pct"] is not None else
                             f"  {name}: {t['value']:.4g} against {t['target']:g}"))
    for tie in ans["ties"]:
        need = tie["cycles_to_separate"]
        console.print(escape(f"  tied within the noise: {tie['label']} {_interval(tie['energy'])} (cycles to "
                             f"separate: {need if need is not None else 'unknown'})"))
    c = best.get("carbon") or {}
    if carbon_figs["grid"] and c.get("g_co2e_per_1000_requests") is not None:
        grid = carbon_figs["grid"]
        console.print(escape(f"  carbon: {c['g_co2e_per_1000_requests']:.4g} gCO2e/1000 requests, "
                             f"{c['g_co2e_per_million_output_tokens']:.4g} gCO2e/million output tokens at "
                             f"{grid['grid_intensity_g_per_kwh']:g} g/kWh ({grid['source']}, {grid['date']}); "
                             f"{carbon_figs['scope']}"))
    else:
        console.print(escape(f"  carbon: not computed: {c.get('unavailable_reason') or carbon_figs['unavailable_reason']}"))
