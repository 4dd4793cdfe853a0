"""GPU allocation as a pure function: N GPUs, runs needing k each, failures freeing GPUs."""
import os
import sys

import pytest

from llenergymeasure.executors.gpu_alloc import AllocationError, GpuAllocator, gpu_sets, n_parallel


def test_sets_are_disjoint_and_sized():
    sets = gpu_sets(["a", "b", "c", "d", "e"], 2)
    assert sets == [("a", "b"), ("c", "d")]  # "e" stays idle: a run never gets a partial set
    flat = [g for s in sets for g in s]
    assert len(flat) == len(set(flat))


def test_run_needing_more_gpus_than_host_is_refused_with_fix():
    with pytest.raises(AllocationError, match="gpus_per_run"):
        gpu_sets(["0", "1"], 4)
    with pytest.raises(AllocationError, match="duplicate"):
        gpu_sets(["0", "0"], 1)


def test_parallel_auto_and_cap():
    assert n_parallel("auto", 4) == 4
    assert n_parallel(8, 2) == 2
    assert n_parallel(1, 8) == 1


def test_no_gpu_shared_and_failure_frees_set():
    alloc = GpuAllocator(gpu_sets(["0", "1", "2", "3"], 2), limit=2)
    first = alloc.acquire("run-1")
    second = alloc.acquire("run-2")
    assert first == (0, ("0", "1")) and second == (1, ("2", "3"))
    assert alloc.acquire("run-3") is None  # all GPUs busy: the third run waits
    assert alloc.in_use() == {"0", "1", "2", "3"}
    alloc.release(first[0])  # run-1 failed: its GPUs are free again
    assert alloc.acquire("run-3") == (0, ("0", "1"))
    with pytest.raises(KeyError):
        alloc.release(5)


def test_limit_below_sets_keeps_extra_sets_idle():
    alloc = GpuAllocator(gpu_sets(["0", "1", "2"], 1), limit=1)
    assert alloc.acquire("a") == (0, ("0",))
    assert alloc.acquire("b") is None


def test_parallel_runs_get_gpus_by_uuid_from_nvidia_smi(monkeypatch, tmp_path):
    """No GPU here: an `nvidia-smi` on PATH prints what the real one prints for `-L` (format from a
    driver 550 host), so the UUID listing and the sets built from it are exercised for real."""
    from llenergymeasure.domain import StudyConfig
    from llenergymeasure.runners.gpu_presence import visible_gpu_uuids, visible_nvidia_gpus
    from llenergymeasure.executors.parallel import plan_gpu_sets

    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0a1b2c3d-1111-2222-3333-444455556666)'\n"
                   "echo 'GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-9f8e7d6c-1111-2222-3333-444455556666)'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.setitem(sys.modules, "pynvml", None)  # NVML bindings absent: the nvidia-smi path
    assert visible_nvidia_gpus() == (2, "nvidia-smi")
    uuids = visible_gpu_uuids()
    assert uuids == ["GPU-0a1b2c3d-1111-2222-3333-444455556666", "GPU-9f8e7d6c-1111-2222-3333-444455556666"]
    study = StudyConfig.model_validate({"name": "s", "execution": {"parallel": "auto"}})
    assert plan_gpu_sets(study, []) == [(uuids[0],), (uuids[1],)]


def test_gpus_per_run_defaults_to_the_largest_tensor_parallel_size():
    from llenergymeasure.domain import ExperimentConfig
    from llenergymeasure.executors.gpu_alloc import effective_gpus_per_run

    tp2 = ExperimentConfig(model="/m", engine="vllm", vllm={"tensor_parallel_size": 2})
    tp1 = ExperimentConfig(model="/m", engine="vllm")
    plain = ExperimentConfig(model="/m")
    assert effective_gpus_per_run(None, [plain]) == 1
    assert effective_gpus_per_run(None, [tp1, tp2, plain]) == 2
    assert effective_gpus_per_run(4, [tp2]) == 4  # given: kept when every configuration fits
    with pytest.raises(AllocationError, match="execution.gpus_per_run to at least 2"):
        effective_gpus_per_run(1, [tp2])
