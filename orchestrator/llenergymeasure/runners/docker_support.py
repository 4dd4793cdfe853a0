"""What the Docker runner needs besides the run loop: client, labels, mounts, GPUs, clean-up.

Split out of `docker_runner.py` so each piece can be read (and tested) on its own. The Docker
SDK (`docker`) is imported inside functions only: `llem --help` must never pay for it.
"""
from __future__ import annotations

import atexit
import os
import shutil
import socket
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..domain import CONTAINER_RUN_DIR, RunSpec
from ..errors import PreFlightError
from .local_orphans import pid_alive, pid_namespace

LABEL_PREFIX = "llem."
LABEL_STUDY = "llem.study_id"
LABEL_HASH = "llem.experiment_hash"
LABEL_CYCLE = "llem.cycle"
LABEL_RUN = "llem.run_id"
LABEL_HOST = "llem.orchestrator_host"
LABEL_PID = "llem.orchestrator_pid"
LABEL_PIDNS = "llem.orchestrator_pidns"  # the pid namespace LABEL_PID belongs to (local_orphans.py)
CONTRACT_LABEL = "org.llenergymeasure.contract"
VERSION_LABEL = "org.opencontainers.image.version"
KEPT_PREFIX = "llem-kept-"  # containers kept on purpose (--keep-failed): never auto-removed
CONTAINER_HF_HOME = "/llem/hf-cache"
POWERCAP_DIR = "/sys/class/powercap"
# Engines whose worker processes exchange tensors through /dev/shm; Docker's 64 MB default is too small.
ENGINE_DEFAULT_SHM = {"vllm": "8g", "tensorrt_llm": "8g"}


def docker_client(timeout_s: float = 60.0):
    """A Docker SDK client from the environment (DOCKER_HOST etc.); PreFlightError if unreachable."""
    try:
        import docker
    except ImportError as exc:  # pragma: no cover - docker is a host dependency
        raise PreFlightError("the Docker SDK for Python is missing: pip install docker") from exc
    try:
        client = docker.from_env(timeout=int(timeout_s))
        client.ping()
    except Exception as exc:
        raise PreFlightError(
            f"Docker daemon not reachable ({type(exc).__name__}: {exc}). Start Docker (or install it: "
            "https://docs.docker.com/engine/install/), or run with `llem run --runner local`."
        ) from exc
    return client


def daemon_reachable(timeout_s: float = 3.0) -> bool:
    try:
        client = docker_client(timeout_s)
    except PreFlightError:
        return False
    client.close()
    return True


def container_labels(spec: RunSpec, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Labels that let a later orchestrator find (and remove) what this one started."""
    labels = {
        LABEL_STUDY: spec.study_id,
        LABEL_HASH: spec.config_hash,
        LABEL_CYCLE: str(spec.cycle),
        LABEL_RUN: spec.run_id,
        LABEL_HOST: socket.gethostname(),
        LABEL_PID: str(os.getpid()),
        LABEL_PIDNS: pid_namespace() or "",
    }
    labels.update({str(k): str(v) for k, v in (extra or {}).items()})
    return labels


def container_name(spec: RunSpec) -> str:
    safe = "".join(c if c.isalnum() or c in "_.-" else "-" for c in f"{spec.study_id}-{spec.run_id}")
    return f"llem-{safe}"[:200]


def model_cache_dir(configured: str | None) -> Path:
    """Host directory used as HF_HOME in every container, so no container downloads a model twice."""
    if configured:
        return Path(configured).expanduser().resolve()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser().resolve()
    return Path.home() / ".cache" / "huggingface"


def parse_extra_mount(text: str) -> tuple[str, str, bool]:
    """'HOST:CONTAINER[:ro|rw]' -> (absolute host path, container path, read_only)."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
        raise PreFlightError(f"docker.extra_mounts entry '{text}' is not 'HOST:CONTAINER[:ro|rw]'")
    host = Path(parts[0]).expanduser().resolve()
    if not host.exists():
        raise PreFlightError(f"docker.extra_mounts: host path {host} does not exist")
    if not parts[1].startswith("/"):
        raise PreFlightError(f"docker.extra_mounts: container path '{parts[1]}' must be absolute")
    return str(host), parts[1], len(parts) == 3 and parts[2] == "ro"


EXTRA_MOUNTS_ENV = "LLEM_EXTRA_MOUNTS"  # the container's extra mounts, recorded in the result's environment


def described_extra_mounts(extra_mounts: Iterable[str]) -> list[str]:
    """Each docker.extra_mounts entry as 'HOST:CONTAINER:ro|rw' (absolute host path), as the result records it."""
    described = []
    for text in extra_mounts:
        host, target, read_only = parse_extra_mount(text)
        described.append(f"{host}:{target}:{'ro' if read_only else 'rw'}")
    return described


def read_write_mount_warnings(extra_mounts: Iterable[str]) -> list[str]:
    """A warning per read-write extra mount: the run (and the engine it loads) can change those host files."""
    warnings = []
    for text in extra_mounts:
        host, target, read_only = parse_extra_mount(text)
        if not read_only:
            warnings.append(f"docker.extra_mounts: {host} is mounted read-write at {target}: the container (the "
                            "harness and the engine it runs) can change those host files; add ':ro' unless the run "
                            "must write there")
    return warnings


def input_paths(spec: RunSpec) -> list[str]:
    """Local model directory and dataset file named by the config, if they exist on this host.

    The study loop makes them absolute before writing experiment.json; they are mounted read-only
    at the same path so the config means the same thing inside and outside. A path that does not
    exist is not mounted: the harness then reports its own error for it.
    """
    paths = []
    cfg = spec.config
    candidates = [cfg.model]
    if cfg.dataset.source == "jsonl" and cfg.dataset.path:
        candidates.append(cfg.dataset.path)
    for candidate in candidates:
        if os.path.isabs(candidate) and os.path.exists(candidate):
            paths.append(os.path.realpath(candidate) if os.path.islink(candidate) else candidate)
    return paths


def build_mounts(spec: RunSpec, run_dir: Path, cache_dir: Path, extra_mounts: Iterable[str]) -> list[Any]:
    """Bind mounts for one run: run dir (rw), HF cache (rw), inputs (ro), extras, powercap (ro)."""
    from docker.types import Mount

    cache_dir.mkdir(parents=True, exist_ok=True)  # else the daemon would create it, owned by root
    mounts = [Mount(CONTAINER_RUN_DIR, str(run_dir.resolve()), type="bind"),
              Mount(CONTAINER_HF_HOME, str(cache_dir), type="bind")]
    targets = {CONTAINER_RUN_DIR, CONTAINER_HF_HOME}
    for path in input_paths(spec):
        if path not in targets:
            mounts.append(Mount(path, path, type="bind", read_only=True))
            targets.add(path)
    for text in extra_mounts:
        host, target, read_only = parse_extra_mount(text)
        if target not in targets:
            mounts.append(Mount(target, host, type="bind", read_only=read_only))
            targets.add(target)
    if os.path.isdir(POWERCAP_DIR) and POWERCAP_DIR not in targets:
        mounts.append(Mount(POWERCAP_DIR, POWERCAP_DIR, type="bind", read_only=True))
    return mounts


def host_has_gpu() -> bool:
    """An NVIDIA driver is loaded on this host (device nodes or the driver's proc entry)."""
    gpus = Path("/proc/driver/nvidia/gpus")
    return os.path.exists("/dev/nvidiactl") or (gpus.is_dir() and any(gpus.iterdir()))


def nvidia_runtime_available(client) -> bool:
    """The daemon can hand GPUs to containers: an `nvidia` runtime or the toolkit's hook/CLI."""
    try:
        runtimes = client.info().get("Runtimes") or {}
    except Exception:
        runtimes = {}
    return "nvidia" in runtimes or any(shutil.which(tool) for tool in
                                       ("nvidia-container-runtime-hook", "nvidia-container-cli"))


def device_requests(gpu_ids: list[str] | None, gpu_present: bool) -> list[Any]:
    """Exactly the assigned GPUs; all of them when none were assigned and a GPU exists; else none."""
    from docker.types import DeviceRequest

    if gpu_ids:
        return [DeviceRequest(driver="nvidia", device_ids=[str(g) for g in gpu_ids], capabilities=[["gpu"]])]
    if gpu_ids is None and gpu_present:
        return [DeviceRequest(driver="nvidia", count=-1, capabilities=[["gpu"]])]
    return []


def check_image_contract(client, image: str, engine: str) -> None:
    """Refuse a missing image, or one built for another contract, naming the command that fixes it."""
    import docker

    from ..domain import contract_fingerprint

    rebuild = f"llem images build {engine}"
    try:
        labels = client.images.get(image).labels or {}
    except docker.errors.ImageNotFound:
        raise PreFlightError(f"Docker image '{image}' for engine '{engine}' not found. Build it with: {rebuild} "
                             f"(or: docker-compose -f compose/docker-compose.yml build {engine})") from None
    expected, found = contract_fingerprint(), labels.get(CONTRACT_LABEL)
    if found != expected:
        raise PreFlightError(
            f"Docker image '{image}' was built for contract '{found}' but this llem speaks contract '{expected}' "
            f"(label {CONTRACT_LABEL}); results could not be read back. Rebuild it with: {rebuild}")


def split_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """Docker log streams arrive in arbitrary chunks; LinePump wants whole lines."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            yield line.decode("utf-8", errors="replace") + "\n"
    if pending:
        yield pending.decode("utf-8", errors="replace") + "\n"


def cleanup_orphans(client) -> list[str]:
    """Remove containers started by an orchestrator on this host whose process is gone.

    Containers renamed `llem-kept-*` (kept on failure on request) are left for the user.
    Returns the names removed.
    """
    orphans = []
    host = socket.gethostname()
    for container in client.containers.list(all=True, filters={"label": f"{LABEL_HOST}={host}"}):
        pid_text = (container.labels or {}).get(LABEL_PID, "")
        if container.name.startswith(KEPT_PREFIX) or not pid_text.isdigit():
            continue
        pid = int(pid_text)
        recorded_ns = (container.labels or {}).get(LABEL_PIDNS)
        if recorded_ns and recorded_ns != pid_namespace():  # its llem's pid means nothing in this namespace
            continue
        if pid != os.getpid() and not pid_alive(pid):
            orphans.append(container)
    return force_remove(orphans)


def force_remove(containers) -> list[str]:
    """Remove containers (running or not); names of those removed. Errors are not fatal here:
    this runs in clean-up paths, where a container already gone is the goal reached."""
    removed = []
    for container in containers:
        try:
            container.remove(force=True)
            removed.append(container.name)
        except Exception:  # noqa: BLE001
            pass
    return removed


class LiveContainers:
    """Every container this process has started and not yet removed; removed at exit, in any path.

    An `atexit` hook is the last line of defence (normal exit, sys.exit, unhandled exception);
    the runner removes containers itself in its own `finally` blocks first.
    """

    _lock = threading.Lock()
    _live: dict[str, Any] = {}
    _registered = False

    @classmethod
    def add(cls, container) -> None:
        with cls._lock:
            cls._live[container.id] = container
            if not cls._registered:
                atexit.register(cls.remove_all)
                cls._registered = True

    @classmethod
    def discard(cls, container) -> None:
        with cls._lock:
            cls._live.pop(container.id, None)

    @classmethod
    def remove_all(cls) -> list[str]:
        with cls._lock:
            containers, cls._live = list(cls._live.values()), {}
        return force_remove(containers)
