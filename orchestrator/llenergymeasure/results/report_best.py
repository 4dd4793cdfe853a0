"""The report's first section: which configuration is best for what.

Each question is a `Question` (a title, a metric, lower or higher is better); `QUESTIONS` is the
list the report asks, and `best_section(configurations, questions)` takes another list, so a new
question (under an SLO, on the Pareto front) is one more entry or one more function appending its
own rows, not a change here. The winner is the best mean; every configuration whose 95% interval
overlaps the winner's is named as tied with it — the study cannot tell them apart. Without an
interval (fewer than 3 runs) no tie can be judged, and that is said.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .number_format import has_interval, mean_pm, number
from .report_html import esc, para, table
from .report_labels import swept_labels
from .stats import STAT_METRICS


@dataclass(frozen=True)
class Question:
    title: str
    metric: str
    lower_is_better: bool


QUESTIONS = (
    Question("fastest (output throughput)", "output_tokens_per_s", lower_is_better=False),
    Question("least GPU energy per output token", "energy_per_output_token_j", lower_is_better=True),
    Question("least energy per output token above idle (adjusted)", "energy_per_output_token_adjusted_j",
             lower_is_better=True),
    Question("quickest first token (median TTFT)", "ttft_s.p50", lower_is_better=True),
)


def _bounds(stats: dict[str, Any]) -> tuple[float, float] | None:
    return (float(stats["ci95_low"]), float(stats["ci95_high"])) if has_interval(stats) else None


def answer(configurations: list[dict[str, Any]], question: Question) -> dict[str, Any] | None:
    """{"winner": index, "ties": [indices], "judged": bool} for one question, or None (nothing measured)."""
    measured = [i for i, c in enumerate(configurations) if c["metrics"][question.metric]["mean"] is not None]
    if not measured:
        return None
    sign = 1 if question.lower_is_better else -1
    winner = min(measured, key=lambda i: sign * configurations[i]["metrics"][question.metric]["mean"])
    best = _bounds(configurations[winner]["metrics"][question.metric])
    ties, judged = [], best is not None
    for i in measured:
        if i == winner:
            continue
        other = _bounds(configurations[i]["metrics"][question.metric])
        if other is None:
            judged = False
        elif best is not None and other[0] <= best[1] and best[0] <= other[1]:
            ties.append(i)
    return {"winner": winner, "ties": ties, "judged": judged and len(measured) > 1}


def best_rows(configurations: list[dict[str, Any]], questions=QUESTIONS) -> list[tuple[str, ...]]:
    """Table rows (already escaped HTML): question, best configuration, its mean ± CI, tied with."""
    labels = swept_labels(configurations)
    rows = []
    for question in questions:
        found = answer(configurations, question)
        if found is None:
            continue
        unit, _ = STAT_METRICS[question.metric]
        stats = configurations[found["winner"]]["metrics"][question.metric]
        value = (mean_pm(stats["mean"], stats["ci95_half_width"]) if has_interval(stats) else number(stats["mean"]))
        if found["ties"]:
            tied = ", ".join(f"#{i + 1} {labels[i]}" for i in found["ties"])
        elif len(configurations) == 1:
            tied = "— (one configuration)"
        elif found["judged"]:
            tied = "none: its interval overlaps no other"
        else:
            tied = "cannot tell: fewer than 3 runs give no interval"
        rows.append((esc(question.title), esc(f"#{found['winner'] + 1} {labels[found['winner']]}"),
                     esc(f"{value} {unit}"), esc(tied)))
    return rows


def best_section(configurations: list[dict[str, Any]], questions=QUESTIONS) -> str:
    rows = best_rows(configurations, questions)
    if not rows:
        return para("No configuration measured any of these figures.", "muted")
    return "\n".join([
        table(("best for", "configuration", "mean ± 95% CI half-width", "tied with (intervals overlap)"), rows),
        para("Best is the best mean; a configuration whose 95% interval overlaps the best one's is tied with it: "
             "the runs cannot tell them apart. Labels name what was swept; #n is the row of the summary table.",
             "muted small")])
