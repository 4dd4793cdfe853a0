"""An external meter's energy over the measured window, from a readings file (`measurement.external_energy_file`).

Why: the counter and the sampled instant power (cross_check.py) both come from the board's own
sensor; they can agree with each other and still be wrong together (A100/H100 average only a part of
each update period). Only a meter outside the GPU tests accuracy. llem does not drive meters: a
user's logger (a PDU, a clamp meter, a power-rail riser) appends readings to a text file while the
run goes on, and the harness reads the window's share of it after the window closes.

File format (docs/methodology.md, "An external meter"): text, one reading per line,
`unix_time_s,power_w` (instant power: integrated by trapezoid) or, with a first non-comment line
`unix_s,energy_j`, a cumulative energy in joules (differenced at the edges, interpolated between
readings). `#` lines are comments; `# meter: TEXT` names the meter and `# scope: gpu` says it
measures the same GPUs' power input (then the ratio is judged like the cross-check and flagged beyond
its tolerance; any other scope, e.g. the node at the wall, includes more than the GPUs, so the ratio
is reported and never flagged). The readings must cover the window: one at or before its start and
one at or after its end; a logger that writes late gets up to WAIT_S after the window to catch up.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

from llenergymeasure.domain.energy_check import ExternalEnergy

from .cross_check import BASE_TOLERANCE
from .energy import integrate_power_j

WAIT_S = 5.0


def _parse(path: Path) -> tuple[str, list[tuple[float, float]], dict[str, str]]:
    """(kind: power_w | energy_j, [(unix_s, value)], {meter, scope})."""
    kind, rows, meta = "power_w", [], {}
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            key, _, value = line[1:].partition(":")
            if key.strip().lower() in ("meter", "scope") and value.strip():
                meta[key.strip().lower()] = value.strip()
            continue
        cells = [c.strip() for c in line.split(",")]
        if not rows and cells[0].lower() in ("unix_s", "unix_time_s", "time_s"):
            if len(cells) < 2 or cells[1].lower() not in ("power_w", "energy_j"):
                raise ValueError(f"{path}:{n}: header must be 'unix_s,power_w' or 'unix_s,energy_j'")
            kind = cells[1].lower()
            continue
        try:
            rows.append((float(cells[0]), float(cells[1])))
        except (ValueError, IndexError):
            raise ValueError(f"{path}:{n}: expected 'unix_time_s,value', got {line[:60]!r}") from None
    return kind, sorted(rows), meta


def _interpolate(rows: list[tuple[float, float]], t: float) -> float:
    for (ta, va), (tb, vb) in zip(rows, rows[1:]):
        if ta <= t <= tb:
            return va if tb == ta else va + (vb - va) * (t - ta) / (tb - ta)
    raise ValueError("time outside the readings")


def external_energy(path: str | Path, start_unix_s: float, end_unix_s: float, counter_energy_j: float | None,
                    wait_s: float = WAIT_S) -> ExternalEnergy:
    """The meter's energy over [start, end] (unix seconds) beside the GPUs' counter energy of the window."""
    path = Path(path)
    out = ExternalEnergy(source=str(path), counter_energy_j=counter_energy_j)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            kind, rows, meta = _parse(path)
        except (OSError, ValueError) as exc:
            out.unavailable_reason = f"external readings unreadable: {exc}"
            return out
        covered = rows and rows[0][0] <= start_unix_s and rows[-1][0] >= end_unix_s
        if covered or time.monotonic() >= deadline:
            break
        time.sleep(0.25)
    out.meter, out.scope = meta.get("meter"), meta.get("scope")
    inside = [r for r in rows if start_unix_s <= r[0] <= end_unix_s]
    out.n_readings = len(inside)
    gaps = [(b - a) * 1000.0 for (a, _), (b, _) in zip(inside, inside[1:]) if b > a]
    out.reading_period_ms = statistics.median(gaps) if gaps else None
    if not covered:
        span = f"{rows[0][0]:.3f}-{rows[-1][0]:.3f}" if rows else "none"
        out.unavailable_reason = (f"external readings ({span}) do not cover the window "
                                  f"{start_unix_s:.3f}-{end_unix_s:.3f} (unix s)")
        return out
    if kind == "energy_j":
        out.method = "external_energy_difference"
        out.energy_j = _interpolate(rows, end_unix_s) - _interpolate(rows, start_unix_s)
    else:
        out.method = "external_power_trapezoid"
        out.energy_j = integrate_power_j(rows, start_unix_s, end_unix_s)
    if counter_energy_j:
        out.ratio = out.energy_j / counter_energy_j
        if (meta.get("scope") or "").lower() == "gpu" and out.reading_period_ms is not None:
            peak = (max(v for _, v in inside) if kind == "power_w" and inside
                    else out.energy_j / max(end_unix_s - start_unix_s, 1e-9))  # energy meter: its mean power
            out.tolerance = BASE_TOLERANCE + 2.0 * peak * out.reading_period_ms / 1000.0 / counter_energy_j
            out.flagged = abs(out.ratio - 1.0) > out.tolerance
    return out


def external_beside(path: str | Path, check, start_unix_s: float, end_unix_s: float) -> ExternalEnergy:
    """external_energy against the run's cross-check: its summed counter energy (null unless every GPU has one)."""
    gpus = check.per_gpu if check is not None else []
    counters = [g.counter_energy_j for g in gpus]
    counter_j = sum(counters) if counters and None not in counters else None
    return external_energy(path, start_unix_s, end_unix_s, counter_j)
