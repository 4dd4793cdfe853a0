"""StudyConfig: a grid of experiments repeated over cycles, plus how to run it."""
from __future__ import annotations

import posixpath
import re
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from .base import StrictModel
from .config import ENGINE_ALIASES, ENGINES, check_floats_bounded
from .decision import CarbonConfig, SearchConfig, check_slo
from .text_checks import refuse_control

DAY_S = 86_400.0
LARGE_PLAN_RUNS = 1_000  # runs a study may start without --yes unless execution.max_runs says otherwise
# Docker's own size syntax (units.RAMInBytes): 512m, 8g, 1.5GB, 268435456.
_DOCKER_SIZE = re.compile(r"^\d+(\.\d+)? ?([kKmMgGtTpP])?[iI]?[bB]?$")
MAX_STUDY_NAME = 100  # the study directory is `<name>_<timestamp>`: far below the 255-byte file name limit

RunnerName = Literal["local", "docker", "auto"]
# Where an llem image keeps what it runs: Python and every installed package (the harness, the engine, a
# venv under /opt), system libraries and configuration, and llem's own mounts. /tmp is the harness's
# working directory, first on its import path (`python -m`): a package mounted there would replace the
# installed harness. A docker.extra_mounts target on, inside or above one of these is refused.
IMAGE_INSTALL_PATHS = ("/usr", "/opt", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/llem",
                       "/tmp", "/proc", "/sys", "/dev", "/root")


def mount_over_image(target: str) -> str | None:
    """The image path an extra mount at `target` would cover or hide (None: it covers none)."""
    if not target.startswith("/"):
        return None  # not absolute: refused at pre-flight with its own message
    normal = posixpath.normpath("/" + target.lstrip("/"))
    for path in IMAGE_INSTALL_PATHS:
        if normal == path or normal.startswith(path + "/") or normal == "/":
            return path
    return None


class ExecutionConfig(StrictModel):
    """Cycles, their order and the pauses between runs."""

    n_cycles: int = Field(1, ge=1, le=1000)
    cycle_order: Literal["sequential", "interleaved", "shuffled"] = "interleaved"
    shuffle_seed: int = Field(0, ge=0, le=2**63 - 1)
    experiment_gap_s: float = Field(0.0, ge=0, le=DAY_S)
    cycle_gap_s: float = Field(0.0, ge=0, le=DAY_S)
    timeout_s: float | None = Field(None, gt=0, le=30 * DAY_S,
                                    description="per-run wall-clock limit; default derived from workload")
    silence_timeout_s: float | None = Field(600.0, gt=0, le=30 * DAY_S,
                                            description="kill a run silent on stdout this long")
    cooldown_to_idle: bool = Field(False, description="wait until GPU temperature is near idle between runs")
    cooldown_delta_c: float = Field(3.0, gt=0, le=100)
    cooldown_max_s: float = Field(120.0, ge=0, le=DAY_S)
    max_consecutive_failures: int = Field(
        5, ge=0, le=1_000_000, description="circuit breaker: stop the study after this many failed runs in a row (0 = never)")
    parallel: int | Literal["auto"] = Field(1, description="runs at once on disjoint GPU sets (see docs/scale.md)")
    gpus_per_run: int | None = Field(None, ge=1, le=1024, description="GPUs each run gets; default: the largest "
                                     "tensor_parallel_size among the study's configurations, else 1")
    gpus: list[str] | None = Field(None, description="GPUs (indices or UUIDs) this study may use, whatever the "
                                   "executor and runner: each run is given gpus_per_run of them and measures only "
                                   "those; default: every visible NVIDIA GPU. On a CPU host (parallel machinery "
                                   "tests) fake ids passed through CUDA_VISIBLE_DEVICES only")
    allow_parallel_cpu: bool = Field(False, description="allow parallel runs without GPUs (timing/energy skewed)")
    max_runs: int | None = Field(None, ge=1, le=10**9, description="runs this study may start without `llem run --yes` "
                                 f"(default {LARGE_PLAN_RUNS:,}): a guard against a sweep larger than meant")
    target_ci_pct: float | None = Field(None, gt=0, le=100, description="adaptive cycles: repeat a configuration "
                                        "until the 95% interval of its J/output token is within ± this % of the "
                                        "mean (at least n_cycles, at most max_cycles); see docs/decision.md")
    max_cycles: int | None = Field(None, ge=1, le=1000, description="adaptive cycles' cap (default: 10 or "
                                   "n_cycles, the larger); only with target_ci_pct")

    @property
    def planned_cycles(self) -> int:
        """Cycles planned per configuration: n_cycles, or with adaptive cycles the cap (runs not needed are
        skipped with their reason)."""
        if self.target_ci_pct is None:
            return self.n_cycles
        return max(self.max_cycles or max(10, self.n_cycles), self.n_cycles)

    @model_validator(mode="after")
    def _cap_needs_target(self) -> "ExecutionConfig":
        if self.max_cycles is not None and self.target_ci_pct is None:
            raise ValueError("execution.max_cycles caps adaptive cycles: give execution.target_ci_pct too "
                             "(e.g. 2 for ±2 %), or use n_cycles for a fixed number")
        if self.max_cycles is not None and self.max_cycles < self.n_cycles:
            raise ValueError(f"execution.max_cycles ({self.max_cycles}) is below n_cycles ({self.n_cycles}), the "
                             "minimum adaptive cycles run; raise max_cycles or lower n_cycles")
        return self

    @field_validator("parallel")
    @classmethod
    def _parallel_positive(cls, value: int | str) -> int | str:
        if value != "auto" and not 1 <= int(value) <= 1024:
            raise ValueError("execution.parallel must be 'auto' or an integer from 1 to 1024 (runs at once)")
        return value

    @field_validator("*", mode="after")
    @classmethod
    def _finite(cls, value: Any, info) -> Any:
        if info.field_name == "gpus":  # ids reach CUDA_VISIBLE_DEVICES and the container's device list
            refuse_control(value, "execution.gpus")
        return check_floats_bounded(value, f"execution.{info.field_name}")


class DockerConfig(StrictModel):
    """Options of the Docker runner."""

    model_cache_dir: str | None = Field(None, description="host dir mounted as the HF cache (default: $HF_HOME)")
    shm_size: str | None = Field(None, description="e.g. '8g' (vLLM needs a large /dev/shm)")
    extra_mounts: list[str] = Field(default_factory=list, description="'HOST:CONTAINER[:ro]' bind mounts")
    gpus: list[str] | None = Field(None, description="deprecated name of execution.gpus (which governs local "
                                   "and Docker runs alike); still accepted")
    keep_failed: bool = False

    @field_validator("extra_mounts")
    @classmethod
    def _not_over_the_image(cls, value: list[str]) -> list[str]:
        for text in value:
            parts = text.split(":")
            covered = mount_over_image(parts[1]) if len(parts) >= 2 else None
            if covered is not None:
                raise ValueError(f"docker.extra_mounts entry '{text}' mounts over {covered} in the image, where the "
                                 "harness, the engine and Python are installed (or the harness runs from): the run "
                                 "would not run the code llem shipped; mount it elsewhere, e.g. /data or /mnt")
        return value

    @field_validator("model_cache_dir", "extra_mounts", "gpus")
    @classmethod
    def _no_control_characters(cls, value: Any, info: ValidationInfo) -> Any:
        return refuse_control(value, f"docker.{info.field_name}")

    @field_validator("shm_size")
    @classmethod
    def _size(cls, value: str | None) -> str | None:
        if value is not None and not _DOCKER_SIZE.match(value.strip()):
            raise ValueError(f"docker.shm_size '{value}' is not a size; write it as Docker does, e.g. '8g' or '512m'")
        return value.strip() if value is not None else None


class StudyConfig(StrictModel):
    """A study: shared `base`, a `sweep` grid and/or explicit `experiments`, repeated over cycles."""

    name: str = Field("study", pattern=r"^[A-Za-z0-9_.-]+$", max_length=MAX_STUDY_NAME,
                      description=f"letters, digits, _ . - ; at most {MAX_STUDY_NAME} characters")
    base: dict[str, Any] = Field(default_factory=dict)
    sweep: dict[str, list[Any]] = Field(default_factory=dict,
                                        description="dotted field path -> values (Cartesian product)")
    experiments: list[dict[str, Any]] | None = None
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    results_dir: str = "results"
    runners: dict[str, RunnerName] = Field(default_factory=dict)
    images: dict[str, str] = Field(default_factory=dict)
    docker: DockerConfig = Field(default_factory=DockerConfig)
    slo: dict[str, float] | None = Field(None, description="latency targets, e.g. {ttft_p90_s: 0.2, tpot_p90_s: "
                                         "0.05}: `llem results pareto`, the report and the search answer under them")
    search: SearchConfig | None = Field(None, description="search the sweep instead of running all of it "
                                        "(Optuna); see docs/decision.md")
    carbon: CarbonConfig | None = Field(None, description="grid carbon intensity for gCO2e figures; without it "
                                        "they are null with the reason")

    @field_validator("slo", mode="before")
    @classmethod
    def _slo_names(cls, value: Any) -> Any:
        return check_slo(value) if isinstance(value, dict) else value

    @field_validator("results_dir", "images")
    @classmethod
    def _no_control_characters(cls, value: Any, info: ValidationInfo) -> Any:
        return refuse_control(value, info.field_name)

    @field_validator("sweep")
    @classmethod
    def _non_empty_lists(cls, value: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in value.items():
            if not values:
                raise ValueError(f"sweep.{key} is an empty list; give at least one value or remove it")
        return value

    @model_validator(mode="after")
    def _search_needs_sweep(self) -> "StudyConfig":
        if self.search is not None and (not self.sweep or self.experiments):
            raise ValueError("search: the search space is the sweep; give a `sweep:` and no `experiments:` "
                             "(or remove `search:` to run the experiments as a grid)")
        if self.search is not None and self.execution.target_ci_pct is not None:
            raise ValueError("search: a trial runs n_cycles cycles; remove execution.target_ci_pct (adaptive "
                             "cycles are not combined with a search yet)")
        return self

    @field_validator("runners", "images", mode="before")
    @classmethod
    def _engine_keys(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        out = {}
        for key, item in value.items():
            engine = ENGINE_ALIASES.get(str(key).lower(), str(key).lower())
            if engine not in ENGINES:
                raise ValueError(f"unknown engine '{key}'; valid: {', '.join(ENGINES)}")
            out[engine] = item
        return out

    @model_validator(mode="after")
    def _docker_gpus_alias(self) -> "StudyConfig":
        """`docker.gpus` once chose the GPUs of Docker runs and, confusingly, of local ones too: it is
        now a deprecated name of `execution.gpus` (StudyRun says so when a study uses it)."""
        if self.docker.gpus is None:
            return self
        if self.execution.gpus is None:
            self.execution.gpus = list(self.docker.gpus)
        elif [str(g) for g in self.execution.gpus] != [str(g) for g in self.docker.gpus]:
            raise ValueError(f"docker.gpus {self.docker.gpus} and execution.gpus {self.execution.gpus} disagree: "
                             "docker.gpus is a deprecated name of execution.gpus; remove docker.gpus")
        return self


DOCKER_GPUS_DEPRECATED = ("docker.gpus is deprecated: it is read as execution.gpus, which chooses the GPUs of "
                          "local and Docker runs alike; rename it to execution.gpus")
