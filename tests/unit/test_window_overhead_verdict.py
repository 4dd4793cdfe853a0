"""The GPU validation's window/bare throughput row (bench/gpu_validation_report.py): PASS only when the
whole 95 % interval of the median ratio is at or above 0.98, FAIL when all of it is below, INCONCLUSIVE
when it straddles 0.98 (a median above the target is not enough), and a missing stage reads n/a."""
from __future__ import annotations

import sys

import pytest

from tests.helpers import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "bench"))
from gpu_validation_report import window_overhead_row  # noqa: E402


def report(median: float, ci: list[float]) -> dict:
    result = {"window_ratio": {"median": median, "ci95": ci}, "sync_per_step_ratio": {"median": 0.9},
              "reps": [{}] * 6, "device": "cuda", "token_timing": {"method": "cuda_events_per_step"}}
    return {"window_overhead": {"results": [result]}}


@pytest.mark.parametrize("median, ci, verdict", [
    (0.995, [0.98, 1.01], "PASS"),                   # the interval's bottom at the target: supported
    (0.995, [0.97, 1.01], "INCONCLUSIVE (noise)"),   # median above, interval reaches below: undecided
    (0.97, [0.94, 1.00], "INCONCLUSIVE (noise)"),
    (0.975, [0.97, 0.9799], "FAIL"),                 # the interval's top just under the target
    (0.95, [0.93, 0.97], "FAIL"),
])
def test_verdict_follows_the_interval_not_the_median(median, ci, verdict):
    name, value, threshold, got = window_overhead_row(report(median, ci))
    assert got == verdict and threshold == ">= 0.98"
    assert f"{median:.3f}" in value and "cuda_events_per_step" in value and "old hook): 0.900" in value


def test_a_stage_that_wrote_nothing_is_not_applicable():
    _, value, _, verdict = window_overhead_row({"stages": {"window_overhead": {"rc": 1}}})
    assert verdict == "n/a" and "rc 1" in value
