"""PNG plots of a study (matplotlib, Agg backend, imported lazily).

- energy per output token vs output throughput, one point per configuration with 95% CI bars
  on both axes and the Pareto front (higher throughput and lower energy are both better);
- per-configuration bars with 95% CIs for the headline metrics;
- the power timeline of one run per configuration, when the run wrote `timeseries.parquet`
  (columns `t_s` and `power_instant_w_gpu<i>` / `power_avg_w_gpu<i>`, or `gpu<i>_power_instant_w` /
  `gpu<i>_power_avg_w`).

A plot whose data were not measured is skipped with a message, never drawn from guesses.
Figures have a fixed size (FIG_SIZE_IN at DPI) so their pixel size is predictable.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..domain import TIMESERIES_FILE
from .load import StudyData
from .stats import DEFAULT_MIN_RUNS as MIN_RUNS_FOR_INTERVAL, STAT_METRICS

FIG_SIZE_IN = (8.0, 5.0)
DPI = 100
PIXEL_SIZE = (int(FIG_SIZE_IN[0] * DPI), int(FIG_SIZE_IN[1] * DPI))
BAR_METRICS = ("energy_per_output_token_j", "energy_per_output_token_adjusted_j", "output_tokens_per_s",
               "requests_per_s", "ttft_s.p50", "e2e_latency_s.p50")
# Both spellings seen in timeseries.parquet: `power_instant_w_gpu0` and `gpu0_power_instant_w`.
POWER_COLUMN = re.compile(r"^(power_(instant|avg)_w_gpu\d+|gpu\d+_power_(instant|avg)_w)$")


@dataclass
class PlotReport:
    written: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _label(config: dict[str, Any], index: int) -> str:
    return f"{_tick(config, index)} {config['config_summary']}"


def _tick(config: dict[str, Any], index: int) -> str:
    """`#n`, labelled where the configuration's figures come from replayed readings."""
    return f"#{index + 1}" + (" [replayed]" if config.get("readings") == "replayed" else "")


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points not dominated by another (x higher-is-better, y lower-is-better), by x."""
    front = []
    for i, (x, y) in enumerate(points):
        dominated = any(ox >= x and oy <= y and (ox > x or oy < y) for j, (ox, oy) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def plot_energy_vs_throughput(configurations: list[dict[str, Any]], out_path: Path,
                              energy_metric: str = "energy_per_output_token_j") -> str | None:
    """Scatter with CI bars and the Pareto front. Returns a skip message instead when unmeasured."""
    points, xerr, yerr, labels = [], [], [], []
    for i, conf in enumerate(configurations):
        x, y = conf["metrics"]["output_tokens_per_s"], conf["metrics"][energy_metric]
        if x["mean"] is None or y["mean"] is None:
            continue
        points.append((x["mean"], y["mean"]))
        xerr.append(_half_width(x))
        yerr.append(_half_width(y))
        labels.append(_label(conf, i))
    if not points:
        reasons = sorted({c["metrics"][energy_metric].get("unavailable_reason") or "not measured"
                          for c in configurations})
        return f"energy vs throughput skipped: {energy_metric} unavailable ({'; '.join(reasons)})"
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIG_SIZE_IN, dpi=DPI)
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    ax.errorbar(xs, ys, xerr=_asymmetric_err(xs, xerr), yerr=_asymmetric_err(ys, yerr), fmt="o", capsize=4,
                label="configuration (mean, 95% CI; n < 3: no bar)")
    front = pareto_front(points)
    ax.plot([xs[i] for i in front], [ys[i] for i in front], "--s", color="tab:red", markerfacecolor="none",
            markersize=12, label="Pareto front (higher tok/s, lower J/token)")
    for (x, y), label in zip(points, labels):
        ax.annotate(label.split(" ")[0] + (" [replayed]" if "[replayed]" in label else ""), (x, y),
                    textcoords="offset points", xytext=(6, 6), fontsize=8)
    ax.set_xlabel("output throughput [output tokens/s]")
    ax.set_ylabel(f"{energy_metric} [{STAT_METRICS[energy_metric][0]}]")
    ax.set_title("Energy per output token vs output throughput")
    ax.legend(fontsize=8)
    _save(fig, out_path)
    return None


def plot_configuration_bars(configurations: list[dict[str, Any]], out_path: Path) -> str | None:
    """One panel per measured headline metric; one bar per configuration with its 95% CI."""
    metrics = [m for m in BAR_METRICS if any(c["metrics"][m]["mean"] is not None for c in configurations)]
    if not metrics:
        return "configuration bars skipped: no metric measured"
    plt = _pyplot()
    cols = min(3, len(metrics))
    rows = -(-len(metrics) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=FIG_SIZE_IN, dpi=DPI, squeeze=False)
    positions = list(range(len(configurations)))
    for ax, metric in zip(axes.flat, metrics):
        means = [c["metrics"][metric]["mean"] or 0.0 for c in configurations]
        errs = [_half_width(c["metrics"][metric]) for c in configurations]
        ax.bar(positions, means, yerr=_asymmetric_err(means, errs), capsize=3, color="tab:blue")
        ax.set_title(f"{STAT_METRICS[metric][1]} [{STAT_METRICS[metric][0]}]", fontsize=8)
        ax.set_xticks(positions, [_tick(c, i) for i, c in enumerate(configurations)], fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    fig.suptitle("Per configuration (mean, 95% CI); #n = row n of `llem results show`", fontsize=9)
    fig.tight_layout()
    _save(fig, out_path)
    return None


def plot_power_timeline(timeseries_path: Path, out_path: Path, title: str) -> str | None:
    """Power columns against `t_s`; a skip message when the file or its columns are absent."""
    if not timeseries_path.is_file():
        return f"power timeline skipped: no {timeseries_path.name} in {timeseries_path.parent.name}"
    import pandas as pd

    frame = pd.read_parquet(timeseries_path)
    columns = [c for c in frame.columns if POWER_COLUMN.match(str(c))]
    if "t_s" not in frame.columns or not columns or frame.empty:
        return (f"power timeline skipped: {timeseries_path.parent.name}/{timeseries_path.name} has no "
                f"t_s + power columns (found: {', '.join(map(str, frame.columns)) or 'none'})")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIG_SIZE_IN, dpi=DPI)
    for column in columns:
        data = frame[["t_s", column]].dropna()
        ax.plot(data["t_s"], data[column], label=column, linewidth=1)
    ax.set_xlabel("time since window start [s]")
    ax.set_ylabel("power [W]")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    _save(fig, out_path)
    return None


def _save(fig, out_path: Path) -> None:
    import matplotlib.pyplot as plt

    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=DPI)  # no bbox_inches="tight": keep the pixel size fixed
    plt.close(fig)


def _half_width(stats: dict[str, Any]) -> float:
    """The 95% CI half-width to draw; none below 3 runs (two points give an interval too wide to mean much)."""
    if (stats.get("n") or 0) < MIN_RUNS_FOR_INTERVAL:
        return 0.0
    return stats.get("ci95_half_width") or 0.0


def _why_no_timeseries(results: list) -> str:
    """The real reason a configuration has no power timeline: not asked for, or nothing sampled power."""
    if not results or any(not r.config.measurement.save_timeseries for r in results):
        return "set measurement.save_timeseries: true"
    reasons = sorted({r.energy.unavailable_reason for r in results if r.energy.unavailable_reason})
    if reasons:
        return "save_timeseries is set, but no power sampler ran: " + "; ".join(reasons)
    return "save_timeseries is set, but the runs wrote none"


def _asymmetric_err(means: list[float], halves: list[float]) -> list[list[float]]:
    """Error bars [below, above] for a non-negative quantity: the lower bar stops at zero."""
    return [[min(h, max(m, 0.0)) for m, h in zip(means, halves)], list(halves)]


def render_study_plots(data: StudyData, configurations: list[dict[str, Any]], out_dir: Path) -> PlotReport:
    """Write every plot the study's data allow into `out_dir`."""
    report = PlotReport()
    out_dir = Path(out_dir)

    def attempt(path: Path, skip: str | None) -> None:
        if skip:
            report.skipped.append(skip)
        else:
            report.written.append(path)

    for metric, name in (("energy_per_output_token_j", "energy_vs_throughput.png"),
                         ("energy_per_output_token_adjusted_j", "energy_adjusted_vs_throughput.png")):
        attempt(out_dir / name, plot_energy_vs_throughput(configurations, out_dir / name, metric))
    attempt(out_dir / "configuration_bars.png", plot_configuration_bars(configurations, out_dir / "configuration_bars.png"))
    for i, conf in enumerate(configurations):  # one timeline per configuration: its first run with one
        runs = [data.run_dir(run_id) / TIMESERIES_FILE for run_id in conf["run_ids"]]
        existing = [p for p in runs if p.is_file()]
        if not existing:
            runs_of = [r for r in data.results if r.run_id in conf["run_ids"]]
            report.skipped.append(f"power timeline skipped for configuration #{i + 1}: no {TIMESERIES_FILE} "
                                  f"({_why_no_timeseries(runs_of)})")
            continue
        path = out_dir / f"power_timeline_{i + 1:02d}_{conf['config_hash'][:8]}.png"
        title = f"#{i + 1} {conf['config_summary']} — {existing[0].parent.name}"
        source = next((r.energy.readings_source for r in data.results if r.run_id == existing[0].parent.name), None)
        if source and not source.startswith("NVML"):
            title += "\nREPLAYED TRACE, not a measurement of this machine"
        attempt(path, plot_power_timeline(existing[0], path, title))
    return report
