"""Carbon figures from a grid intensity the user gives: never a default, always labelled.

gCO2e per 1,000 requests = Wh per 1,000 requests (raw GPU energy in the window) × g/kWh / 1000;
gCO2e per million output tokens = J/output token × 10^6 / 3.6·10^6 J/kWh × g/kWh. Both cover the
GPU energy measured in the window only (no CPU, memory, cooling or embodied emissions), and carry
the intensity's value, source and date. Without `carbon:` in the study every figure is null with
the reason.
"""
from __future__ import annotations

from typing import Any

J_PER_KWH = 3.6e6
SCOPE = "GPU energy in the measurement window only (raw); no CPU, memory, cooling (PUE) or embodied emissions"
NO_INTENSITY = ("no grid carbon intensity given: add `carbon: {grid_intensity_g_per_kwh: …, source: …, date: …}` "
                "to the study (llem never assumes one)")


def carbon_section(configurations: list[dict[str, Any]], carbon: dict[str, Any] | None) -> dict[str, Any]:
    """{grid, scope, unavailable_reason, configurations: {config_hash: figures}} for a study."""
    per = {c["config_hash"]: carbon_figures(c, carbon) for c in configurations}
    return {"grid": dict(carbon) if carbon else None, "scope": SCOPE,
            "unavailable_reason": None if carbon else NO_INTENSITY, "configurations": per}


def carbon_figures(conf: dict[str, Any], carbon: dict[str, Any] | None) -> dict[str, Any]:
    """One configuration's gCO2e per 1,000 requests and per million output tokens (mean across cycles)."""
    if not carbon:
        return {"g_co2e_per_1000_requests": None, "g_co2e_per_million_output_tokens": None,
                "unavailable_reason": NO_INTENSITY}
    g_per_kwh = float(carbon["grid_intensity_g_per_kwh"])
    wh_1k = conf["metrics"]["energy_wh_per_1000_requests"]["mean"]
    j_token = conf["metrics"]["energy_per_output_token_j"]["mean"]
    reasons = [conf["metrics"][m].get("unavailable_reason") or f"{m} not measured"
               for m, v in (("energy_wh_per_1000_requests", wh_1k), ("energy_per_output_token_j", j_token))
               if v is None]
    return {"g_co2e_per_1000_requests": None if wh_1k is None else wh_1k / 1000.0 * g_per_kwh,
            "g_co2e_per_million_output_tokens": None if j_token is None else j_token * 1e6 / J_PER_KWH * g_per_kwh,
            "unavailable_reason": "; ".join(sorted(set(reasons))) or None}
