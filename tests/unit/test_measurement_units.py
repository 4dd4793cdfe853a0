"""Warm-up convergence, energy arithmetic, device selection by UUID, RAPL wrap-around, environment."""
from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from _measurement_helpers import TRACES, counter_energy_bounds, measure, measure_bracketed, replay_session
from llem_harness.measurement.devices import EnergyReading, GpuSample
from llem_harness.measurement.devices.selection import select_devices
from llem_harness.measurement.energy import integrate_power_j, window_energy
from llem_harness.measurement.devices.rapl import RaplUnavailable, cpu_energy, open_rapl
from llem_harness.measurement.devices.replay import ReplayBackend
from llem_harness.measurement.sampler import Tick
from llem_harness.measurement.throttle import decode_reasons
from llem_harness.measurement.warmup import run_warmup
from llenergymeasure.domain import WarmupConfig

UUID0 = "GPU-5e5e5e5e-0000-4000-8000-000000000000"
UUID1 = "GPU-5e5e5e5e-0000-4000-8000-000000000001"


# -- warm-up -----------------------------------------------------------------------------------
def test_warmup_converges_when_latency_settles():
    latencies = iter([1.0, 0.6, 0.3, 0.21, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2])
    events = []
    result, warnings = run_warmup(WarmupConfig(min_batches=2, max_batches=30, window=5, cv_threshold=0.05),
                                  lambda: next(latencies), lambda name, **f: events.append((name, f)))
    assert result.converged and warnings == []
    assert result.iterations == 8  # first window of 5 with CV < 5 %: batches 4-8
    assert result.final_cv < 0.05
    assert result.latencies_s[:3] == [1.0, 0.6, 0.3]
    assert events[-1] == ("batch", {"stage": "warmup", "done": 8, "total": 30})


def test_warmup_not_converged_stops_at_max_and_warns():
    latencies = itertools.cycle([0.1, 0.2])
    result, warnings = run_warmup(WarmupConfig(min_batches=2, max_batches=12, window=5, cv_threshold=0.05),
                                  lambda: next(latencies))
    assert not result.converged and result.iterations == 12
    assert result.final_cv == pytest.approx(0.0489898 / 0.16, abs=1e-4)  # last 5: 0.2,0.1,0.2,0.1,0.2
    assert len(warnings) == 1 and "did not converge" in warnings[0]


def test_warmup_stops_at_its_time_bound_and_says_so():
    """A warm-up that does not settle ends at max_duration_s, long before max_batches, and the result
    and the warning name the bound (30 slow batches once took minutes)."""
    import time

    latencies = itertools.cycle([0.1, 0.2])

    def slow_batch() -> float:
        time.sleep(0.03)
        return next(latencies)

    cfg = WarmupConfig(min_batches=2, max_batches=1000, window=5, cv_threshold=0.05, max_duration_s=0.2)
    result, warnings = run_warmup(cfg, slow_batch)
    assert not result.converged and result.stopped_by == "max_duration_s" and result.max_duration_s == 0.2
    assert 2 <= result.iterations < 1000 and result.duration_s >= 0.2
    assert len(warnings) == 1 and "did not converge" in warnings[0] and "max_duration_s 0.2 s" in warnings[0]


def test_warmup_records_which_bound_stopped_it():
    settled = run_warmup(WarmupConfig(min_batches=2, max_batches=30, window=3, cv_threshold=0.05), lambda: 0.2)[0]
    assert settled.converged and settled.stopped_by == "converged" and settled.max_duration_s == 60.0
    latencies = itertools.cycle([0.1, 0.2])
    capped = run_warmup(WarmupConfig(max_batches=6, window=3, max_duration_s=None), lambda: next(latencies))[0]
    assert not capped.converged and capped.stopped_by == "max_batches" and capped.max_duration_s is None


def test_the_warmup_time_bound_hashes_only_when_set():
    """Configs written before the bound keep their hash (a resume compares hashes); another bound is
    another configuration, whichever way the hash is assembled (one config, or a grid's shared sections)."""
    from llenergymeasure.domain import ExperimentConfig, StudyConfig
    from llenergymeasure.study.expand import expand

    default = ExperimentConfig(model="m")
    assert default.config_hash() == "a686e8fed37c4330"  # the hash before the field existed
    bounded = {"measurement": {"warmup": {"max_duration_s": 30}}}
    assert ExperimentConfig(model="m", **bounded).config_hash() != default.config_hash()
    for extra in ({}, bounded):
        study = StudyConfig.model_validate({"base": {"model": "m", **extra}, "sweep": {"batch_size": [1, 2]}})
        assert expand(study).hashes[1] == ExperimentConfig(model="m", batch_size=2, **extra).config_hash()


def test_warmup_disabled():
    result, warnings = run_warmup(WarmupConfig(enabled=False), lambda: 1 / 0)
    assert result.enabled is False and result.iterations == 0 and warnings == []
    assert result.stopped_by is None


# -- energy arithmetic ------------------------------------------------------------------------
def test_integrate_power_holds_edges_and_interpolates():
    points = [(1.0, 100.0), (2.0, 200.0), (3.0, 200.0)]
    assert integrate_power_j(points, 1.0, 3.0) == pytest.approx(150.0 + 200.0)
    assert integrate_power_j(points, 0.0, 1.0) == pytest.approx(100.0)  # held before the first sample
    assert integrate_power_j(points, 1.5, 2.5) == pytest.approx(0.5 * (150 + 200) / 2 + 0.5 * 200)
    assert integrate_power_j(points[:1], 0.0, 1.0) is None


class _Dev:
    """A device stand-in carrying only what window_energy reads (index, uuid)."""

    def __init__(self, index, uuid):
        self.index, self.uuid = index, uuid


def test_negative_delta_without_instant_power_is_unavailable_not_clamped():
    devs = [_Dev(0, UUID0), _Dev(1, UUID1)]
    ticks = [Tick(t, [GpuSample(t), GpuSample(t)]) for t in (0.0, 1.0, 2.0)]
    energy, warnings = window_energy(devs, [EnergyReading(5000), EnergyReading(1000)],
                                     [EnergyReading(100), EnergyReading(3000)], ticks, 0.0, 2.0, None)
    assert energy.per_gpu[0].energy_j is None and energy.per_gpu[0].method == "unavailable"
    assert "went backwards" in energy.per_gpu[0].unavailable_reason
    assert energy.per_gpu[1].energy_j == pytest.approx(2.0) and energy.per_gpu[1].method == "counter"
    # A partial total would understate the energy: the total is unavailable, with the reason.
    assert energy.method == "unavailable" and energy.gpu_energy_raw_j is None
    assert "GPU 0" in energy.unavailable_reason
    assert any("GPU energy unavailable" in w for w in warnings)


def test_counter_that_did_not_advance_while_power_drawn_is_not_zero_joules():
    """A window shorter than the counter's update period: delta 0 with 250 W samples falls back to them."""
    devs = [_Dev(0, UUID0)]
    ticks = [Tick(t, [GpuSample(t, power_instant_w=250.0)]) for t in (0.0, 0.01)]
    energy, warnings = window_energy(devs, [EnergyReading(7000)], [EnergyReading(7000)], ticks, 0.0, 0.01, None)
    assert energy.method == "integrated_instant_power" and energy.gpu_energy_raw_j == pytest.approx(2.5)
    assert any("did not advance" in w for w in warnings)
    # With no power drawn (or no samples), an unchanged counter is a true 0 J reading.
    idle = [Tick(t, [GpuSample(t, power_instant_w=0.0)]) for t in (0.0, 0.01)]
    energy, warnings = window_energy(devs, [EnergyReading(7000)], [EnergyReading(7000)], idle, 0.0, 0.01, None)
    assert energy.method == "counter" and energy.gpu_energy_raw_j == 0.0 and warnings == []


# -- device selection -----------------------------------------------------------------------
def _devices():
    return ReplayBackend.from_file(TRACES / "two_gpu_counter.jsonl").devices()


def test_cuda_visible_devices_uuid_maps_by_uuid_not_position():
    devs = _devices()
    chosen, notes = select_devices(devs, ["0"], cuda_visible=UUID1)
    assert [d.uuid for d in chosen] == [UUID1] and notes == []  # CUDA index 0 is the only visible GPU
    chosen, _ = select_devices(devs, None, cuda_visible="GPU-5e5e5e5e-0000-4000-8000-000000000001,GPU-5e5e5e5e-0000-4000-8000-000000000000")
    assert [d.index for d in chosen] == [1, 0]
    chosen, _ = select_devices(devs, [UUID0], cuda_visible=f"{UUID1},{UUID0}")
    assert [d.index for d in chosen] == [0]
    chosen, _ = select_devices(devs, ["1"], cuda_visible=f"{UUID1},{UUID0}")
    assert [d.uuid for d in chosen] == [UUID0]


def test_cuda_visible_devices_indices_and_edge_cases():
    devs = _devices()
    chosen, notes = select_devices(devs, None, cuda_visible="1")
    assert [d.uuid for d in chosen] == [UUID1] and "PCI_BUS_ID" in notes[0]
    chosen, notes = select_devices(devs, None, cuda_visible="1", cuda_device_order="PCI_BUS_ID")
    assert [d.uuid for d in chosen] == [UUID1] and notes == []
    chosen, notes = select_devices(devs, None, cuda_visible="")
    assert chosen == [] and "hides every GPU" in notes[0]
    chosen, _ = select_devices(devs, None, cuda_visible=None)
    assert [d.index for d in chosen] == [0, 1]
    with pytest.raises(ValueError, match="not visible"):
        select_devices(devs, [UUID0], cuda_visible=UUID1)
    with pytest.raises(ValueError, match="out of range"):
        select_devices(devs, ["1"], cuda_visible=UUID1)


def test_session_honours_cuda_visible_devices(monkeypatch, tmp_path):
    session, _ = replay_session(monkeypatch, tmp_path, "two_gpu_counter.jsonl", cvd=UUID1, gpu_ids=["0"])
    gpus, foreign = session.gpu_environment()
    window, span_s = measure_bracketed(session, 6.0, 8.0)
    session.close()
    assert [g.uuid for g in gpus] == [UUID1] and foreign == []
    assert [g.gpu_uuid for g in window.energy.per_gpu] == [UUID1]
    # GPU 1's 200 W, not GPU 0's 300 W nor both (500 W), over the span the edges' counters were read.
    low_j, high_j = counter_energy_bounds(200.0, span_s)
    assert low_j <= window.energy.gpu_energy_raw_j <= high_j


def test_hidden_gpus_mean_energy_unavailable_with_reason(monkeypatch, tmp_path):
    session, _ = replay_session(monkeypatch, tmp_path, "two_gpu_counter.jsonl", cvd="")
    window = measure(session, 0.1, 0.5)
    session.close()
    assert window.energy.method == "unavailable" and window.energy.gpu_energy_raw_j is None
    assert "no GPU" in window.energy.unavailable_reason
    assert any("GPU energy unavailable" in w for w in window.warnings)


# -- environment ------------------------------------------------------------------------------
def test_environment_and_summary_from_replay(monkeypatch, tmp_path):
    session, _ = replay_session(monkeypatch, tmp_path, "two_gpu_counter.jsonl")
    gpus, foreign = session.gpu_environment()
    line = session.summary()
    session.close()
    assert [g.uuid for g in gpus] == [UUID0, UUID1]
    assert gpus[0].power_limit_w == 350.0 and gpus[0].persistence_mode is True and gpus[0].driver_version == "synthetic"
    assert line.startswith("GPU0 Synthetic GPU (no real device) | driver synthetic | limit 350 W | 40 °C;")
    assert line.endswith("[replay]")
    # The only warning: replayed readings are labelled as not measured on this machine.
    [notice] = session.warnings()
    assert "replayed from" in notice and "not a measurement of this machine" in notice


def test_foreign_processes_and_persistence_off_warn(monkeypatch, tmp_path):
    import json

    lines = (TRACES / "instant_only.jsonl").read_text().splitlines()
    header = json.loads(lines[0])
    header["gpus"][0].update(persistence_mode=False, processes=[{"pid": 4242, "used_memory_mb": 512.0}])
    trace = tmp_path / "foreign.jsonl"
    trace.write_text("\n".join([json.dumps(header)] + lines[1:]) + "\n")
    monkeypatch.setattr("_measurement_helpers.TRACES", tmp_path)
    session, events = replay_session(monkeypatch, tmp_path, "foreign.jsonl")
    _, foreign = session.gpu_environment()
    session.close()
    assert foreign == [{"pid": 4242, "used_memory_mb": 512.0, "gpu_uuid": UUID0, "gpu_index": 0}]
    warnings = session.warnings()
    assert any("persistence mode is off" in w for w in warnings)
    assert any("foreign processes" in w and "4242" in w for w in warnings)
    assert [f["message"] for name, f in events if name == "warning"] == warnings


def test_decode_throttle_bits():
    assert decode_reasons(0x4 | 0x40) == ["sw_power_cap", "hw_thermal_slowdown"]
    assert decode_reasons(0x1) == ["gpu_idle"]


# -- RAPL -------------------------------------------------------------------------------------
def _zone(root: Path, name: str, label: str, energy_uj: int, max_uj: int) -> Path:
    zone = root / name
    zone.mkdir(parents=True)
    (zone / "name").write_text(label + "\n")
    (zone / "energy_uj").write_text(f"{energy_uj}\n")
    (zone / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return zone


def test_rapl_package_and_dram_with_wraparound(tmp_path):
    pkg = _zone(tmp_path, "intel-rapl:0", "package-0", 900_000, 1_000_000)
    dram = _zone(tmp_path, "intel-rapl:0:0", "dram", 10_000, 5_000_000)
    zones = open_rapl(tmp_path)
    start = [z.read_energy() for z in zones]
    (pkg / "energy_uj").write_text("950000\n")
    [z.read_energy() for z in zones]  # the sampler's tick: each read adds the step since the last
    (pkg / "energy_uj").write_text("100000\n")  # wrapped past max_energy_range_uj
    (dram / "energy_uj").write_text("60000\n")
    cpu = cpu_energy(zones, start, [z.read_energy() for z in zones], window_s=2.0)
    assert cpu.method == "rapl"
    assert cpu.package_energy_j == pytest.approx(0.2)  # 50 000 + (100 000 + 1 000 000 - 950 000) uJ
    assert cpu.dram_energy_j == pytest.approx(0.05)
    assert cpu.domains == {"package-0": pytest.approx(0.2), "package-0/dram": pytest.approx(0.05)}


def test_rapl_absent_or_unreadable_is_unavailable_with_reason(tmp_path):
    with pytest.raises(RaplUnavailable, match="does not exist"):
        open_rapl(tmp_path / "missing")
    zone = tmp_path / "tree" / "intel-rapl:0"
    zone.mkdir(parents=True)
    (zone / "name").write_text("package-0\n")
    (zone / "max_energy_range_uj").write_text("1000\n")
    (zone / "energy_uj").mkdir()  # unreadable as a file (like a root-only file read by a user)
    with pytest.raises(RaplUnavailable, match="unreadable") as refused:
        open_rapl(tmp_path / "tree")
    cpu = cpu_energy([], [], [], 1.0, str(refused.value))  # what a window then publishes
    assert cpu.method == "unavailable" and "unreadable" in cpu.unavailable_reason
    assert cpu.package_energy_j is None


def test_session_reports_rapl_energy_beside_gpu_energy(monkeypatch, tmp_path):
    _zone(tmp_path / "powercap", "intel-rapl:0", "package-0", 0, 10**9)
    from llem_harness.measurement import MeasurementSession
    from llenergymeasure.domain import MeasurementConfig

    monkeypatch.setenv("LLEM_NVML_REPLAY", str(TRACES / "instant_only.jsonl"))
    monkeypatch.setenv("LLEM_NVML_REPLAY_SPEED", "10")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    session = MeasurementSession(MeasurementConfig(), None, None, tmp_path, lambda *a, **k: None,
                                 powercap_root=tmp_path / "powercap")
    session.start_window(lambda: None)
    (tmp_path / "powercap" / "intel-rapl:0" / "energy_uj").write_text("3000000\n")
    window = session.stop_window(lambda: None)
    session.close()
    assert window.cpu_energy.method == "rapl" and window.cpu_energy.package_energy_j == pytest.approx(3.0)
    assert window.energy.method == "integrated_instant_power"


def test_cpu_only_session_reports_unavailable_with_reason(monkeypatch, tmp_path):
    """No replay, no NVML: every GPU energy field is null with the reason; the run still completes."""
    from llem_harness.measurement import MeasurementSession
    from llem_harness.measurement.devices.nvml import NvmlBackend, NvmlUnavailable
    from llenergymeasure.domain import MeasurementConfig

    try:
        NvmlBackend.open().close()
        pytest.skip("NVML works on this machine; the CPU-only path is not reachable")
    except NvmlUnavailable:
        pass
    monkeypatch.delenv("LLEM_NVML_REPLAY", raising=False)
    session = MeasurementSession(MeasurementConfig(), None, None, tmp_path, lambda *a, **k: None,
                                 powercap_root=tmp_path / "none")
    assert session.gpu_environment() == ([], [])
    assert session.summary().startswith("no GPU measured (no NVIDIA GPU visible")
    base = session.measure_pre_load_idle()
    session.start_window(lambda: None)
    window = session.stop_window(lambda: None)
    session.close()
    assert base.method == "unavailable" and "nvmlInit failed" in base.unavailable_reason
    assert window.energy.method == "unavailable" and window.energy.gpu_energy_raw_j is None
    assert "nvmlInit failed" in window.energy.unavailable_reason
    assert window.cpu_energy.method == "unavailable" and window.cpu_energy.unavailable_reason
    assert window.sampler is None and window.throttle is None
    assert session.phase_energy([(0.0, 1.0, "prefill")], window).method == "unavailable"


def test_container_host_indices_map_to_the_exposed_gpus(monkeypatch, tmp_path):
    """In a container only the assigned GPUs are exposed (renumbered); host index "3" means that GPU."""
    session, events = replay_session(monkeypatch, tmp_path, "two_gpu_counter.jsonl", cvd=UUID1, gpu_ids=["3"])
    gpus, _ = session.gpu_environment()
    session.close()
    assert [g.uuid for g in gpus] == [UUID1]
    assert any("host numbering" in w for w in session.warnings())
    with pytest.raises(ValueError, match="out of range"):
        replay_session(monkeypatch, tmp_path, "two_gpu_counter.jsonl", cvd=UUID1, gpu_ids=["3", "4"])
