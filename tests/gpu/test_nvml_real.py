"""The real NVML path (pytest -m gpu). Skips cleanly where NVML or a GPU is missing."""
from __future__ import annotations

import threading
import time

import pytest

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def nvml_backend():
    from llem_harness.measurement.nvml_real import NvmlBackend, NvmlUnavailable

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
    base = session.baseline()
    session.start_window(lambda: None)
    time.sleep(2.0)
    window = session.stop_window(lambda: None)
    session.close()
    assert gpus and base.method in ("counter_delta", "instant_power_samples")
    assert window.energy.method in ("counter", "integrated_instant_power")
    assert window.energy.gpu_energy_raw_j > 0
    assert any("shorter than" in w for w in window.warnings)  # a 2 s window is flagged
