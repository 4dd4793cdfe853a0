"""The real NVML path (pytest -m gpu). Skips cleanly where NVML, a GPU or CUDA torch is missing.

Run by bench/gpu_validation.py (its `pytest -m gpu` stage); kept to seconds for that reason.
"""
from __future__ import annotations

import threading
import time

import pytest

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def nvml_backend():
    from llem_harness.measurement.devices.nvml import NvmlBackend, NvmlUnavailable

    try:
        backend = NvmlBackend.open()
    except NvmlUnavailable as exc:
        pytest.skip(f"no NVML here: {exc}")
    if not backend.devices():
        backend.close()
        pytest.skip("NVML initialised but reports no GPU")
    yield backend
    backend.close()


def test_static_info_and_uuid(nvml_backend):
    dev = nvml_backend.devices()[0]
    info = dev.info()
    assert dev.uuid.startswith(("GPU-", "MIG-")) and info.uuid == dev.uuid
    assert info.name and info.driver_version
    assert info.power_limit_w is None or info.power_limit_w > 0


def test_energy_counter_is_monotonic_or_says_why(nvml_backend):
    dev = nvml_backend.devices()[0]
    first = dev.read_energy()
    time.sleep(0.5)
    second = dev.read_energy()
    if first.energy_mj is None:
        assert first.unavailable_reason
    else:
        assert second.energy_mj >= first.energy_mj


def test_sampler_reads_instant_power_and_temperature(nvml_backend):
    from llem_harness.measurement.sampler import Sampler

    sampler = Sampler(nvml_backend, nvml_backend.devices(), period_ms=100)
    sampler.start()
    nvml_backend.wait(threading.Event(), 1.5)
    sampler.stop()
    stats = sampler.stats()
    assert stats.n_samples >= 10
    assert "temperature_c" in stats.quantities
    assert {"power_instant_w", "power_avg_w"} & set(stats.quantities)


def test_session_measures_a_window_with_a_method(nvml_backend, tmp_path, monkeypatch):
    from llem_harness.measurement import MeasurementSession
    from llenergymeasure.domain import MeasurementConfig

    monkeypatch.delenv("LLEM_NVML_REPLAY", raising=False)
    session = MeasurementSession(MeasurementConfig(baseline={"duration_s": 1.0}), None, None, tmp_path,
                                 lambda *a, **k: None)
    gpus, _ = session.gpu_environment()
    base = session.measure_pre_load_idle()
    session.start_window(lambda: None)
    time.sleep(2.0)
    window = session.stop_window(lambda: None)
    session.close()
    assert gpus and base.method in ("counter_delta", "instant_power_samples")
    assert window.energy.method in ("counter", "integrated_instant_power")
    assert window.energy.gpu_energy_raw_j > 0
    assert any("shorter than" in w for w in window.warnings)  # a 2 s window is flagged


def test_record_cli_writes_a_trace_that_replays(nvml_backend, tmp_path):
    from llem_harness.measurement.record import main as record_main
    from llem_harness.measurement.devices.replay import ReplayBackend, read_trace

    out = tmp_path / "rec.jsonl"
    assert record_main([str(out), "--duration-s", "1.5", "--period-ms", "100"]) == 0
    header, rows = read_trace(out)
    assert header["source"] == "recorded" and header["driver_version"] and header["recorded_at"]
    assert len(rows) >= 10 and all(r["t_s"] >= 0 for r in rows)
    replay = ReplayBackend(header, rows)
    assert replay.devices()[0].uuid == header["gpus"][0]["uuid"]


@pytest.fixture(scope="module")
def cuda_torch():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch sees no CUDA device")
    return torch


def test_counter_and_instant_power_rise_under_a_cuda_load(nvml_backend, cuda_torch):
    """A 3 s matmul loop must read as more energy per second than the second before it."""
    from llem_harness.measurement.sampler import Sampler

    torch = cuda_torch
    dev = nvml_backend.devices()[0]
    idle0 = dev.read_energy().energy_mj
    time.sleep(1.0)
    idle1 = dev.read_energy().energy_mj
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    sampler = Sampler(nvml_backend, [dev], period_ms=100)
    sampler.start()
    start = dev.read_energy().energy_mj
    t0 = time.monotonic()
    while time.monotonic() - t0 < 3.0:
        a = (a @ a).clamp_(-1, 1)
        torch.cuda.synchronize()
    end = dev.read_energy().energy_mj
    t1 = time.monotonic()
    sampler.stop()
    if idle0 is None:
        pytest.skip("energy counter not readable here")
    idle_w = (idle1 - idle0) / 1000.0
    load_w = (end - start) / 1000.0 / (t1 - t0)
    assert load_w > idle_w * 1.2
    instant = [tk.samples[0].power_instant_w for tk in sampler.snapshot() if tk.samples[0].power_instant_w]
    if instant:
        assert max(instant) > idle_w


def test_models_make_on_cuda_loads_and_generates_on_the_gpu(cuda_torch, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llenergymeasure.models.writer import make_shaped_model

    torch = cuda_torch
    path = make_shaped_model(tmp_path / "m", "llama-test", dtype="bf16", device="cuda")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16).to("cuda")
    tok = AutoTokenizer.from_pretrained(path)
    out = model.generate(**tok(["gpu"], return_tensors="pt").to("cuda"), max_new_tokens=4, min_new_tokens=4,
                         do_sample=False, pad_token_id=tok.pad_token_id)
    assert out.shape[1] >= 5 and out.device.type == "cuda"
