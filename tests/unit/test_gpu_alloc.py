"""GPU allocation as a pure function: N GPUs, runs needing k each, failures freeing GPUs."""
import pytest

from llenergymeasure.study.gpu_alloc import AllocationError, GpuAllocator, gpu_sets, n_parallel


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
