"""Which GPUs a sequential run is given and measures (the end-to-end study is
tests/integration/test_replay_gpu_assignment.py)."""
from __future__ import annotations

import os
import sys

import pytest

from llenergymeasure.domain import ExperimentConfig, StudyConfig
from llenergymeasure.errors import ConfigError
from llenergymeasure.executors.sequential import sequential_gpu_set
from llenergymeasure.runners.gpu_presence import cuda_visible_devices, measurable_gpu_uuids
from tests.helpers import REPO_ROOT

FOUR = REPO_ROOT / "tests" / "fixtures" / "traces" / "four_gpu_one_busy.jsonl"
GPU = "GPU-5e5e5e5e-0000-4000-8000-00000000000{}"


@pytest.fixture
def four_gpu_node(monkeypatch):
    monkeypatch.setenv("LLEM_NVML_REPLAY", str(FOUR))


def test_a_sequential_run_is_given_one_gpu_of_four(four_gpu_node):
    assert measurable_gpu_uuids() == [GPU.format(i) for i in range(4)]
    study = StudyConfig.model_validate({"name": "s"})
    assert sequential_gpu_set(study, [ExperimentConfig(model="/m")]) == [GPU.format(0)]


def test_tensor_parallel_two_is_given_two_gpus(four_gpu_node):
    study = StudyConfig.model_validate({"name": "s"})
    tp2 = ExperimentConfig(model="/m", engine="vllm", vllm={"tensor_parallel_size": 2})
    assert sequential_gpu_set(study, [ExperimentConfig(model="/m"), tp2]) == [GPU.format(0), GPU.format(1)]


def test_execution_gpus_is_the_pool_and_too_few_is_refused(four_gpu_node):
    study = StudyConfig.model_validate({"name": "s", "execution": {"gpus": [GPU.format(2), GPU.format(3)]}})
    assert sequential_gpu_set(study, [ExperimentConfig(model="/m")]) == [GPU.format(2)]
    study = StudyConfig.model_validate({"name": "s", "execution": {"gpus": [GPU.format(2)]}})
    tp2 = ExperimentConfig(model="/m", engine="vllm", vllm={"tensor_parallel_size": 2})
    with pytest.raises(ConfigError, match="execution.gpus"):
        sequential_gpu_set(study, [tp2])


def test_a_host_without_gpus_assigns_nothing(monkeypatch):
    monkeypatch.delenv("LLEM_NVML_REPLAY", raising=False)
    monkeypatch.setitem(sys.modules, "pynvml", None)
    monkeypatch.setenv("PATH", "/nonexistent")
    assert sequential_gpu_set(StudyConfig.model_validate({"name": "s"}), [ExperimentConfig(model="/m")]) is None


def test_real_gpus_are_named_to_cuda_by_index_in_pci_order(monkeypatch, tmp_path):
    """vLLM parses CUDA_VISIBLE_DEVICES entries as integers: a UUID there crashes it. The run's
    UUIDs become NVML indices, with the PCI order that makes CUDA's numbering NVML's."""
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0a1b2c3d-1111-2222-3333-444455556666)'\n"
                   "echo 'GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-9f8e7d6c-1111-2222-3333-444455556666)'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.setitem(sys.modules, "pynvml", None)
    monkeypatch.delenv("LLEM_NVML_REPLAY", raising=False)
    second = "GPU-9f8e7d6c-1111-2222-3333-444455556666"
    assert sequential_gpu_set(StudyConfig.model_validate({"name": "s"}), []) == [
        "GPU-0a1b2c3d-1111-2222-3333-444455556666"]
    assert cuda_visible_devices([second]) == ("1", {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"})
    assert cuda_visible_devices(["fake0"]) == ("fake0", {})  # machinery tests' fake ids pass through


def test_the_harness_measures_exactly_the_gpus_the_runner_exposed(four_gpu_node):
    from llem_harness.measurement.devices.selection import select_devices
    from llem_harness.measurement.devices.replay import ReplayBackend

    visible, order = cuda_visible_devices([GPU.format(1), GPU.format(2)])
    backend = ReplayBackend.from_file(str(FOUR))
    try:
        chosen, notes = select_devices(backend.devices(), [GPU.format(1), GPU.format(2)], visible,
                                       order["CUDA_DEVICE_ORDER"])
    finally:
        backend.close()
    assert [d.uuid for d in chosen] == [GPU.format(1), GPU.format(2)] and notes == []


def test_docker_gpus_is_a_deprecated_name_of_execution_gpus():
    from pydantic import ValidationError

    study = StudyConfig.model_validate({"name": "s", "docker": {"gpus": ["0", "1"]}})
    assert study.execution.gpus == ["0", "1"]
    with pytest.raises(ValidationError, match="docker.gpus is a deprecated name of execution.gpus"):
        StudyConfig.model_validate({"name": "s", "docker": {"gpus": ["0"]}, "execution": {"gpus": ["1"]}})


def test_an_idle_gpu_needs_no_utilisation_and_its_idle_power():
    from types import SimpleNamespace

    from llenergymeasure.domain import BaselineResult, EnergyResult, GpuEnergy
    from llem_harness.measurement.devices import GpuSample
    from llem_harness.measurement.idle_gpus import idle_gpus
    from llem_harness.measurement.sampler import Tick

    devs = [SimpleNamespace(index=i, uuid=GPU.format(i)) for i in range(4)]
    # GPU 0 busy; 1 idle; 2 at 0 % utilisation but drawing far above its idle power; 3 without utilisation readings.
    utils, powers = [95.0, 0.0, 0.0, None], [300.0, 61.0, 200.0, 60.0]
    ticks = [Tick(t_s=t, samples=[GpuSample(t_s=t, utilization_pct=u, power_instant_w=p) for u, p in zip(utils, powers)])
             for t in (0.0, 0.5, 1.0)]
    energy = EnergyResult(window_s=1.0, per_gpu=[GpuEnergy(gpu_uuid=d.uuid, energy_j=p) for d, p in zip(devs, powers)])
    loaded = BaselineResult(kind="loaded", idle_power_per_gpu_w={d.uuid: 60.0 for d in devs})
    idle, warnings = idle_gpus(devs, ticks, energy, [loaded, None])
    assert idle == [GPU.format(1)]
    assert len(warnings) == 1 and "GPU 1" in warnings[0] and "idle 60 W" in warnings[0]


def test_a_gpu_the_run_uses_but_does_not_measure_fails_the_run(monkeypatch, tmp_path):
    """The run measures GPU 0; its own process shows up on GPU 2 (an engine that ignored
    CUDA_VISIBLE_DEVICES): GPU 2's energy would be in no figure, so the run fails before its window."""
    from _measurement_helpers import replay_session
    from llem_harness.measurement.unmeasured_use import UnmeasuredGpuUse

    session, _ = replay_session(monkeypatch, tmp_path, "four_gpu_one_busy.jsonl", gpu_ids=[GPU.format(0)])
    try:
        assert [d.uuid for d in session.devices] == [GPU.format(0)]
        by_uuid = {d.uuid: d for d in session.backend.devices()}
        own = [{"pid": os.getpid(), "type": "compute", "used_memory_mb": 900.0}]
        monkeypatch.setattr(by_uuid[GPU.format(0)], "processes", lambda: own)
        session.measure_loaded_idle()  # ours on the measured GPU only: fine
        monkeypatch.setattr(by_uuid[GPU.format(2)], "processes", lambda: own)
        with pytest.raises(UnmeasuredGpuUse, match=rf"GPU 2 \({GPU.format(2)}\): pid {os.getpid()}"):
            session.measure_loaded_idle()
    finally:
        session.close()
