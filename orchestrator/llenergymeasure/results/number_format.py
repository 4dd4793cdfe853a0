"""One way to write a mean, its 95% interval and a plain number, for every command and the report.

Why here: `llem results show`, `compare`, the end-of-run table and the HTML report each formatted
intervals their own way (`[-2.4, 53.6]` in one place, `[0†, 53.6]` in another, `179.4 ± 3.2e+02`
in a third). The rules, once:

- a mean and its half-width are written to the same decimal place, the half-width's second
  significant digit (`179 ± 320`, `0.0123 ± 0.0011`): digits beyond the interval's own are noise;
- an interval of a quantity that cannot be negative is cut at 0 and the cut marked `†`;
- an interval wider than the mean itself (half-width > |mean|) is marked `wide`: more cycles are
  needed before the mean says much;
- fewer than 3 runs: no interval, and that is said.

Standard library only.
"""
from __future__ import annotations

import math
from typing import Any

MIN_RUNS_FOR_INTERVAL = 3
CUT_MARK = "†"
WIDE_MARK = "wide"
CUT_LEGEND = f"{CUT_MARK}: the interval reaches below zero for a quantity that cannot be negative, shown cut at 0"
WIDE_LEGEND = f"{WIDE_MARK}: the 95% interval is wider than the mean itself (more cycles would narrow it)"


def non_negative(metric: str) -> bool:
    """Every summary metric is >= 0 except idle-subtracted (adjusted) energy, which can dip below."""
    return "adjusted" not in metric


def number(value: float | None, digits: int = 4) -> str:
    """A plain number to `digits` significant digits, without an exponent for ordinary magnitudes."""
    if value is None:
        return "—"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    if magnitude >= 7 or magnitude < -4:
        return f"{value:.{digits - 1}e}"
    decimals = max(digits - 1 - magnitude, 0)
    return f"{value:.{decimals}f}"


def _decimals(half: float) -> int:
    """Decimal places that keep the half-width's two leading significant digits (negative: tens, ...)."""
    return 1 - math.floor(math.log10(abs(half)))


def _at(value: float, decimals: int) -> str:
    if decimals > 0:
        return f"{value:.{decimals}f}"
    rounded = round(value, decimals)
    return f"{rounded:.0f}"


def mean_pm(mean: float | None, half: float | None) -> str:
    """`mean ± half` at matching precision (just the mean, 4 significant digits, without a half-width)."""
    if mean is None:
        return "—"
    if half is None or not math.isfinite(half) or half <= 0:
        return number(mean)
    magnitude = max(abs(mean), half)
    if magnitude >= 1e7 or magnitude < 1e-4:  # scientific, one exponent for both
        exponent = math.floor(math.log10(magnitude))
        scale = 10.0 ** exponent
        d = max(_decimals(half / scale), 0)
        return f"({mean / scale:.{d}f} ± {half / scale:.{d}f})e{exponent:+d}"
    d = _decimals(half)
    return f"{_at(mean, d)} ± {_at(half, d)}"


def has_interval(stats: dict[str, Any]) -> bool:
    return (stats.get("mean") is not None and (stats.get("n") or 0) >= MIN_RUNS_FOR_INTERVAL
            and stats.get("ci95_half_width") is not None and stats.get("ci95_low") is not None)


def is_wide(stats: dict[str, Any]) -> bool:
    return has_interval(stats) and float(stats["ci95_half_width"]) > abs(float(stats["mean"]))


def interval(stats: dict[str, Any], metric: str) -> str:
    """`[low, high]` at the mean's precision, the low end cut at 0 (`0†`) for a non-negative metric."""
    half = float(stats["ci95_half_width"])
    d = _decimals(half) if half > 0 and math.isfinite(half) else 4
    low, high = float(stats["ci95_low"]), float(stats["ci95_high"])
    fmt = (lambda v: _at(v, d)) if 1e-4 <= max(abs(low), abs(high), half) < 1e7 else number
    low_text = fmt(low)
    if non_negative(metric) and low < 0:
        low_text = "0" + CUT_MARK
    return f"[{low_text}, {fmt(high)}]"


def stat_text(stats: dict[str, Any], metric: str, with_interval: bool = False, sep: str = " ") -> str:
    """The cell of a configuration's metric: `mean ± half` (and `[interval]`), marked `wide` where so,
    or the mean with "n < 3: no interval", or "—". `sep` goes between the parts (a newline in a
    narrow column)."""
    if stats.get("mean") is None:
        return "—"
    if not has_interval(stats):
        n = stats.get("n") or 0
        return number(stats["mean"]) + (f"{sep}(n = {n} < {MIN_RUNS_FOR_INTERVAL}: no interval)" if n else "")
    text = mean_pm(stats["mean"], stats["ci95_half_width"])
    if with_interval:
        text += sep + interval(stats, metric)
    if is_wide(stats):
        text += f" {WIDE_MARK}"
    return text


def legend(texts) -> str:
    """The explanation of the marks that `texts` (table cells) use; empty when they use none."""
    texts = list(texts)
    parts = [CUT_LEGEND] if any(CUT_MARK in t for t in texts) else []
    if any(t.endswith(WIDE_MARK) for t in texts):
        parts.append(WIDE_LEGEND)
    return "; ".join(parts)
