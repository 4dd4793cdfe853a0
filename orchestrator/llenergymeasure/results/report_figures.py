"""The study report's figures, drawn with matplotlib and serialised as inline SVG.

Why SVG from matplotlib: it is already a dependency, the figures are vector (sharp on screen and
in print), they need no JavaScript and no network to display, and a report stays one file.

Figures carry only fixed labels, numbers and configuration numbers (#1, #2 ... = the rows of the
summary table); text from the study (model paths, names) stays in the HTML, where it is escaped.
Error bars are 95% confidence intervals of the mean (Student's t); a configuration with fewer
than 3 runs gets no bar (`n < 3: no interval`), and a bar of a quantity that cannot be negative
is cut at zero rather than drawn below it. Each builder returns a Figure, or a string saying why
the figure could not be drawn (never a figure made from guesses).
"""
from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

from .number_format import MIN_RUNS_FOR_INTERVAL, non_negative  # noqa: F401 (sections import them from here too)
from .stats import STAT_METRICS

MAX_POINTS_PER_LINE = 1500
BAR_METRICS = ("energy_per_output_token_j", "energy_per_output_token_adjusted_j", "output_tokens_per_s",
               "ttft_s.p50", "e2e_latency_s.p50", "energy.mean_power_w")
# Harness spelling `gpu0_power_instant_w`; older files `power_instant_w_gpu0`.
_SERIES = re.compile(r"^(?:gpu(?P<a>\d+)_(?P<qa>power_instant_w|power_avg_w|temperature_c)"
                     r"|(?P<qb>power_instant_w|power_avg_w|temperature_c)_gpu(?P<b>\d+))$")


def interval(stats: dict[str, Any], metric: str) -> tuple[float, float] | None:
    """(below, above) error-bar lengths around the mean, or None: no interval for n < 3 (or no
    value). For a non-negative metric the lower end is cut at 0, never drawn below it."""
    if stats.get("mean") is None or stats.get("n", 0) < MIN_RUNS_FOR_INTERVAL or stats.get("ci95_half_width") is None:
        return None
    half = float(stats["ci95_half_width"])
    below = min(half, max(float(stats["mean"]), 0.0)) if non_negative(metric) else half
    return below, half


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _label(metric: str, two_lines: bool = False) -> str:
    unit, label = STAT_METRICS[metric]
    return f"{label}\n[{unit}]" if two_lines else f"{label} [{unit}]"


def _errorbar_points(ax, configurations, x_metric: str, y_metric: str) -> list[tuple[float, float, int]]:
    """Points (x, y, configuration number) with clipped CI bars; hollow markers for n < 3."""
    from .report_labels import swept_labels

    points, labels = [], swept_labels(configurations)
    for number, conf in enumerate(configurations, start=1):
        xs, ys = conf["metrics"][x_metric], conf["metrics"][y_metric]
        if xs["mean"] is None or ys["mean"] is None:
            continue
        x_int, y_int = interval(xs, x_metric), interval(ys, y_metric)
        no_interval = x_int is None and y_int is None
        ax.errorbar([xs["mean"]], [ys["mean"]],
                    xerr=None if x_int is None else [[x_int[0]], [x_int[1]]],
                    yerr=None if y_int is None else [[y_int[0]], [y_int[1]]],
                    fmt="o", color="tab:blue", capsize=3, markersize=6,
                    markerfacecolor="white" if no_interval else "tab:blue")
        ax.annotate(labels[number - 1], (xs["mean"], ys["mean"]), textcoords="offset points", xytext=(6, 5),
                    fontsize=9)
        points.append((xs["mean"], ys["mean"], number))
    return points


def _legend_note(ax, configurations, pareto: bool = False) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="o", color="tab:blue", label="mean, 95% CI")]
    if pareto:
        handles.append(Line2D([], [], linestyle="--", color="tab:red", label="Pareto front"))
    if any(conf["n_runs"] < MIN_RUNS_FOR_INTERVAL for conf in configurations):
        handles.append(Line2D([], [], marker="o", color="tab:blue", markerfacecolor="white", linestyle="none",
                              label="n < 3: no interval"))
    ax.legend(handles=handles, fontsize=7, loc="best")


def energy_vs_throughput(configurations: list[dict[str, Any]], energy_metric: str):
    """J/output token against output tokens/s, one point per configuration, with the Pareto front."""
    from .plots import pareto_front

    if not any(c["metrics"][energy_metric]["mean"] is not None for c in configurations):
        return _why_missing(configurations, energy_metric)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    points = _errorbar_points(ax, configurations, "output_tokens_per_s", energy_metric)
    front = pareto_front([(x, y) for x, y, _ in points])
    if len(front) > 1:
        ax.plot([points[i][0] for i in front], [points[i][1] for i in front], "--", color="tab:red", linewidth=1)
    ax.set_xlabel(_label("output_tokens_per_s"), fontsize=9)
    ax.set_ylabel(_label(energy_metric), fontsize=9)
    idle = ", idle subtracted" if "adjusted" in energy_metric else ""
    ax.set_title(f"Energy per output token vs throughput{idle}", fontsize=10)
    _legend_note(ax, configurations, pareto=len(front) > 1)
    _finish(fig, ax, energy_metric)
    fig.tight_layout()
    return fig


def energy_vs_latency(configurations: list[dict[str, Any]], energy_metric: str):
    """J/output token against TTFT p50 and end-to-end latency p50 (two panels)."""
    if not any(c["metrics"][energy_metric]["mean"] is not None for c in configurations):
        return _why_missing(configurations, energy_metric)
    latencies = [m for m in ("ttft_s.p50", "e2e_latency_s.p50")
                 if any(c["metrics"][m]["mean"] is not None for c in configurations)]
    if not latencies:
        return "energy vs latency not drawn: no run measured a latency"
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(latencies), figsize=(7.2, 3.6), squeeze=False, sharey=True)
    for ax, metric in zip(axes[0], latencies):
        _errorbar_points(ax, configurations, metric, energy_metric)
        ax.set_xlabel(_label(metric), fontsize=9)
        _finish(fig, ax, energy_metric)
    axes[0][0].set_ylabel(_label(energy_metric), fontsize=9)
    _legend_note(axes[0][0], configurations)
    fig.suptitle("Energy per output token vs latency", fontsize=10)
    fig.tight_layout()
    return fig


def configuration_bars(configurations: list[dict[str, Any]]):
    """One panel per measured headline metric, one bar per configuration with its clipped CI."""
    metrics = [m for m in BAR_METRICS if any(c["metrics"][m]["mean"] is not None for c in configurations)]
    if not metrics:
        return "configuration bars not drawn: no headline metric measured"
    plt = _pyplot()
    cols = min(3, len(metrics))
    rows = -(-len(metrics) // cols)
    from .report_labels import swept_labels

    labels = swept_labels(configurations)
    slanted = len(configurations) > 2 or max(map(len, labels)) > 8
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, (3.4 if slanted else 3.0) * rows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        for pos, conf in enumerate(configurations):
            stats = conf["metrics"][metric]
            if stats["mean"] is None:
                continue
            bar = interval(stats, metric)
            ax.bar(pos, stats["mean"], color="tab:blue" if bar else "#9ab8d6", width=0.7,
                   yerr=None if bar is None else [[bar[0]], [bar[1]]], capsize=3)
        ax.set_xticks(range(len(configurations)), labels, fontsize=9, rotation=30 if slanted else 0,
                      ha="right" if slanted else "center")
        ax.set_title(_label(metric, two_lines=True), fontsize=9)
        ax.tick_params(axis="y", labelsize=9)
        if non_negative(metric):
            ax.set_ylim(bottom=0)
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    fig.suptitle("Per configuration: mean and 95% CI (pale bar: n < 3, no interval)", fontsize=9)
    fig.tight_layout()
    return fig


def gpu_comparison(groups: list[dict[str, Any]], set_letters: dict[str, str], metric: str):
    """Grouped bars: per configuration number, one bar per GPU set (letters as in the report)."""
    plt = _pyplot()
    numbers = sorted({g["number"] for g in groups})
    letters = sorted(set(set_letters.values()))
    width = 0.8 / max(1, len(letters))
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, letter in enumerate(letters):
        for group in (g for g in groups if set_letters[g["gpu_set"]] == letter):
            stats = group["metrics"][metric]
            if stats["mean"] is None:
                continue
            bar = interval(stats, metric)
            ax.bar(numbers.index(group["number"]) + (k - (len(letters) - 1) / 2) * width, stats["mean"], width,
                   color=colours[k % len(colours)], yerr=None if bar is None else [[bar[0]], [bar[1]]], capsize=2)
        ax.bar([], [], color=colours[k % len(colours)], label=f"GPU set {letter}")
    from .report_labels import swept_labels

    firsts = [next(g for g in groups if g["number"] == n) for n in numbers]
    ax.set_xticks(range(len(numbers)), swept_labels(firsts), fontsize=9)
    ax.set_ylabel(_label(metric), fontsize=8)
    if non_negative(metric):
        ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)
    ax.set_title("The same configuration on each GPU set (mean, 95% CI)", fontsize=10)
    fig.tight_layout()
    return fig


def run_timeline(timeseries_path: Path, title: str):
    """Power (W, solid) and temperature (°C, dashed, right axis) of one run against time."""
    import pandas as pd

    frame = pd.read_parquet(timeseries_path)
    series: dict[str, dict[str, str]] = {}  # quantity -> gpu -> column
    for column in map(str, frame.columns):
        match = _SERIES.match(column)
        if match:
            series.setdefault(match["qa"] or match["qb"], {})[match["a"] or match["b"]] = column
    power = series.get("power_instant_w") or series.get("power_avg_w")
    if "t_s" not in frame.columns or frame.empty or not (power or series.get("temperature_c")):
        return f"{timeseries_path.name}: no t_s with power or temperature columns"
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    time_s = frame["t_s"].to_numpy(dtype=float)
    kind = "instant" if series.get("power_instant_w") else "1 s average"
    for gpu, column in sorted((power or {}).items()):
        ax.plot(*_thin(time_s, frame[column].to_numpy(dtype=float)), linewidth=1, label=f"GPU {gpu} power ({kind})")
    ax.set_xlabel("time since window start [s]", fontsize=9)
    ax.set_ylabel("power [W]", fontsize=9)
    ax.tick_params(labelsize=9)
    handles, labels = ax.get_legend_handles_labels()
    if series.get("temperature_c"):
        twin = ax.twinx()
        for gpu, column in sorted(series["temperature_c"].items()):
            twin.plot(*_thin(time_s, frame[column].to_numpy(dtype=float)), "--", linewidth=1, color="tab:red",
                      label=f"GPU {gpu} temperature")
        twin.set_ylabel("temperature [°C]", fontsize=9)
        twin.tick_params(labelsize=9)
        more = twin.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    if power:
        ax.set_ylim(bottom=0)
    ax.legend(handles, labels, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, frameon=False)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def _thin(time_s, values, max_points: int = MAX_POINTS_PER_LINE):
    """At most ~max_points points, keeping each bucket's minimum and maximum (spikes stay visible)."""
    import numpy as np

    keep = ~np.isnan(values)
    time_s, values = time_s[keep], values[keep]
    if len(values) <= max_points:
        return time_s, values
    buckets = np.array_split(np.arange(len(values)), max_points // 2)
    index = sorted({int(b[np.argmin(values[b])]) for b in buckets} | {int(b[np.argmax(values[b])]) for b in buckets})
    return time_s[index], values[index]


def _why_missing(configurations, metric: str) -> str:
    reasons = sorted({c["metrics"][metric].get("unavailable_reason") or "not measured" for c in configurations})
    return f"{STAT_METRICS[metric][1]} was not measured: {'; '.join(reasons)}"


def _finish(fig, ax, y_metric: str) -> None:
    ax.grid(True, alpha=0.3)
    ax.tick_params(labelsize=9)
    if non_negative(y_metric) and ax.get_ylim()[0] < 0:
        ax.set_ylim(bottom=0)
    if ax.get_xlim()[0] < 0:  # x is always throughput or a latency: never negative
        ax.set_xlim(left=0)


def to_svg(fig, key: str) -> str:
    """The figure as an inline `<svg>` element whose ids are unique to `key` within the page.

    Text stays text (svg.fonttype none: small, selectable, escaped by matplotlib's writer); the
    clip-path hash salt is fixed so the same study gives the same file.
    """
    import matplotlib

    plt = _pyplot()
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "llem-report"}):
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r'\bid="([^"]+)"', rf'id="{key}-\1"', text)
    text = re.sub(r'url\(#([^)]+)\)', rf'url(#{key}-\1)', text)
    return re.sub(r'href="#([^"]+)"', rf'href="#{key}-\1"', text)
