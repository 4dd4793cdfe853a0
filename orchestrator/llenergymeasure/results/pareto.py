"""The Pareto front of a study and its answer: the least-energy configuration under the latency targets.

Input: the per-configuration statistics of results/stats.py (mean and Student-t 95 % interval of
each metric across cycles). Up to three objectives: energy (`y`, default J/output token, minimised),
a latency figure (`x`, default TTFT p90, minimised; a throughput given as `x` is maximised) and,
where every configuration on the axes measured it, a throughput (`throughput`, default output
tokens/s, maximised). A configuration that is slower and costlier than another but delivers more
tokens per second is a real choice (a batch job's), so it stays on the front; `throughput=None`
gives the two-objective front of energy against `x` alone.

Dominance respects noise (DOMINANCE_RULE), over however many objectives: A dominates B only when
A's means are no worse than B's on every objective, better on one, and on at least one objective
where A is better the two 95 % intervals do not overlap. When A is better by its means but every such pair of intervals
overlaps, the data cannot separate them: B stays on the front, reported as tied with A together
with the cycles per configuration that would make the intervals stop overlapping at the observed
standard deviations (None when a configuration has fewer than 2 runs: no variance to go on).

The answer under an SLO: a configuration meets a target when the upper end of its metric's 95 %
interval is within it (lower end for a `min_` target); with fewer than 2 runs there is no
interval, and the mean decides (`meets_mean_only`, labelled so); when the mean meets it but the
interval crosses it the verdict is `uncertain`. The best is the least mean energy among those
that meet every target; others that meet them and whose energy interval overlaps the best's are
its ties. Nothing is invented: a configuration that did not measure a metric is left out with why.
"""
from __future__ import annotations

import math
from typing import Any

from ..domain.decision import parse_slo_name
from . import report_labels
from .stats import STAT_METRICS

DEFAULT_Y = "energy_per_output_token_j"
DEFAULT_X_CHOICES = ("ttft_s.p90", "tpot_s.p90", "e2e_latency_s.p90", "output_tokens_per_s")
DEFAULT_THROUGHPUT = "output_tokens_per_s"
AUTO = "auto"  # `throughput=AUTO`: DEFAULT_THROUGHPUT where measured (default_throughput)
MAX_CYCLES_TO_SEPARATE = 100_000
MAX_LISTED = 5  # configurations named per point in `dominated_by` / `tied_with` (the counts say how many)
DOMINANCE_RULE = ("A dominates B when A's means are no worse on every objective, better on at least one, and on "
                  "at least one objective where A is better their 95% intervals (Student's t across cycles) do not "
                  "overlap; better by means with overlapping intervals is a tie")
SLO_RULE = ("a configuration meets a target when its 95% interval lies within it (the mean alone with fewer than "
            "2 runs, labelled 'meets_mean_only'); 'uncertain' when the mean meets it and the interval crosses it")


def maximised(metric: str) -> bool:
    """Throughputs (…_per_s) are better larger; energies, latencies, powers and errors smaller."""
    return metric.endswith("_per_s") and "latency" not in metric


def check_axis(metric: str, option: str) -> str:
    from ..errors import ConfigError

    if metric not in STAT_METRICS:
        import difflib

        close = difflib.get_close_matches(metric, list(STAT_METRICS), n=1)
        hint = f" — did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"{option}: unknown metric '{metric}'{hint}; valid: {', '.join(STAT_METRICS)}")
    return metric


def default_x(configurations: list[dict[str, Any]]) -> str:
    """The first of TTFT p90, TPOT p90, e2e p90, output tokens/s that some configuration measured."""
    for metric in DEFAULT_X_CHOICES:
        if any(c["metrics"][metric]["mean"] is not None for c in configurations):
            return metric
    return DEFAULT_X_CHOICES[0]


def default_throughput(configurations: list[dict[str, Any]], x: str, y: str) -> str | None:
    """DEFAULT_THROUGHPUT as the third objective when every configuration that measured `x` and `y`
    measured it too (so adding it leaves no configuration out); None when `x` or `y` is already a
    throughput, or where it was not measured (a front of two objectives, said so in the result)."""
    if maximised(x) or maximised(y) or DEFAULT_THROUGHPUT in (x, y):
        return None
    on_axes = [c for c in configurations if c["metrics"][x]["mean"] is not None and c["metrics"][y]["mean"] is not None]
    if on_axes and all(c["metrics"][DEFAULT_THROUGHPUT]["mean"] is not None for c in on_axes):
        return DEFAULT_THROUGHPUT
    return None


def swept_labels(configurations: list[dict[str, Any]]) -> dict[str, str]:
    """config_hash -> its label ('bs=4 fp16', report_labels.py): the settings that differ, whole."""
    return dict(zip((c["config_hash"] for c in configurations), report_labels.swept_labels(configurations, None)))


def _summary(stats: dict[str, Any]) -> dict[str, Any]:
    return {"mean": stats["mean"], "ci95_low": stats.get("ci95_low"), "ci95_high": stats.get("ci95_high"),
            "std": stats.get("std"), "n": stats["n"]}


def _better(a: float, b: float, metric: str) -> bool:
    return a > b if maximised(metric) else a < b


def _separated(a: dict[str, Any], b: dict[str, Any], metric: str) -> bool:
    """True when a's 95 % interval lies wholly on the better side of b's."""
    if a["ci95_low"] is None or b["ci95_low"] is None:
        return False
    return a["ci95_low"] > b["ci95_high"] if maximised(metric) else a["ci95_high"] < b["ci95_low"]


def cycles_to_separate(a: dict[str, Any], b: dict[str, Any]) -> int | None:
    """Runs per configuration after which two 95 % intervals would not overlap, at the observed
    standard deviations and means (None: fewer than 2 runs, or equal means)."""
    from scipy.special import stdtrit

    if a.get("std") is None or b.get("std") is None or a["mean"] is None or b["mean"] is None:
        return None
    gap = abs(a["mean"] - b["mean"])
    spread = a["std"] + b["std"]
    if gap == 0:
        return None
    if spread == 0:
        return 2
    n = 2
    while n <= MAX_CYCLES_TO_SEPARATE:
        if stdtrit(n - 1, 0.975) * spread / math.sqrt(n) < gap:
            return n
        n = n + 1 if n < 64 else int(n * 1.25)
    return None


def compare(a: dict[str, Any], b: dict[str, Any], metrics: tuple[str, ...]) -> str:
    """'dominates' | 'tie' (better by means, not separated) | 'none', of a against b (points of the front,
    or configurations of results/stats.py)."""
    if "metrics" in a:
        a, b = a["metrics"], b["metrics"]
    means_no_worse = all(not _better(b[m]["mean"], a[m]["mean"], m) for m in metrics)
    better = [m for m in metrics if _better(a[m]["mean"], b[m]["mean"], m)]
    if not means_no_worse or not better:
        return "none"
    return "dominates" if any(_separated(a[m], b[m], m) for m in better) else "tie"


def pareto_front(configurations: list[dict[str, Any]], x: str | None = None, y: str = DEFAULT_Y,
                 slo: dict[str, float] | None = None, carbon: dict[str, Any] | None = None,
                 throughput: str | None = AUTO) -> dict[str, Any]:
    """The front (noise-aware), every point with its intervals and why it is off the front, and the answer.

    `throughput`: AUTO (default_throughput), a metric to maximise as a third objective, or None."""
    x = x or default_x(configurations)
    if throughput == AUTO:
        throughput = default_throughput(configurations, x, y)
    if throughput in (x, y):  # already an axis: nothing to add
        throughput = None
    metrics = (y, x) + ((throughput,) if throughput else ())
    labels = swept_labels(configurations)
    points, left_out = [], []
    for conf in configurations:
        missing = [m for m in metrics if conf["metrics"][m]["mean"] is None]
        if missing:
            reason = "; ".join(f"{m}: {conf['metrics'][m].get('unavailable_reason') or 'not measured'}"
                               for m in missing)
            left_out.append({"config_hash": conf["config_hash"], "label": labels[conf["config_hash"]],
                             "reason": reason})
            continue
        points.append({"config_hash": conf["config_hash"], "label": labels[conf["config_hash"]],
                       "config_summary": conf.get("config_summary"), "n_runs": conf["n_runs"],
                       **{m: _summary(conf["metrics"][m]) for m in metrics},
                       "dominated_by": [], "tied_with": []})
    _dominance(points, metrics)
    for p in points:
        p["on_front"] = not p["n_dominated_by"]
        if carbon is not None:
            p["carbon"] = carbon.get(p["config_hash"])
    front = sorted((p for p in points if p["on_front"]), key=lambda p: (p[x]["mean"] * (-1 if maximised(x) else 1)))
    out = {"x": x, "y": y, "x_direction": "max" if maximised(x) else "min", "y_direction": "min",
           "throughput": throughput, "throughput_direction": "max" if throughput else None,
           "objectives": list(metrics), "rule": DOMINANCE_RULE, "points": points,
           "front": [p["config_hash"] for p in front],
           "left_out": left_out, "slo": dict(slo or {}), "answer": None}
    if slo:
        out["answer"] = answer(configurations, slo, y, labels, carbon)
    return out


def _cost_arrays(points: list[dict[str, Any]], metric: str):
    """(mean, worst end, best end) of each point as costs (lower is better; NaN where no interval)."""
    import numpy as np

    sign = -1.0 if maximised(metric) else 1.0
    nan = float("nan")
    mean = np.array([sign * p[metric]["mean"] for p in points], dtype=float)
    low = np.array([nan if p[metric]["ci95_low"] is None else p[metric]["ci95_low"] for p in points], dtype=float)
    high = np.array([nan if p[metric]["ci95_high"] is None else p[metric]["ci95_high"] for p in points], dtype=float)
    return (mean, sign * high, sign * low) if sign > 0 else (mean, sign * low, sign * high)


def _dominance(points: list[dict[str, Any]], metrics: tuple[str, ...]) -> None:
    """Fill each point's `dominated_by` and `tied_with` (at most MAX_LISTED each, with the counts):
    `compare` over every pair, vectorised (numpy) so a study of thousands of configurations stays quick."""
    import numpy as np

    if not points:
        return
    arrays = [_cost_arrays(points, m) for m in metrics]
    for i, p in enumerate(points):
        no_worse = np.logical_and.reduce([mean <= mean[i] for mean, _, _ in arrays])
        better = [mean < mean[i] for mean, _, _ in arrays]
        separated = np.logical_or.reduce([b & (worst < best[i]) for b, (_, worst, best) in zip(better, arrays)])
        candidates = no_worse & np.logical_or.reduce(better)
        dominating = np.flatnonzero(candidates & separated)
        tied = np.flatnonzero(candidates & ~separated)
        p["dominated_by"] = [points[j]["config_hash"] for j in dominating[:MAX_LISTED]]
        p["n_dominated_by"] = int(len(dominating))
        p["tied_with"] = []
        for j in tied[:MAX_LISTED]:
            q = points[j]
            need = [cycles_to_separate(q[m], p[m]) for m in metrics if _better(q[m]["mean"], p[m]["mean"], m)]
            need = [n for n in need if n is not None]
            p["tied_with"].append({"config_hash": q["config_hash"], "label": q["label"],
                                   "cycles_to_separate": min(need) if need else None})
        p["n_tied_with"] = int(len(tied))


def slo_verdict(conf: dict[str, Any], slo: dict[str, float]) -> tuple[str, dict[str, Any]]:
    """(overall verdict, per target: value used, margin and verdict) of one configuration."""
    rank = {"meets": 0, "meets_mean_only": 1, "uncertain": 2, "fails": 3, "unmeasured": 4}
    targets, worst = {}, "meets"
    for name, target in slo.items():
        metric, bound = parse_slo_name(name)
        stats = conf["metrics"].get(metric) or {"mean": None, "n": 0}
        mean = stats.get("mean")
        if mean is None:
            verdict, value = "unmeasured", None
        else:
            edge = stats.get("ci95_high") if bound == "max" else stats.get("ci95_low")
            value = edge if edge is not None else mean
            ok_mean = mean <= target if bound == "max" else mean >= target
            ok_edge = value <= target if bound == "max" else value >= target
            verdict = ("meets" if edge is not None else "meets_mean_only") if ok_edge else \
                ("uncertain" if ok_mean else "fails")
        margin = None if value is None else (target - value if bound == "max" else value - target)
        targets[name] = {"metric": metric, "bound": bound, "target": target, "value": value, "mean": mean,
                         "margin": margin, "margin_pct": (100.0 * margin / target) if margin is not None and target
                         else None, "verdict": verdict,
                         "reason": stats.get("unavailable_reason") if verdict == "unmeasured" else None}
        worst = max(worst, verdict, key=rank.get)
    return worst, targets


def answer(configurations: list[dict[str, Any]], slo: dict[str, float], energy: str = DEFAULT_Y,
           labels: dict[str, str] | None = None, carbon: dict[str, Any] | None = None) -> dict[str, Any]:
    """The least-energy configuration meeting every target, its margins and ties; or why none does."""
    labels = labels or swept_labels(configurations)
    rows = []
    for conf in configurations:
        verdict, targets = slo_verdict(conf, slo)
        rows.append({"config_hash": conf["config_hash"], "label": labels[conf["config_hash"]], "verdict": verdict,
                     "energy": _summary(conf["metrics"][energy]), "targets": targets})
    measured = [r for r in rows if r["energy"]["mean"] is not None]
    meets = [r for r in measured if r["verdict"] == "meets"] or \
        [r for r in measured if r["verdict"] == "meets_mean_only"]
    out: dict[str, Any] = {"energy_metric": energy, "rule": SLO_RULE, "slo": dict(slo), "verdicts": rows,
                           "best": None, "ties": [], "message": None}
    if not measured:
        reasons = sorted({conf["metrics"][energy].get("unavailable_reason") or "not measured" for conf in configurations})
        out["message"] = f"no answer: no configuration measured {energy} ({'; '.join(reasons)})"
        return out
    if not meets:
        near = [r["label"] for r in measured if r["verdict"] == "uncertain"]
        out["message"] = "none meets it" + (f"; with more cycles these might: {', '.join(near)}" if near else "")
        return out
    best = min(meets, key=lambda r: r["energy"]["mean"])
    out["best"] = {**best, "carbon": (carbon or {}).get(best["config_hash"])}
    for r in meets:
        if r is best:
            continue
        if not _separated(best["energy"], r["energy"], energy):
            out["ties"].append({"config_hash": r["config_hash"], "label": r["label"], "energy": r["energy"],
                                "cycles_to_separate": cycles_to_separate(best["energy"], r["energy"])})
    out["message"] = f"best under the SLO: {best['label']}" + \
        (" (by means only: fewer than 2 runs)" if best["verdict"] == "meets_mean_only" else "") + \
        (f"; tied within the noise with {len(out['ties'])} other(s)" if out["ties"] else "")
    return out


def answer_line(front: dict[str, Any] | None) -> str | None:
    """One line for the end of `llem run`: the answer under the study's SLO (None without an SLO)."""
    ans = (front or {}).get("answer")
    if not ans:
        return None
    targets = ", ".join(f"{k} {'≥' if k.startswith('min_') else '≤'} {v:g}" for k, v in ans["slo"].items())
    best = ans["best"]
    if best is None:
        return f"under {targets}: {ans['message']} (llem results pareto DIR shows the front)"
    energy = best["energy"]
    interval = "" if energy.get("ci95_low") is None else f" [{energy['ci95_low']:.4g}, {energy['ci95_high']:.4g}]"
    ties = f"; tied within the noise with {len(ans['ties'])} other(s)" if ans["ties"] else ""
    return (f"least {ans['energy_metric']} under {targets}: {best['label']} ({energy['mean']:.4g}{interval}"
            f"{'; by means only' if best['verdict'] == 'meets_mean_only' else ''}"
            f"{ties})"
            " — llem results pareto DIR shows the front")
