"""DockerRunner: one container per (experiment, cycle), the same harness and run directory as local.

The container gets the run directory (rw) at CONTAINER_RUN_DIR, the model cache as HF_HOME, the
local model/dataset paths read-only at the same absolute path, exactly the GPUs the run was
assigned, and nothing else: invoking uid:gid, every capability dropped, no-new-privileges. How
the run ended is read from the container's state (exit code, OOMKilled) only; what it measured is
read by `collect_outcome` from the files it wrote. No container of ours outlives this process:
each run removes its container in a `finally`, `close()` sweeps by label, an atexit hook sweeps
what is left, and `cleanup_orphans` removes what a crashed orchestrator left behind.
"""
from __future__ import annotations

import atexit
import json
import os
import socket
import time
from pathlib import Path

from ..domain import CONTAINER_RUN_DIR, DockerConfig, ExperimentConfig, RunSpec
from ..errors import PreFlightError
from .base import ExitInfo, LinePump, RunRequest, check_timeouts
from .docker_support import (CONTAINER_HF_HOME, ENGINE_DEFAULT_SHM, KEPT_PREFIX, LABEL_HOST, LABEL_PID,
                             LiveContainers, build_mounts, check_image_contract, cleanup_orphans,
                             container_labels, container_name, device_requests, docker_client, host_has_gpu,
                             model_cache_dir, nvidia_runtime_available, parse_extra_mount, split_lines,
                             EXTRA_MOUNTS_ENV, described_extra_mounts, read_write_mount_warnings)
from .image_build import default_image
from .signals import stop_requested
from .watchdog import secrets_prefix, secrets_root

CONTAINER_LOG_FILE = "container.log"  # stdout + stderr of the container (progress lines included)
STOP_GRACE_S = 3  # SIGTERM -> SIGKILL grace on interrupt
POLL_S = 0.05
GPUS_ISOLATED_ENV = "LLEM_GPUS_ISOLATED"
HARNESS_COMMAND = ["python", "-u", "-m", "llem_harness", CONTAINER_RUN_DIR]
# Host environment passed through when set: hub tokens reach the container only this way, never
# through experiment.json.
PASS_THROUGH_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT")
# Tokens never go into the container's environment (it shows in `docker inspect`): they are written
# to a mode-0600 file in a private host directory, mounted read-only, and named by HF_TOKEN_PATH,
# which huggingface_hub reads. The directory is deleted when the runner closes, or by the watchdog
# the moment a killed llem is gone (runners/watchdog.py).
SECRET_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
CONTAINER_SECRETS_DIR = "/run/llem-secrets"


class DockerRunner:
    name = "docker"

    def __init__(self, images: dict[str, str] | None = None, docker_config: DockerConfig | None = None,
                 client=None):
        self.images = dict(images or {})
        self.config = docker_config or DockerConfig()
        self._client = client
        self._gpu_present = host_has_gpu()
        self.orphans_removed: list[str] = []
        self.notices: list[str] = []  # pre-flight warnings the study prints (read-write extra mounts)
        atexit.register(self.close)

    @property
    def client(self):
        if self._client is None:
            self._client = docker_client()
        return self._client

    def image_for(self, spec: RunSpec | ExperimentConfig) -> str:
        cfg = spec.config if isinstance(spec, RunSpec) else spec
        image = spec.image if isinstance(spec, RunSpec) else None
        return image or self.images.get(cfg.engine) or default_image(cfg.engine)

    def _gpu_ids(self, spec: RunSpec | ExperimentConfig) -> list[str] | None:
        assigned = spec.gpu_ids if isinstance(spec, RunSpec) else None
        if assigned and not self._gpu_present and os.environ.get("LLEM_NVML_REPLAY"):
            return None  # GPUs of a replayed trace (no GPU here): nothing a container could be given
        return assigned if assigned is not None else self.config.gpus

    # -- preflight -------------------------------------------------------------------------------
    def preflight(self, specs: list[RunSpec] | list[ExperimentConfig]) -> None:
        """Daemon reachable, images present with this host's contract, GPU runtime if GPUs are wanted.

        Accepts RunSpecs or bare ExperimentConfigs (before run specs exist, only the engine matters).
        """
        client = self.client
        self.orphans_removed = cleanup_orphans(client)
        for image, engine in sorted({(self.image_for(s), _engine(s)) for s in specs}):
            check_image_contract(client, image, engine)
        for text in self.config.extra_mounts:
            parse_extra_mount(text)
        self.notices = read_write_mount_warnings(self.config.extra_mounts)
        wants_gpu = any(device_requests(self._gpu_ids(s), self._gpu_present) for s in specs)
        if wants_gpu and not nvidia_runtime_available(client):
            raise PreFlightError(
                "GPUs are requested for the containers but the Docker daemon has no NVIDIA container runtime. "
                "Install the NVIDIA Container Toolkit (https://docs.nvidia.com/datacenter/cloud-native/"
                "container-toolkit/latest/install-guide.html) and restart Docker, or run with --runner local.")

    # -- one run ---------------------------------------------------------------------------------
    def container_kwargs(self, request: RunRequest) -> dict:
        spec = request.spec
        engine = spec.config.engine
        env = {"PYTHONUNBUFFERED": "1", "HOME": "/tmp", "HF_HOME": CONTAINER_HF_HOME, "LLEM_IN_CONTAINER": "1"}
        env.update({k: os.environ[k] for k in PASS_THROUGH_ENV if os.environ.get(k)})
        if self.config.extra_mounts:  # recorded in the result: what besides the image the run could read
            env[EXTRA_MOUNTS_ENV] = json.dumps(described_extra_mounts(self.config.extra_mounts))
        mounts = build_mounts(spec, request.run_dir, model_cache_dir(self.config.model_cache_dir),
                              self.config.extra_mounts)
        secrets = self._secrets_dir()
        if secrets is not None:
            from docker.types import Mount

            mounts.append(Mount(CONTAINER_SECRETS_DIR, str(secrets), type="bind", read_only=True))
            env["HF_TOKEN_PATH"] = f"{CONTAINER_SECRETS_DIR}/hf_token"
        requests = device_requests(self._gpu_ids(spec), self._gpu_present)
        if requests:
            # The container sees only its assigned GPUs, renumbered from 0: host indices in
            # experiment.json no longer apply inside, so the harness uses every GPU it can see.
            env[GPUS_ISOLATED_ENV] = "1"
        kwargs = dict(
            image=self.image_for(spec), command=HARNESS_COMMAND, name=container_name(spec),
            labels=container_labels(spec, request.labels), environment=env, working_dir="/tmp",
            user=f"{os.getuid()}:{os.getgid()}", privileged=False, cap_drop=["ALL"],
            security_opt=["no-new-privileges"], init=True, detach=True, stdin_open=False, tty=False,
            mounts=mounts, device_requests=requests,
        )
        shm = self.config.shm_size or ENGINE_DEFAULT_SHM.get(engine)
        if shm:
            kwargs["shm_size"] = shm
        return kwargs

    def execute(self, request: RunRequest) -> ExitInfo:
        """Run one container to its end; a container the daemon refuses is a failed run, not a crash."""
        from docker.errors import DockerException

        try:
            container = self.client.containers.create(**self.container_kwargs(request))
        except DockerException as exc:
            return ExitInfo(exit_code=None, detail=f"container not created: {_short(exc)}")
        LiveContainers.add(container)
        pump: LinePump | None = None
        keep = False
        try:
            try:
                container.start()
            except DockerException as exc:
                return ExitInfo(exit_code=None, detail=f"container did not start: {_short(exc)}")
            logs = container.logs(stream=True, follow=True, stdout=True, stderr=True)
            pump = LinePump(split_lines(logs), request.run_dir / CONTAINER_LOG_FILE, request.on_event)
            started = time.monotonic()
            while True:
                state = _state(container)
                if state.get("Status") in ("exited", "dead"):
                    break
                if stop_requested.is_set():  # the study is stopping (a worker thread of a parallel study)
                    raise KeyboardInterrupt
                reason = check_timeouts(started, pump, request.timeout_s, request.silence_timeout_s)
                if reason:
                    state = _kill(container)
                    keep = self.config.keep_failed
                    return ExitInfo(exit_code=state.get("ExitCode"), timed_out=True, timeout_reason=reason,
                                    detail="container killed")
                time.sleep(POLL_S)
            pump.join()
            info = ExitInfo(exit_code=state.get("ExitCode"), oom_killed=bool(state.get("OOMKilled")),
                            detail=state.get("Error") or None,
                            log_error=str(pump.log_error) if pump.log_error else None)
            keep = self.config.keep_failed and (info.exit_code != 0 or info.oom_killed)
            return info
        except BaseException:
            keep = False  # an interrupt or a runner error never leaves a container behind
            _stop(container)
            raise
        finally:
            if pump is not None:
                pump.join()
            _dispose(container, keep, request.run_dir / CONTAINER_LOG_FILE)

    def _secrets_dir(self) -> Path | None:
        """A private directory holding the token (mode 0600), made once per runner; None without a token."""
        token = next((os.environ[k] for k in SECRET_ENV if os.environ.get(k)), None)
        if token is None:
            return None
        if getattr(self, "_secrets", None) is None:
            import tempfile

            # mode 0700, named with our pid: the watchdog (or the next start) removes it if we are killed
            self._secrets = Path(tempfile.mkdtemp(prefix=secrets_prefix(), dir=secrets_root()))
            fd = os.open(self._secrets / "hf_token", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(token)
        return self._secrets

    def close(self) -> None:
        """Remove every container this process started that is still there (kept ones excepted)."""
        LiveContainers.remove_all()
        if getattr(self, "_secrets", None) is not None:
            import shutil

            shutil.rmtree(self._secrets, ignore_errors=True)
            self._secrets = None
        if self._client is None:
            return
        try:
            mine = self._client.containers.list(all=True, filters={"label": [
                f"{LABEL_PID}={os.getpid()}", f"{LABEL_HOST}={socket.gethostname()}"]})
            for container in mine:
                if not container.name.startswith(KEPT_PREFIX):
                    container.remove(force=True)
        except Exception:
            pass
        finally:
            self._client.close()
            self._client = None


def _short(exc: Exception) -> str:
    return " ".join(str(getattr(exc, "explanation", None) or exc).split())[:500]


def _engine(spec: RunSpec | ExperimentConfig) -> str:
    return spec.config.engine if isinstance(spec, RunSpec) else spec.engine


def _state(container) -> dict:
    container.reload()
    return container.attrs.get("State", {})


def _kill(container) -> dict:
    try:
        container.kill()
    except Exception:
        pass
    try:
        container.wait(timeout=30)
    except Exception:
        pass
    try:
        return _state(container)
    except Exception:
        return {}


def _stop(container) -> None:
    """SIGTERM (forwarded by the container's init), SIGKILL after a short grace."""
    try:
        container.stop(timeout=STOP_GRACE_S)
    except KeyboardInterrupt:  # a second Ctrl-C: no grace
        _kill(container)
        raise
    except Exception:
        _kill(container)


def _dispose(container, keep: bool, log_path: Path) -> None:
    """Remove the container, or rename it `llem-kept-*` so no clean-up sweep removes it."""
    LiveContainers.discard(container)
    if keep:
        try:
            kept = KEPT_PREFIX + container.name.removeprefix("llem-")
            container.rename(kept)
            with open(log_path, "a", encoding="utf-8") as log:
                log.write(f"[llem] container kept for inspection: docker inspect {kept}; "
                          f"remove it with: docker rm {kept}\n")
            return
        except Exception:
            pass
    try:
        container.remove(force=True)
    except Exception:
        pass
