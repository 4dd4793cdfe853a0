"""What the fault campaign's case files share: the planted secret, the study sizes, finding harnesses.

Its own module so that bench/fault_campaign.py (the driver) and bench/fault_campaign_runtime.py
(cases it runs) both import it, and neither imports the other back.
"""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

SECRET = "hf_llemFaultCampaignSecret0123456789"
SMALL = {"baseline": {"duration_s": 0.5}, "warmup": {"min_batches": 1, "max_batches": 2, "window": 2}}
LONG = {"n_prompts": 500, "max_output_tokens": 256, "decoding": {"ignore_eos": True},
        "measurement": {"warmup": {"enabled": False}, "baseline": {"duration_s": 0.5}}}


def _harness_pids(results: Path) -> list[int]:
    found = subprocess.run(["pgrep", "-f", f"llem_harness {results}"], capture_output=True, text=True)
    return [int(p) for p in found.stdout.split()]


def _started_harness_pids(results: Path, timeout_s: float = 120.0) -> list[int]:
    """The harness processes of a run marked running, once there are some: a study's first run may
    still be starting the local runner's pre-imported worker (its imports) when it is marked."""
    deadline = time.monotonic() + timeout_s
    while not (pids := _harness_pids(results)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return pids
