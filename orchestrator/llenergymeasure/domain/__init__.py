"""The contract between host and harness: pydantic models and the standard library only."""
from .config import (ENGINES, BaselineConfig, DatasetConfig, DecodingConfig, ExperimentConfig, MeasurementConfig,
                     TransformersConfig, WarmupConfig, LlamaCppConfig)
from .contention import ContentionResult
from .manifest import MANIFEST_FILE, ManifestCounters, ManifestEntry, StudyManifest
from .measurement import (BaselineResult, CpuEnergy, EnergyResult, GpuEnergy, GpuInfo, PhaseEnergy, SamplerStats,
                          ThermalSummary, ThrottleSummary, WarmupResult)
from .metrics import (Distribution, FlopsEstimate, MemoryStats, Metrics, PromptCache, RequestRecord, compute_metrics,
                      prompt_cache)
from .result import EnvironmentInfo, ExperimentResult, HarnessError
from .run_spec import (CONTAINER_RUN_DIR, ERROR_FILE, HARNESS_EXIT_STORAGE, HARNESS_LOG_FILE, RESULT_FILE,
                       RUN_SPEC_FILE, TIMESERIES_FILE, RunSpec)
from .serving import ServingConfig, ServingResult, ServingSlo, ServingWindow
from .study import DockerConfig, ExecutionConfig, StudyConfig
from .study_result import StudyResult, StudySummary
from .token_timing import TokenTiming, token_timing

def contract_fingerprint() -> str:
    """sha256 of the JSON schemas that cross the container boundary.

    Images carry it as an OCI label so the host can refuse an image built for another contract.
    """
    import hashlib
    import json

    schemas = {m.__name__: m.model_json_schema() for m in (RunSpec, ExperimentResult, HarnessError)}
    return hashlib.sha256(json.dumps(schemas, sort_keys=True).encode()).hexdigest()[:16]


__all__ = [name for name in dir() if not name.startswith("_")]
