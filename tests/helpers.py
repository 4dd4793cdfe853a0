"""Helpers shared by tests (importable as `tests.helpers`)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_llem(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600,
             docker: bool = False) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess (exit codes and stderr as a user sees them)."""
    entry = "main_docker" if docker else "main"
    code = f"from llenergymeasure.cli.main import {entry}; {entry}()"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def small_measurement() -> dict:
    """Measurement settings that keep a CPU run of the tiny model to a few seconds."""
    return {"baseline": {"duration_s": 0.5}, "warmup": {"min_batches": 1, "max_batches": 2, "window": 2}}


def quickstart_data(tiny_model_dir: Path, results_dir: Path, **execution) -> dict:
    """examples/quickstart.yaml on the tiny model, with small measurement settings, as a mapping."""
    import yaml

    data = yaml.safe_load((REPO_ROOT / "examples" / "quickstart.yaml").read_text())
    data["base"]["model"] = str(tiny_model_dir)
    data["base"]["measurement"].update(small_measurement())
    data["results_dir"] = str(results_dir)
    data["execution"].update({"n_cycles": 2, **execution})  # two cycles keep the tests short
    return data


def harness_stages(run_dir: Path) -> list[str]:
    """The stages a harness run entered, in order, from its harness.log (one `stage NAME` line each)."""
    import re

    return re.findall(r"llem_harness: stage (\w+)", (run_dir / "harness.log").read_text())


def expected_stages(load_stage: str) -> list[str]:
    """The one run skeleton's stages (offline: `loading`; serving: `server_starting`), as the host relies on."""
    importing = ["importing"] if load_stage == "loading" else []  # offline imports its engine in the harness
    return ["starting", "environment", "pre_load_idle", *importing, load_stage, "loaded_idle", "warmup", "measuring",
            "writing"]
