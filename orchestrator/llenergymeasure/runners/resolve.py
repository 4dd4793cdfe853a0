"""Which runner (and image) each engine of a study uses, decided once before the study starts.

Runner, per engine, first match wins:
  1. CLI: `llem-docker` (env LLEM_FORCE_DOCKER=1) forces docker; else an explicit `--runner`
  2. the study YAML's `runners:`
  3. environment `LLEM_RUNNER_<ENGINE>` (e.g. LLEM_RUNNER_VLLM=docker)
  4. the user config file (`$LLEM_CONFIG`, else `~/.config/llenergymeasure/config.yaml`): `runners:`
  5. auto: docker if a daemon is reachable and the engine is not importable here, else local
Image, per engine: YAML `images:` > user config `images:` > `llenergymeasure/<engine>:<version>`.

A study with several engines runs the auto-decided ones in Docker when a daemon is reachable and
their images are built (isolation: engines never share a Python environment); otherwise those
installed here run here, each experiment in its own process, with a note saying so and how to pin
the choice. An engine that can run nowhere (not installed here, no image) is reported in
`plan.unavailable`; the study loop records its experiments as failed and goes on.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..domain import StudyConfig
from ..domain.config import ENGINE_ALIASES, ENGINES
from ..errors import ConfigError, PreFlightError
from .image_build import default_image

FORCE_DOCKER_ENV = "LLEM_FORCE_DOCKER"
USER_CONFIG_ENV = "LLEM_CONFIG"
# Modules the harness imports for each engine; find_spec checks them without importing.
ENGINE_MODULES = {"transformers": ("torch", "transformers"), "vllm": ("vllm",),
                  "tensorrt_llm": ("tensorrt_llm",), "llama_cpp": ("llama_cpp",)}
RUNNER_CHOICES = ("local", "docker")
DOCKER_INSTALL = "install Docker (https://docs.docker.com/engine/install/) and start it"


def user_config_path() -> Path:
    if os.environ.get(USER_CONFIG_ENV):
        return Path(os.environ[USER_CONFIG_ENV]).expanduser()
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "llenergymeasure" / "config.yaml"


def load_user_config(path: Path | None = None) -> dict[str, dict[str, str]]:
    """`runners:` and `images:` from the user config file (missing file: empty)."""
    import yaml

    path = path or user_config_path()
    if not path.is_file():
        return {"runners": {}, "images": {}}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"user config {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"user config {path} must be a mapping with keys runners: and images:")
    out = {}
    for key in ("runners", "images"):
        section = data.get(key) or {}
        if not isinstance(section, dict):
            raise ConfigError(f"user config {path}: '{key}' must map engine names to values")
        out[key] = {_engine(k, f"user config {path}: {key}"): str(v) for k, v in section.items()}
        if key == "runners":
            for engine, runner in out[key].items():
                if runner not in RUNNER_CHOICES + ("auto",):
                    raise ConfigError(f"user config {path}: runners.{engine} is '{runner}'; use local, docker or auto")
    return out


def _engine(name: Any, where: str) -> str:
    engine = ENGINE_ALIASES.get(str(name).lower(), str(name).lower())
    if engine not in ENGINES:
        raise ConfigError(f"{where}: unknown engine '{name}'; valid: {', '.join(ENGINES)}")
    return engine


def engine_installed(engine: str) -> bool:
    return all(importlib.util.find_spec(module) is not None for module in ENGINE_MODULES.get(engine, (engine,)))


def explicit_choice(engine: str, study: StudyConfig, cli_runner: str | None,
                    user_runners: dict[str, str]) -> tuple[str, str] | None:
    """(runner, source) from the first level that names one, or None for auto."""
    if os.environ.get(FORCE_DOCKER_ENV) == "1":
        return "docker", "llem-docker"
    candidates = [(cli_runner, "--runner"), (study.runners.get(engine), "study runners:"),
                  (os.environ.get(f"LLEM_RUNNER_{engine.upper()}"), f"LLEM_RUNNER_{engine.upper()}"),
                  (user_runners.get(engine), f"user config {user_config_path()}")]
    for value, source in candidates:
        if value and value != "auto":
            if value not in RUNNER_CHOICES:
                raise ConfigError(f"{source}: runner '{value}' for {engine}; use local, docker or auto")
            return value, source
    return None


@dataclass
class RunnerPlan:
    """The decision for each engine, and the runner objects the study loop uses."""

    runners: dict[str, str] = field(default_factory=dict)          # engine -> local | docker
    sources: dict[str, str] = field(default_factory=dict)          # engine -> why
    images: dict[str, str] = field(default_factory=dict)           # engine -> image (docker engines)
    unavailable: dict[str, str] = field(default_factory=dict)      # engine -> reason
    notices: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    _local: Any = None
    _docker: Any = None
    _docker_config: Any = None

    def runner_for(self, engine: str):
        if engine in self.unavailable or engine not in self.runners:
            return None
        if self.runners[engine] == "docker":
            if self._docker is None:
                from .docker_runner import DockerRunner

                self._docker = DockerRunner(images=self.images, docker_config=self._docker_config)
            return self._docker
        if self._local is None:
            from .local import LocalRunner

            self._local = LocalRunner()
        return self._local

    def image_for(self, engine: str) -> str | None:
        return self.images.get(engine) if self.runners.get(engine) == "docker" else None

    def close(self) -> None:
        for runner in (self._docker, self._local):
            if runner is not None:
                runner.close()


def resolve_runners(study: StudyConfig, engines: set[str], cli_runner: str | None = None,
                    docker_reachable: bool | None = None) -> RunnerPlan:
    """Decide local or docker per engine (module docstring has the order). Raises PreFlightError."""
    from .docker_support import daemon_reachable, docker_client
    from .gpu_presence import gpu_only_unavailable

    user = load_user_config()
    images = {e: study.images.get(e) or user["images"].get(e) or default_image(e) for e in engines}
    no_gpu = gpu_only_unavailable(engines, images)  # recorded per run as EngineUnavailable; the study goes on
    all_engines, engines = engines, set(engines) - set(no_gpu)
    plan = RunnerPlan(_docker_config=study.docker)
    explicit = {e: c for e in sorted(engines)
                if (c := explicit_choice(e, study, cli_runner, user["runners"])) is not None}
    reachable = docker_reachable

    def docker_ok() -> bool:
        nonlocal reachable
        if reachable is None:
            reachable = daemon_reachable()
        return reachable

    multi = len(engines) > 1
    for engine in sorted(engines):
        plan.images[engine] = images[engine]
    auto = sorted(set(engines) - set(explicit))
    # Several engines go to Docker only when it can run them all; images not built yet for engines
    # installed here would otherwise stop the study before anything runs.
    unbuilt = _missing_images(plan, auto, docker_client) if multi and auto and docker_ok() else []
    in_docker = multi and docker_ok() and not any(engine_installed(e) for e in unbuilt)
    for engine in sorted(engines):
        if engine in explicit:
            plan.runners[engine], plan.sources[engine] = explicit[engine]
        elif in_docker:
            plan.runners[engine], plan.sources[engine] = "docker", "auto (several engines)"
        elif engine_installed(engine) or not docker_ok():
            plan.runners[engine], plan.sources[engine] = "local", "auto"
        else:
            plan.runners[engine], plan.sources[engine] = "docker", "auto (not installed here)"
    if multi and auto and in_docker:
        plan.notices.append(f"Several engines ({', '.join(sorted(engines))}): running them in Docker, "
                            "one container per experiment.")
    elif multi and auto:
        why = (f"their images are not built ({', '.join(plan.images[e] for e in unbuilt)}; "
               f"`llem images build ENGINE` builds one)" if unbuilt else "Docker is not reachable")
        plan.notices.append(
            f"Several engines ({', '.join(sorted(engines))}) and {why}: each runs here, "
            "in its own process per experiment, from this Python environment. To pin this choice and "
            "silence this note, add to the study YAML:  runners: {" +
            ", ".join(f"{e}: local" for e in auto) + "}")
    if explicit and len(set(plan.runners.values())) > 1:
        mix = ", ".join(f"{e}={r}" for e, r in sorted(plan.runners.items()))
        plan.warnings.append(f"Mixed runners ({mix}): engines measured under different runners are "
                             "not strictly comparable (container vs host environment).")
    _mark_unavailable(plan, docker_ok, docker_client)
    plan.unavailable.update(no_gpu)
    if plan.unavailable and len(plan.unavailable) == len(all_engines) and not no_gpu:
        raise PreFlightError("no engine of this study can run:\n  " +
                             "\n  ".join(f"{e}: {r}" for e, r in sorted(plan.unavailable.items())))
    return plan


def _missing_images(plan: RunnerPlan, engines: list[str], docker_client) -> list[str]:
    """Engines among `engines` whose image is not in the local Docker image store."""
    import docker

    client = docker_client(timeout_s=10)
    try:
        missing = []
        for engine in engines:
            try:
                client.images.get(plan.images[engine])
            except docker.errors.ImageNotFound:
                missing.append(engine)
        return missing
    finally:
        client.close()


# How each engine is installed here, as docs/engines.md says: llama.cpp is compiled once by the setup
# script (a bare pip line would compile it silently for minutes), vLLM's CPU build has its own environment.
INSTALL_HINTS = {"llama_cpp": "bash scripts/setup.sh --all", "vllm": "GPU: pip install 'llenergymeasure[vllm]'; "
                 "CPU build: bash scripts/setup-vllm.sh"}


def install_hint(engine: str) -> str:
    return INSTALL_HINTS.get(engine, f"pip install 'llenergymeasure[{engine}]'")


def _mark_unavailable(plan: RunnerPlan, docker_ok, docker_client) -> None:
    """Engines that cannot run anywhere: not installed here and no image (or no Docker)."""
    docker_engines = [e for e, r in plan.runners.items() if r == "docker"]
    if docker_engines and not docker_ok():
        forced = [e for e in docker_engines if not plan.sources[e].startswith("auto")]
        if forced:
            raise PreFlightError(f"Docker is not reachable ({DOCKER_INSTALL}); {plan.sources[forced[0]]} "
                                 "asks for Docker. Or run with `llem run --runner local`.")
    missing_images = set(_missing_images(plan, docker_engines, docker_client)) if docker_engines and docker_ok() \
        else set()
    for engine, runner in plan.runners.items():
        if engine_installed(engine):
            continue  # runs locally; a missing image is reported by the Docker preflight with its build command
        if runner == "local":
            plan.unavailable[engine] = (f"engine '{engine}' is not installed here "
                                        f"({install_hint(engine)}), and the runner is local"
                                        + ("" if docker_ok() else " (Docker, which could run its image, is not reachable)"))
        elif engine in missing_images or not docker_ok():
            plan.unavailable[engine] = (f"engine '{engine}' is not installed here and its image "
                                        f"'{plan.images[engine]}' is not available; build it with: "
                                        f"llem images build {engine}")
