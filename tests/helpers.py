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
