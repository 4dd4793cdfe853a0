"""RunSpec: the content of `experiment.json`, the one input the harness reads.

Secrets never go in it (tokens reach the container through its environment only).
"""
from __future__ import annotations

from pydantic import Field

from .base import StrictModel
from .config import ExperimentConfig
from .measurement import BaselineResult

RUN_SPEC_FILE = "experiment.json"
RESULT_FILE = "result.json"
ERROR_FILE = "error.json"
TIMESERIES_FILE = "timeseries.parquet"
HARNESS_LOG_FILE = "harness.log"
CONTAINER_RUN_DIR = "/llem/run"
# The harness's exit status when it failed for want of storage (disk full, quota): the host records
# `StorageError` from it even when error.json itself could not be written (sysexits EX_IOERR).
HARNESS_EXIT_STORAGE = 74
# How the runner started the harness process (`harness_start` in result.json): set in its environment.
HARNESS_START_ENV = "LLEM_HARNESS_START"
FRESH_START = "fresh process"
FORKED_START = "forked from a pre-imported worker"


class RunSpec(StrictModel):
    """What one harness invocation measures and where it comes from."""

    schema_version: int = 1
    study_id: str
    run_id: str = Field(..., description="run directory name")
    experiment_index: int
    cycle: int
    config: ExperimentConfig
    config_hash: str
    gpu_ids: list[str] | None = Field(None, description="GPUs assigned (index or UUID); None = all visible")
    baseline: BaselineResult | None = Field(None, description="a reusable baseline measured earlier in the study")
    cooldown_wait_s: float | None = Field(None, description="seconds the host waited for GPUs to cool before this run")
    runner: str = "local"
    image: str | None = None
