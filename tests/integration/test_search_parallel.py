"""A search under the parallel executor: trials in waves, each wave's runs at once on disjoint (fake, CPU) GPU sets."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from llenergymeasure import run_study
from llenergymeasure.domain import StudyConfig
from tests.helpers import small_measurement

pytestmark = pytest.mark.slow
pytest.importorskip("optuna")


def two_gpu_trace(path: Path, seconds: float = 10.0, step_s: float = 0.05) -> Path:
    """A synthetic looping trace of two GPUs at a steady 200 W (the parallel runs get one each)."""
    gpus = [{"index": i, "uuid": f"GPU-5e5e5e5e-0000-4000-8000-00000000000{i}", "name": "Synthetic GPU",
             "power_limit_w": 350.0, "persistence_mode": True, "mig_mode": False, "ecc_enabled": True,
             "memory_total_mb": 81559.0, "energy_counter_supported": True, "processes": []} for i in (0, 1)]
    lines = [json.dumps({"format": "llem-nvml-trace", "version": 1, "source": "synthetic", "gpu_model": "synthetic",
                         "driver_version": "synthetic", "cuda_driver_version": None, "recorded_at": None,
                         "loop": True, "note": "two GPUs at 200 W (tests/integration/test_search_parallel.py)",
                         "gpus": gpus})]
    for k in range(int(seconds / step_s) + 1):
        for i in (0, 1):
            lines.append(json.dumps({"t_s": round(k * step_s, 4), "gpu": i, "energy_mj": int(1e6 + 200 * k * step_s * 1e3),
                                     "power_instant_w": 200.0, "power_avg_w": 200.0, "temperature_c": 40.0,
                                     "sm_clock_mhz": 1400.0, "mem_clock_mhz": 2600.0, "memory_used_mb": 600.0,
                                     "utilization_pct": 50.0, "throttle_reasons": 0}))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_search_runs_in_parallel_waves(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("LLEM_NVML_REPLAY", str(two_gpu_trace(tmp_path / "two_gpus.jsonl")))
    study = StudyConfig.model_validate({
        "name": "psearch", "results_dir": str(tmp_path / "results"),
        "base": {"model": str(tiny_model_dir), "n_prompts": 2, "decoding": {"ignore_eos": True},
                 "measurement": small_measurement()},
        "sweep": {"batch_size": [1, 2], "max_output_tokens": [2, 4]},
        "search": {"budget": {"runs": 3}, "trials_per_wave": 2, "seed": 0},
        "execution": {"parallel": 2, "allow_parallel_cpu": True, "gpus": ["0", "1"]}})
    result = run_study(study)
    manifest = json.loads((Path(result.study_dir) / "manifest.json").read_text())
    statuses = sorted(e["status"] for e in manifest["entries"])
    assert statuses == ["completed"] * 3 + ["skipped"]
    history = json.loads((Path(result.study_dir) / "search_history.json").read_text())
    assert history["stopped"].startswith("budget: 3 runs used of 3")
    assert [t["number"] for t in history["trials"]] == [1, 2, 3] and result.search["stopped"] == history["stopped"]
