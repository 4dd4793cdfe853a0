"""The study's decision settings: latency targets (SLOs), the search planner and the grid's carbon intensity.

Why in the contract: `llem results pareto`, the report, the adaptive cycles and the search all read
the same `slo:` of a study, so its names are checked once, when the study is loaded (a misspelt
target must fail the study, not silently constrain nothing).

SLO names: `<latency>_p<NN>_s` (an upper bound on a per-run percentile, averaged across cycles),
e.g. `ttft_p90_s`, `tpot_p90_s`, `e2e_p90_s`, `itl_p99_s`; `max_<metric>` / `min_<metric>` bound
any summary metric (`min_output_tokens_per_s`, `max_serving.n_errors`); a summary metric's own name
(`ttft_s.p90`) is an upper bound too.
"""
from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .base import StrictModel

# Latency SLO stems -> the summary metric's stem (results/stats.py STAT_METRICS).
_LATENCY_STEMS = {"ttft": "ttft_s", "tpot": "tpot_s", "e2e": "e2e_latency_s", "itl": "itl_s"}
_PERCENTILES = ("p50", "p90", "p99")
_SHORT = re.compile(r"^(ttft|tpot|e2e|itl)_(p50|p90|p99)_s$")
# Objectives of a search (and of the pareto answer's energy axis): name -> (summary metric, direction).
OBJECTIVES: dict[str, tuple[str, str]] = {
    "energy_per_output_token": ("energy_per_output_token_j", "min"),
    "energy_per_request": ("energy_per_request_j", "min"),
    "tokens_per_joule": ("energy_per_output_token_j", "max_inverse"),  # 1 / (J/output token)
}


def summary_metric_names() -> list[str]:
    """Every summary metric an SLO may bound (the names of results/stats.py STAT_METRICS)."""
    latency = [f"{stem}.{p}" for stem in _LATENCY_STEMS.values() for p in _PERCENTILES]
    return latency + ["energy_per_output_token_j", "energy_per_output_token_adjusted_j", "energy_per_request_j",
                      "energy_per_request_adjusted_j", "energy_wh_per_1000_requests", "energy.mean_power_w",
                      "output_tokens_per_s", "total_tokens_per_s", "requests_per_s",
                      "serving.achieved_request_rate_per_s", "serving.goodput_requests_per_s", "serving.n_errors",
                      "window_s"]


def parse_slo_name(name: str) -> tuple[str, str]:
    """(summary metric, 'max' | 'min') an SLO name bounds; ValueError naming the valid spellings."""
    key = str(name).strip()
    short = _SHORT.match(key)
    if short:
        return f"{_LATENCY_STEMS[short.group(1)]}.{short.group(2)}", "max"
    for prefix, bound in (("max_", "max"), ("min_", "min")):
        if key.startswith(prefix) and key[len(prefix):] in summary_metric_names():
            return key[len(prefix):], bound
    if key in summary_metric_names():
        return key, "max"
    raise ValueError(f"slo: unknown target '{key}'; write a latency percentile as ttft_p90_s, tpot_p90_s, "
                     "e2e_p90_s or itl_p90_s (p50/p90/p99), or max_<metric> / min_<metric> with a summary metric "
                     "(e.g. min_output_tokens_per_s)")


def check_slo(slo: dict[str, Any] | None) -> dict[str, float] | None:
    """The SLO mapping with every name checked and every value a finite positive number."""
    if slo is None:
        return None
    out: dict[str, float] = {}
    for name, value in slo.items():
        parse_slo_name(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value == value \
                or value in (float("inf"), float("-inf")) or value < 0:
            raise ValueError(f"slo.{name}: {value!r} is not a non-negative number; give the target in the unit "
                             "its name ends with (seconds for *_s)")
        out[str(name).strip()] = float(value)
    return out


class SearchBudget(StrictModel):
    runs: int | None = Field(None, ge=1, le=1_000_000, description="stop after this many runs (trials × cycles)")
    hours: float | None = Field(None, gt=0, le=24 * 365, description="stop proposing once the study has run this long (wall time since it started)")


class SearchConfig(StrictModel):
    """Search the sweep instead of running all of it: the sweep is the search space."""

    objective: Literal["energy_per_output_token", "energy_per_request", "tokens_per_joule"] = Field(
        "energy_per_output_token", description="what the search optimises (mean across a trial's cycles)")
    budget: SearchBudget = Field(default_factory=SearchBudget, description="runs and/or hours; the first reached stops it")
    planner: Literal["tpe", "random"] = Field("tpe", description="Optuna sampler: tpe (Bayesian) or random")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="the sampler's seed")
    startup_trials: int | None = Field(None, ge=1, le=1000, description="random proposals before TPE models "
                                       "the space; default: a third of the runs budget's trials (2 to 10)")
    patience: int | None = Field(None, ge=1, le=1_000_000, description="stop after this many trials without a better feasible one")
    trials_per_wave: int = Field(4, ge=1, le=1000, description="Slurm: trials proposed at once, each wave one "
                                 "job array; the next wave is proposed when the collector finds this one done")


class CarbonConfig(StrictModel):
    """The electricity grid's carbon intensity, as the user knows it: never a default."""

    grid_intensity_g_per_kwh: float = Field(..., ge=0, le=5000, description="gCO2e per kWh of the grid that "
                                            "powered the GPUs")
    source: str = Field(..., min_length=1, max_length=300, description="where the figure comes from")
    date: str = Field(..., min_length=1, max_length=40, description="when it applies (e.g. 2026-12 or a day)")

    @model_validator(mode="after")
    def _finite(self) -> "CarbonConfig":
        if self.grid_intensity_g_per_kwh != self.grid_intensity_g_per_kwh:
            raise ValueError("carbon.grid_intensity_g_per_kwh is not a number")
        return self

    @field_validator("source", "date")
    @classmethod
    def _printable(cls, value: str) -> str:
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            raise ValueError("carbon: source and date are one line of printable text")
        return value.strip()
