"""vLLM's CPU build asked for more host memory than is free: the dry-run names
vllm.gpu_memory_utilization and the fix, and a real run's error is vLLM's own ValueError, not its
wrapper's "See root cause above" (the cause is printed by the engine core process to runner.log).
Skips without the vLLM environment (tests/vllm_support.py)."""
from __future__ import annotations

import json

import pytest

from llenergymeasure.domain import StudyManifest
from tests.vllm_support import CPU_ENGINE, run_llem_with, vllm_python, write_study

pytestmark = pytest.mark.slow


def test_too_large_a_memory_share_is_refused_by_the_dry_run_and_named_by_the_run(tiny_model_dir, tmp_path):
    python = vllm_python()
    results = tmp_path / "results"
    study = write_study(tmp_path / "greedy.yaml", tiny_model_dir, results,
                        base={"vllm": {**CPU_ENGINE, "gpu_memory_utilization": 1.0}}, runners={"vllm": "local"})
    dry = run_llem_with(python, "run", str(study), "--dry-run", timeout=120)
    assert dry.returncode == 2, dry.stdout[-2000:] + dry.stderr
    assert "vllm.gpu_memory_utilization: 1 of this host's" in dry.stderr
    assert "set vllm.gpu_memory_utilization to at most" in dry.stderr
    real = run_llem_with(python, "run", str(study))
    assert real.returncode == 1, real.stdout[-2000:] + real.stderr[-2000:]
    manifest = StudyManifest.model_validate_json((next(results.iterdir()) / "manifest.json").read_text())
    (entry,) = manifest.entries
    assert entry.status == "failed"
    assert not entry.error_message.lower().startswith("engine core initialization failed"), entry.error_message
    assert "Error: " in entry.error_message.split(" (the engine reported")[0], json.dumps(entry.model_dump())
