"""ExperimentConfig: everything that defines one measured experiment.

The config hash covers exactly the fields that change the measurement, so two runs with the
same hash are repetitions of the same configuration (the unit of the cross-cycle statistics).
"""
from __future__ import annotations

import hashlib
import json
from json.encoder import encode_basestring_ascii as _encode_str
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from .base import StrictModel
from .engine_options import TensorRtLlmConfig, VllmConfig
from .server_args import refused_server_arg
from .serving import ServingConfig
from .text_checks import refuse_control

Engine = Literal["transformers", "vllm", "tensorrt_llm", "llama_cpp"]
ENGINES: tuple[str, ...] = ("transformers", "vllm", "tensorrt_llm", "llama_cpp")
ENGINE_ALIASES = {"pytorch": "transformers", "hf": "transformers", "trtllm": "tensorrt_llm",
                  "tensorrt": "tensorrt_llm", "llamacpp": "llama_cpp", "llama.cpp": "llama_cpp"}
Precision = Literal["auto", "fp32", "fp16", "bf16"]
# precision option -> (the dtype name every engine takes: torch, vLLM and TensorRT-LLM spell it alike, bytes per
# element). The one table of these names: engines, servers, estimates and `llem models make` read it.
PRECISION_DTYPES: dict[str, tuple[str, int]] = {"fp32": ("float32", 4), "fp16": ("float16", 2),
                                                "bf16": ("bfloat16", 2)}


def dtype_name(precision: str) -> str:
    """The engines' dtype name for a precision option; "auto" stays "auto" (the engine decides)."""
    return "auto" if precision == "auto" else PRECISION_DTYPES[precision][0]

MAX_CONFIG_COUNT = 1_000_000  # batches, layers, failures...: a count beyond this is a typo, not a setting
MAX_THREADS, MAX_DEVICES = 4096, 1024  # CPU threads of one host; GPUs of one run
MAX_CONFIG_FLOAT = 1e9  # no setting is meaningful beyond this (seconds, rates, ratios): bigger is a typo or .inf


def check_floats_bounded(value: Any, where: str) -> Any:
    """Every float of a config is finite and |x| <= MAX_CONFIG_FLOAT: `.inf`/`.nan` in a gap or timeout would
    otherwise pass validation and fail mid-study (OverflowError in sleep) with runs left pending."""
    kind = type(value)
    if kind is float:
        if not (-MAX_CONFIG_FLOAT <= value <= MAX_CONFIG_FLOAT):  # also false for nan
            raise ValueError(f"{where} must be a finite number of magnitude <= {MAX_CONFIG_FLOAT:g} (got {value!r})")
    elif isinstance(value, BaseModel):
        for name, item in value.__dict__.items():
            if type(item) not in _SCALARS:
                check_floats_bounded(item, f"{where}.{name}")
    elif kind in (list, tuple):
        for i, item in enumerate(value):
            check_floats_bounded(item, f"{where}[{i}]")
    return value


_SCALARS = frozenset({str, int, bool, type(None)})


def canonical_json(payload: Any) -> str:
    """The text a config hash is taken of: sorted keys, no spaces."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"))


_FIELD_PREFIX: dict[str, str] = {}  # field name -> its JSON key and colon, encoded once (a plan hashes 100,000 configs)


_PART_MEMO: dict[tuple, str] = {}  # (field, type, plain value) -> its `"key":value` text; a grid repeats few values
_PART_MEMO_MAX = 4096


def _field_prefix(name: str) -> str:
    return _FIELD_PREFIX.setdefault(name, _encode_str(name) + ":")


def _sorted_fields(model: type) -> list[str]:
    cached = model.__dict__.get("_llem_sorted_fields")
    if cached is None:
        cached = sorted(model.model_fields)
        type.__setattr__(model, "_llem_sorted_fields", cached)
    return cached


class DatasetConfig(StrictModel):
    """Where prompts come from.

    `synthetic`: generated deterministically by the harness with controlled input lengths (no
    download). `jsonl`: a local file, one object per line with a `prompt` or `text` field.
    `hf`: a Hugging Face dataset (needs the `datasets` package and network access).
    """

    source: Literal["synthetic", "jsonl", "hf"] = "synthetic"
    path: str | None = Field(None, description="JSONL file (source=jsonl) or HF dataset id (source=hf)")
    split: str = "train"
    column: str | None = Field(None, description="text column; default: prompt, then text")
    input_tokens: int | None = Field(
        None, ge=1, le=1 << 22, description="synthetic only: target prompt length in tokens (default: max_input_tokens)")

    @model_validator(mode="after")
    def _path_needed(self) -> "DatasetConfig":
        if self.source in ("jsonl", "hf") and not self.path:
            raise ValueError(f"dataset.path is required when dataset.source is '{self.source}'")
        return self


class DecodingConfig(StrictModel):
    """Decoding strategy. Greedy by default so output lengths are reproducible across cycles."""

    strategy: Literal["greedy", "sample"] = "greedy"
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0, le=1 << 22, description="0 disables top-k")
    ignore_eos: bool = Field(False, description="generate exactly max_output_tokens (fixed-length workload)")


class TransformersConfig(StrictModel):
    """Options of the transformers engine (passed to from_pretrained / generate)."""

    attn_implementation: Literal["eager", "sdpa", "flash_attention_2"] | None = None
    device: Literal["auto", "cuda", "cpu"] = "auto"
    use_cache: bool = True
    torch_compile: bool = False


class LlamaCppConfig(StrictModel):
    """Options of the llama.cpp engine (passed to `llama_cpp.Llama`). None = the harness decides.

    `n_gpu_layers` None offloads every layer when a GPU is present and none otherwise; the
    value used is recorded in the result's effective parameters.
    """

    n_ctx: int | None = Field(None, ge=16, le=1 << 24, description="context length; default: max_input_tokens + max_output_tokens (min 512; serving adds 64)")
    n_threads: int | None = Field(None, ge=1, le=MAX_THREADS, description="CPU threads for generation and prompt evaluation alike; default: llama.cpp's choice")
    n_gpu_layers: int | None = Field(None, ge=-1, le=MAX_CONFIG_COUNT, description="-1 = all layers; default: all with a GPU, else 0")
    n_batch: int = Field(512, ge=1, le=1 << 22, description="prompt tokens evaluated per llama_decode call")
    flash_attn: bool = False
    type_k: Literal["f32", "f16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1"] | None = Field(
        None, description="KV-cache key type; default f16")
    type_v: Literal["f32", "f16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1"] | None = Field(
        None, description="KV-cache value type; default f16 (quantised V needs flash_attn)")


WARMUP_MAX_DURATION_DEFAULT_S = 60.0
BASELINE_TEMPERATURE_MAX_WAIT_DEFAULT_S = 60.0


class WarmupConfig(StrictModel):
    """Warm up until per-batch latency settles (CV over a window), between min and max batches, and for
    at most max_duration_s: on a loaded host 30 slow batches took minutes without settling."""

    enabled: bool = True
    min_batches: int = Field(2, ge=0, le=MAX_CONFIG_COUNT)
    max_batches: int = Field(30, ge=1, le=MAX_CONFIG_COUNT)
    window: int = Field(5, ge=2, le=MAX_CONFIG_COUNT, description="batches in the CV window")
    cv_threshold: float = Field(0.05, gt=0, description="converged when CV of the window < this")
    max_duration_s: float | None = Field(
        WARMUP_MAX_DURATION_DEFAULT_S, gt=0,
        description="stop warming up after this many seconds even before max_batches (checked after each batch; "
                    "the batch in progress finishes); null = bounded by batches only")

    @model_validator(mode="after")
    def _bounds(self) -> "WarmupConfig":
        if self.max_batches < self.min_batches:
            raise ValueError("warmup.max_batches must be >= warmup.min_batches")
        return self


class BaselineConfig(StrictModel):
    """Idle power on the run's GPUs, measured twice: before the model loads, and with it loaded (before
    warm-up; never reused). `adjusted` energy subtracts the loaded idle, else the pre-load one."""

    enabled: bool = True
    duration_s: float = Field(10.0, ge=0.5)
    reuse_ttl_s: float = Field(900.0, ge=0, description="reuse a study's pre-load baseline for this long; 0 = always fresh")
    temperature_max_wait_s: float = Field(
        BASELINE_TEMPERATURE_MAX_WAIT_DEFAULT_S, ge=0,
        description="bound on re-measuring a baseline whose GPU temperature is still moving (0: measure once); "
                    "keeps a short lease's runs from waiting on a cooling GPU")


class MeasurementConfig(StrictModel):
    """How the harness measures. Refuses sampling faster than NVML can answer (50 ms)."""

    warmup: WarmupConfig = Field(default_factory=WarmupConfig)
    baseline: BaselineConfig = Field(default_factory=BaselineConfig)
    sampling_period_ms: float = Field(100.0, ge=50.0, description="power/thermal sampler period")
    save_timeseries: bool = Field(False, description="write timeseries.parquet in the run directory")
    min_window_s: float = Field(10.0, gt=0, description="warn when the measured window is shorter")
    external_energy_file: str | None = Field(
        None, description="readings of an external meter ('unix_s,power_w' or 'unix_s,energy_j' lines) appended "
                          "while the run goes on; the window's energy from it is recorded beside the counter's "
                          "(energy.external)")


def _without_later_defaults(measurement: dict) -> dict:
    """The measurement section's JSON without fields added after hashes were published, when they hold
    their default (warmup.max_duration_s, baseline.temperature_max_wait_s, external_energy_file): configs
    written before them keep their hashes."""
    warmup = measurement.get("warmup")
    if isinstance(warmup, dict) and warmup.get("max_duration_s") == WARMUP_MAX_DURATION_DEFAULT_S:
        measurement = {**measurement, "warmup": {k: v for k, v in warmup.items() if k != "max_duration_s"}}
    if "external_energy_file" in measurement and measurement["external_energy_file"] is None:
        measurement = {k: v for k, v in measurement.items() if k != "external_energy_file"}
    baseline = measurement.get("baseline")
    if isinstance(baseline, dict) and baseline.get("temperature_max_wait_s") == BASELINE_TEMPERATURE_MAX_WAIT_DEFAULT_S:
        measurement = {**measurement,
                       "baseline": {k: v for k, v in baseline.items() if k != "temperature_max_wait_s"}}
    return measurement


def section_canonical_json(section: BaseModel) -> str:
    """What a config section contributes to the config hash (a planner shares it between configs)."""
    payload = section.model_dump(mode="json")
    return canonical_json(_without_later_defaults(payload) if isinstance(section, MeasurementConfig) else payload)


class ExperimentConfig(StrictModel):
    """One experiment: model, engine, workload, decoding and measurement settings."""

    name: str | None = Field(None, description="free label; not part of the config hash")
    model: str = Field(..., min_length=1, description="HF hub id or local directory")
    engine: Engine = "transformers"
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    n_prompts: int = Field(16, ge=1, le=10_000_000)
    max_input_tokens: int = Field(64, ge=1, le=1 << 22)
    max_output_tokens: int = Field(32, ge=1, le=1 << 22)
    precision: Precision = "auto"
    batch_size: int = Field(1, ge=1, le=1 << 16)
    decoding: DecodingConfig = Field(default_factory=DecodingConfig)
    random_seed: int = Field(42, ge=0, le=2**32 - 1, description="seeds torch/numpy/random (numpy's range)")
    prefix_caching: bool = Field(
        False, description="let the engine reuse cached prompt prefixes (vLLM enable_prefix_caching, TensorRT-LLM "
                           "KV-block reuse, llama.cpp prefix match); off by default so every measured prefill is cold")
    transformers: TransformersConfig | None = None
    vllm: VllmConfig | None = None
    tensorrt_llm: TensorRtLlmConfig | None = None
    llama_cpp: LlamaCppConfig | None = None
    measurement: MeasurementConfig = Field(default_factory=MeasurementConfig)
    mode: Literal["offline", "serving"] = Field(
        "offline", description="offline: batches in-process; serving: the engine's own server under HTTP load")
    serving: ServingConfig | None = Field(None, description="load shape; only with mode: serving")

    @field_validator("model", "name")
    @classmethod
    def _no_control_characters(cls, value: str | None, info: ValidationInfo) -> str | None:
        return refuse_control(value, info.field_name)

    @field_validator("engine", mode="before")
    @classmethod
    def _engine_alias(cls, value: object) -> object:
        if isinstance(value, str):
            lowered = value.strip().lower()
            return ENGINE_ALIASES.get(lowered, lowered)
        return value

    @field_validator("dataset", mode="before")
    @classmethod
    def _dataset_shorthand(cls, value: object) -> object:
        """Accept `dataset: synthetic`, `dataset: prompts.jsonl`, `dataset: hf:owner/name[:split]`."""
        if not isinstance(value, str):
            return value
        if value == "synthetic":
            return {"source": "synthetic"}
        if value.startswith("hf:"):
            parts = value[3:].split(":")
            spec = {"source": "hf", "path": parts[0]}
            if len(parts) > 1:
                spec["split"] = parts[1]
            return spec
        if value.endswith(".jsonl") or value.endswith(".json"):
            return {"source": "jsonl", "path": value}
        raise ValueError(f"dataset '{value}' is not 'synthetic', a .jsonl path or 'hf:<id>[:split]'")

    @model_validator(mode="after")
    def _engine_section(self, info: ValidationInfo) -> "ExperimentConfig":
        checked = (info.context or {}).get("floats_checked", ()) if info is not None else ()
        for name, value in self.__dict__.items():  # a planner's shared sections were checked once (context)
            if type(value) not in _SCALARS and id(value) not in checked:
                check_floats_bounded(value, name)
        for engine in ENGINES:
            if engine != self.engine and getattr(self, engine) is not None:
                raise ValueError(
                    f"section '{engine}:' is set but engine is '{self.engine}'; remove the section or set engine: {engine}")
        refuse_control(self.dataset.path, "dataset.path")
        refuse_control(self.dataset.column, "dataset.column")
        refuse_control(self.dataset.split, "dataset.split")
        if self.serving is not None:
            refuse_control(self.serving.server_args, "serving.server_args")  # they reach the server's command line
        if self.serving is not None and self.mode != "serving":
            raise ValueError("section 'serving:' is set but mode is 'offline'; set mode: serving or remove it")
        if self.mode == "serving" and self.engine == "transformers":
            raise ValueError("mode: serving needs an engine with an OpenAI-compatible server (llama_cpp, vllm, "
                             "tensorrt_llm); transformers has none: set engine or use mode: offline")
        vllm_prefix = self.vllm.enable_prefix_caching if self.vllm is not None else None
        if vllm_prefix is not None and vllm_prefix != self.prefix_caching:
            raise ValueError(f"vllm.enable_prefix_caching ({vllm_prefix}) disagrees with prefix_caching "
                             f"({self.prefix_caching}); set prefix_caching: {str(vllm_prefix).lower()} and remove "
                             "vllm.enable_prefix_caching")
        if self.mode == "serving" and self.serving is None:
            object.__setattr__(self, "serving", ServingConfig())
        if self.serving is not None and self.serving.server_args:
            refused = refused_server_arg(self.engine, self.serving.server_args, self.prefix_caching)
            if refused:
                raise ValueError(refused)
        defaults = {"transformers": TransformersConfig, "llama_cpp": LlamaCppConfig, "vllm": VllmConfig,
                    "tensorrt_llm": TensorRtLlmConfig}
        if getattr(self, self.engine) is None:
            object.__setattr__(self, self.engine, defaults[self.engine]())
        return self

    def config_hash(self, section_json: dict[int, str] | None = None) -> str:
        """sha256 (hex, 16 chars) of canonical JSON of every field that changes the measurement.

        `section_json` (id of a section instance -> its canonical JSON) lets a planner that shares
        validated sections between many configs encode each section once; the text is the same."""
        # Offline configs hash as before serving existed (mode/serving excluded), so hashes stay stable.
        excluded = self._hash_excluded()
        canonical = None
        if section_json is not None and self.mode != "serving":  # serving drops later-added defaults below
            parts = self.canonical_parts(section_json)
            canonical = None if parts is None else "{" + ",".join(part for _, part in parts) + "}"
        if canonical is None:
            payload = self.model_dump(mode="json", exclude=excluded)
            serving = payload.get("serving") or {}
            if serving.get("burstiness") == 1.0:  # fields added later hash only when set (stable hashes)
                del serving["burstiness"]
            if (serving.get("slo") or {}).get("e2e_s", 0) is None:
                del serving["slo"]["e2e_s"]
            if serving.get("max_error_share") == 0.1:
                del serving["max_error_share"]
            payload["measurement"] = _without_later_defaults(payload["measurement"])
            canonical = canonical_json(payload)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def _hash_excluded(self) -> set[str]:
        excluded = {"name"} if self.mode == "serving" else {"name", "mode", "serving"}
        if not self.prefix_caching:  # the default: hashes stay those of configs written before the field
            excluded.add("prefix_caching")
        return excluded

    def canonical_parts(self, section_json: dict[int, str]) -> list[tuple[str, str]] | None:
        """(field, its `"key":value` text) of an offline config's hashed JSON, in key order: joined with
        commas in braces, the text config_hash takes (None: serving, or a field that is not plain).
        A planner whose points differ in a few plain fields replaces just their parts."""
        if self.mode == "serving":
            return None
        excluded = self._hash_excluded()
        values, parts, memo = self.__dict__, [], _PART_MEMO
        for name in _sorted_fields(type(self)):
            if name in excluded:
                continue
            value = values[name]
            kind = type(value)
            if kind is str or kind is int or kind is bool or value is None:  # the type keeps True and 1 apart
                part = memo.get((name, kind, value))
                if part is None:
                    if kind is str:
                        text = _encode_str(value)
                    elif kind is int:
                        text = repr(value)
                    else:
                        text = "true" if value is True else "false" if value is False else "null"
                    part = (_FIELD_PREFIX.get(name) or _field_prefix(name)) + text
                    if len(memo) < _PART_MEMO_MAX and len(part) <= 512:
                        memo[(name, kind, value)] = part
                parts.append((name, part))
                continue
            if kind is float:
                text = repr(value)
            elif isinstance(value, BaseModel):
                text = section_json.get(id(value)) or section_canonical_json(value)
            else:
                return None
            parts.append((name, (_FIELD_PREFIX.get(name) or _field_prefix(name)) + text))
        return parts

    def summary(self) -> str:
        """Short human label, e.g. `transformers tiny-llm bs=4 fp32 n=8`."""
        model = self.model.rstrip("/").split("/")[-1]
        if self.mode == "serving" and self.serving is not None:
            load = (f"c={self.serving.concurrency}" if self.serving.concurrency is not None
                    else f"rate={self.serving.request_rate:g}/s")
            return f"{self.engine} {model} serving {load} n={self.serving.n_requests} out={self.max_output_tokens}"
        return (f"{self.engine} {model} bs={self.batch_size} {self.precision} n={self.n_prompts} "
                f"in={self.max_input_tokens} out={self.max_output_tokens}")
