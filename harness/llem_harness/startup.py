"""The harness's start-up step: import the engine's modules, timed apart from loading the model.

Why a separate step: importing torch and transformers costs seconds (tens of seconds on a loaded
machine) and is not loading a model. Timed inside the load it made `model_load_s` mean "import +
load" and hid that most of a small study's wall time was the same imports repeated once per
run. The import is timed here (`engine_import_s`); the load that follows is `model_load_s`.

A harness forked from the local runner's pre-imported worker (llem_harness.worker) finds these
modules already imported: its import step takes milliseconds, and `harness_start` says why.
"""
from __future__ import annotations

import importlib
import json
import os
import time
from pathlib import Path

from llenergymeasure.domain.run_spec import FRESH_START, HARNESS_START_ENV

SERVING = "serving"  # a serving run's harness imports no engine (the server process does): its worker's key

# What each engine's adapter imports before it can load a model: (module, attribute to resolve).
# The attribute matters for transformers: its top-level names are imported lazily on first access.
ENGINE_MODULES: dict[str, tuple[tuple[str, str | None], ...]] = {
    "transformers": (("torch", None), ("transformers", "AutoModelForCausalLM"), ("transformers", "AutoTokenizer"),
                     ("transformers", "StoppingCriteriaList"), ("transformers.generation", None),
                     ("transformers.modeling_utils", None)),
    "vllm": (("torch", None), ("vllm", "LLM"), ("vllm", "SamplingParams")),
    "llama_cpp": (("llama_cpp", "Llama"),),
    "tensorrt_llm": (("torch", None), ("tensorrt_llm", "LLM"), ("tensorrt_llm.llmapi", None)),
}

# The harness's own modules a run imports: pre-imported by the worker as well (pydantic models,
# the measurement session), so a forked run starts with nothing left to import.
HARNESS_MODULES = ("llem_harness.process_entry", "llem_harness.measured_run", "llem_harness.offline_batches", "llem_harness.measurement", "llem_harness.datasets",
                   "llem_harness.after_window", "llem_harness.engines.base")


def import_modules(engine: str) -> list[str]:
    """Import the engine's modules (raising ImportError as the adapter's load would); their names."""
    names = []
    for module_name, attribute in ENGINE_MODULES.get(engine, ()):
        module = importlib.import_module(module_name)
        if attribute is not None:
            getattr(module, attribute)
        names.append(module_name if attribute is None else f"{module_name}.{attribute}")
    own = "llem_harness.serving.load" if engine == SERVING else f"llem_harness.engines.{engine}"
    importlib.import_module(own)
    return names + [own]


def _architecture_module(engine: str, model: str) -> str | None:
    """transformers' modeling module for a local model's architecture (e.g. ...llama.modeling_llama):
    imported on first `from_pretrained` otherwise, which would count it as loading."""
    if engine != "transformers":
        return None
    try:
        model_type = json.loads((Path(model) / "config.json").read_text())["model_type"]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # a hub id or an unreadable config: the load imports it
    return f"transformers.models.{str(model_type).replace('-', '_')}.modeling_{str(model_type).replace('-', '_')}"


def import_architecture(engine: str, model: str) -> None:
    name = _architecture_module(engine, model)
    if name is not None:
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # an architecture transformers names differently: the load imports what it needs


def import_engine(engine: str, model: str) -> float:
    """Import what the engine's load needs; seconds it took in this process (near 0 when pre-imported)."""
    start = time.monotonic()
    import_modules(engine)
    import_architecture(engine, model)
    return time.monotonic() - start


def harness_start() -> str:
    """How this harness process started, as the runner told it (a fresh process when not told)."""
    return os.environ.get(HARNESS_START_ENV) or FRESH_START
