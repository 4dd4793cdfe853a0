"""The report's "Pareto front and the answer" section and its figure (results/pareto.py computes both).

The figure draws every configuration with its 95 % intervals on both axes, the front joined by a
dashed line, and labels each point by its swept values (batch_size=8, …), not by a row number: the
front is read without a lookup table. With a throughput objective (three objectives) the marker's
area grows with the throughput and the label carries its value; the dashed line is drawn only for
a two-objective front (with three, the front's points need not form a curve in the plane).
Labels are drawn as plain text (no mathtext), and the SVG writer escapes them.
"""
from __future__ import annotations

from typing import Any

from .report_figures import _label, _pyplot, interval, to_svg
from .report_html import esc, figure, para, skipped, table
from .stats import STAT_METRICS

MAX_LABELLED = 40  # beyond this many points, only the front is labelled


def _bar(stats: dict[str, Any], metric: str):
    fake = {"mean": stats["mean"], "n": stats["n"], "ci95_half_width":
            None if stats.get("ci95_high") is None else stats["ci95_high"] - stats["mean"]}
    return interval(fake, metric)


def _marker_sizes(points: list[dict[str, Any]], metric: str | None) -> list[float]:
    """Marker diameters (points): 5 without a throughput; else 4–12 with the area proportional to it."""
    if not metric:
        return [5.0] * len(points)
    top = max(p[metric]["mean"] for p in points) or 1.0
    return [4.0 + 8.0 * max(p[metric]["mean"], 0.0) ** 0.5 / top ** 0.5 for p in points]


def front_figure(front: dict[str, Any]):
    """The front over all points with their intervals; a string saying why when nothing can be drawn."""
    points, x, y, t = front["points"], front["x"], front["y"], front.get("throughput")
    if not points:
        return "Pareto front not drawn: no configuration measured " + " and ".join(front.get("objectives") or (x, y))
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.8, 4.4))
    for p, size in zip(points, _marker_sizes(points, t)):
        xb, yb = _bar(p[x], x), _bar(p[y], y)
        colour = "tab:red" if p["on_front"] else "tab:gray"
        ax.errorbar([p[x]["mean"]], [p[y]["mean"]], xerr=None if xb is None else [[xb[0]], [xb[1]]],
                    yerr=None if yb is None else [[yb[0]], [yb[1]]], fmt="o", color=colour, capsize=3,
                    markersize=size, markerfacecolor="white" if xb is None and yb is None else colour)
        if p["on_front"] or len(points) <= MAX_LABELLED:
            colour = "black" if p["on_front"] else "dimgray"
            ax.annotate(p["label"].replace("$", "S")[:48], (p[x]["mean"], p[y]["mean"]), textcoords="offset points",
                        xytext=(5, 4), fontsize=6.5, color=colour, parse_math=False)
            if t:  # the third objective's value, under the label
                ax.annotate(f"{p[t]['mean']:.3g} {STAT_METRICS[t][1]}", (p[x]["mean"], p[y]["mean"]),
                            textcoords="offset points", xytext=(5, -6), fontsize=5.5, color=colour,
                            parse_math=False)
    on = sorted((p for p in points if p["on_front"]), key=lambda p: p[x]["mean"])
    if len(on) > 1 and not t:
        ax.plot([p[x]["mean"] for p in on], [p[y]["mean"] for p in on], "--", color="tab:red", linewidth=1)
    ax.set_xlabel(_label(x) + (" (higher is better)" if front["x_direction"] == "max" else ""), fontsize=8)
    ax.set_ylabel(_label(y), fontsize=8)
    ax.set_title("Pareto front (red): mean and 95% CI; grey: dominated beyond the noise"
                 + (f"\nmarker area: {_label(t)} (higher is better, a third objective)" if t else ""), fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.tick_params(labelsize=7)
    if ax.get_ylim()[0] < 0:
        ax.set_ylim(bottom=0)
    if ax.get_xlim()[0] < 0:
        ax.set_xlim(left=0)
    fig.tight_layout()
    return fig


def _ci(stats: dict[str, Any]) -> str:
    if stats["mean"] is None:
        return "—"
    if stats.get("ci95_low") is None:
        return f"{stats['mean']:.4g} (n = {stats['n']}: no interval)"
    return f"{stats['mean']:.4g} [{stats['ci95_low']:.4g}, {stats['ci95_high']:.4g}]"


def pareto_section(front: dict[str, Any], carbon: dict[str, Any]) -> str:
    """The answer under the SLO first, then the front's table and figure, then the rule."""
    x, y, t = front["x"], front["y"], front.get("throughput")
    parts = [_answer_html(front.get("answer"), carbon)]
    rows = []
    by_hash = {p["config_hash"]: p for p in front["points"]}
    for p in sorted(front["points"], key=lambda p: (not p["on_front"], p[y]["mean"])):
        notes = []
        if p["dominated_by"]:
            notes.append("dominated by " + "; ".join(by_hash[h]["label"] for h in p["dominated_by"][:3]))
        for tie in p["tied_with"][:3]:
            need = tie["cycles_to_separate"]
            notes.append(f"tied with {tie['label']} ({need} cycles would separate them)" if need else
                         f"tied with {tie['label']} (fewer than 2 runs: no variance to size it)")
        rows.append((esc("on the front" if p["on_front"] else "—"), esc(p["label"]), esc(p["n_runs"]),
                     esc(_ci(p[y])), esc(_ci(p[x]))) + ((esc(_ci(p[t])),) if t else ()) + (esc("; ".join(notes)),))
    parts.append(table(("front", "configuration (swept values)", "runs", f"{y} mean [95% CI]", f"{x} mean [95% CI]")
                       + ((f"{t} mean [95% CI]",) if t else ()) + ("why",), rows, numeric=(2,)))
    drawn = front_figure(front)
    parts.append(skipped(drawn) if isinstance(drawn, str) else
                 '<div class="figs">' + figure(to_svg(drawn, "fig-pareto"), "The front over all configurations, "
                                               "labelled by their swept values; bars are 95% intervals.") + "</div>")
    for item in front["left_out"]:
        parts.append(para(f"left out: {item['label']}: {item['reason']}", "muted small"))
    parts.append(para(f"Dominance rule: {front['rule']}.", "muted small"))
    return "\n".join(parts)


def _answer_html(ans: dict[str, Any] | None, carbon: dict[str, Any]) -> str:
    if ans is None:
        return para("No latency target (slo: in the study, or `llem results pareto --slo NAME=VALUE`): the front "
                    "only.", "muted")
    targets = ", ".join(f"{k} {'≥' if k.startswith('min_') else '≤'} {v:g}" for k, v in ans["slo"].items())
    if ans["best"] is None:
        return para(f"Under {targets}: {ans['message']}.")
    best = ans["best"]
    margins = "; ".join(f"{name}: {t['value']:.4g} against {t['target']:g} (margin {t['margin_pct']:.1f} %)"
                        for name, t in best["targets"].items() if t["value"] is not None and t["margin_pct"] is not None)
    text = (f"<b>Least energy under {esc(targets)}: {esc(best['label'])}</b> — {esc(ans['energy_metric'])} "
            f"{esc(_ci(best['energy']))}; {esc(margins)}.")
    if ans["ties"]:
        text += " Tied within the noise: " + esc("; ".join(
            f"{t['label']} ({t['cycles_to_separate'] or 'unknown'} cycles would separate)" for t in ans["ties"])) + "."
    c = best.get("carbon") or {}
    if carbon.get("grid") and c.get("g_co2e_per_1000_requests") is not None:
        g = carbon["grid"]
        text += esc(f" Carbon: {c['g_co2e_per_1000_requests']:.4g} gCO2e per 1,000 requests, "
                    f"{c['g_co2e_per_million_output_tokens']:.4g} gCO2e per million output tokens at "
                    f"{g['grid_intensity_g_per_kwh']:g} gCO2e/kWh ({g['source']}, {g['date']}); {carbon['scope']}.")
    else:
        text += esc(f" Carbon: not computed ({carbon.get('unavailable_reason') or c.get('unavailable_reason')}).")
    return f"<p>{text}</p>" + para(f"Meeting a target: {ans['rule']}.", "muted small")


def planning_notes(manifest) -> str:
    """How the runs were chosen, when not a full grid: the search's course and each adaptive stop."""
    parts = []
    search = getattr(manifest, "search", None)
    if search:
        measured = [t for t in search.get("trials", []) if t.get("status") == "measured"]
        best = (search.get("best") or {}).get("config")
        parts.append(para(f"Search ({search.get('planner')}, objective {search.get('objective')}): "
                          f"{len(measured)} of {search.get('grid_size')} configurations measured in "
                          f"{search.get('runs_used')} runs; best feasible trial: {best or 'none'}; stopped: "
                          f"{search.get('stopped') or 'not yet (the study was cut short: --resume continues it)'}. "
                          "The full history is search_history.json in the study directory."))
    adaptive = getattr(manifest, "adaptive", None) or []
    if adaptive:
        rows = [(esc(a.get("experiment_index")), esc(a.get("runs")), esc(a.get("ci95_pct")),
                 esc(a.get("reason") + (f"; {a['runs_in_flight_at_stop']} more already in flight then finished"
                                        if a.get("runs_in_flight_at_stop") else "")))
                for a in adaptive]
        parts.append("<h3>Adaptive cycles: why each configuration stopped</h3>" +
                     table(("configuration index", "runs", "95% CI ± % of mean", "why it stopped"), rows,
                           numeric=(0, 1, 2)))
    return "\n".join(parts)
