"""Reads after the window become null with a reason; CPU runs without RAPL say why once."""
from __future__ import annotations

import pytest

from llem_harness.after_window import AfterWindow, attach_window_records
from llem_harness.measurement.devices.choice import open_cpu_meters
from llem_harness.measurement.devices.rapl import cpu_energy
from llenergymeasure.domain import ExperimentConfig, ExperimentResult, MemoryStats


def _result(cpu_energy, device="cpu") -> ExperimentResult:
    cfg = ExperimentConfig(model="/models/tiny")
    result = ExperimentResult(run_id="r", study_id="s", experiment_index=0, cycle=1, config_hash=cfg.config_hash(),
                              config=cfg, started_at="t", finished_at="t", n_requests=1, input_tokens_total=4,
                              output_tokens_total=8, window_s=1.0, cpu_energy=cpu_energy)
    result.environment.device = device
    return result


def test_a_failing_read_is_null_with_reason_and_one_warning():
    events = []
    after = AfterWindow(lambda name, **fields: events.append((name, fields)))

    def broken():
        raise KeyError("max_num_seqs")

    memory = after.read("memory", broken, lambda why: MemoryStats(unavailable_reason=why))
    assert memory.unavailable_reason == "KeyError: 'max_num_seqs'"
    assert after.read("effective", lambda: {"batch": 4}, lambda why: None) == {"batch": 4}
    after.call("adapter.close", broken)
    assert set(after.unavailable) == {"memory", "adapter.close"}
    assert len(after.warnings) == 2 and [name for name, _ in events] == ["warning", "warning"]
    with pytest.raises(KeyboardInterrupt):  # an interrupt still stops the run
        after.read("effective", lambda: (_ for _ in ()).throw(KeyboardInterrupt()), lambda why: None)


def test_cpu_run_without_rapl_says_why_once(tmp_path):
    result = attach_window_records(_result(cpu_energy([], [], [], 1.0, open_cpu_meters(tmp_path / "absent")[1])), None, None, AfterWindow())
    notes = [w for w in result.measurement_warnings if w.startswith("CPU energy not measured")]
    assert len(notes) == 1 and "does not exist" in notes[0]
    assert result.cpu_energy.package_energy_per_output_token_j is None
    gpu_run = attach_window_records(_result(cpu_energy([], [], [], 1.0, open_cpu_meters(tmp_path / "absent")[1]), device="cuda"), None, None,
                                    AfterWindow())
    assert not any(w.startswith("CPU energy not measured") for w in gpu_run.measurement_warnings)
