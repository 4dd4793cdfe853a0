"""The JSON Schema of a study file, generated from the pydantic models.

Why generated: editors with a YAML language server validate and complete study files from it,
and it can never disagree with what `llem` accepts, because it is derived from the same models
(`llem config schema` prints it; docs/study.schema.json is the shipped copy, checked by a test).

What pydantic's own schema does not know is added here: the shorthands the models accept
before validation (`dataset: synthetic | FILE.jsonl | hf:ID[:split]`, engine aliases such as
`pytorch`), and that `base:` and `experiments:` hold experiment fields (all optional there,
because a sweep may supply them). A file is either a study or a single experiment (top-level
`model:` and no study keys).
"""
from __future__ import annotations

import copy
import json
from typing import Any

from pydantic.json_schema import models_json_schema

from .config import ENGINE_ALIASES, ENGINES, ExperimentConfig
from .study import StudyConfig

SCHEMA_ID = "https://llenergymeasure.invalid/study.schema.json"
ENGINE_NAMES = sorted(ENGINES) + sorted(ENGINE_ALIASES)


def _engine_names() -> dict[str, Any]:
    return {"type": "string", "enum": ENGINE_NAMES,
            "description": "engine (aliases: " + ", ".join(f"{a} = {e}" for a, e in sorted(ENGINE_ALIASES.items())) + ")"}


def study_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) that every valid study or single-experiment file satisfies."""
    _, top = models_json_schema([(StudyConfig, "validation"), (ExperimentConfig, "validation")],
                                ref_template="#/$defs/{model}")
    defs = top["$defs"]
    experiment = defs["ExperimentConfig"]
    experiment["properties"]["engine"] = {**_engine_names(), "default": "transformers"}
    dataset = experiment["properties"]["dataset"]
    experiment["properties"]["dataset"] = {
        "anyOf": [{"type": "string", "description": "synthetic | PATH.jsonl | hf:ID[:split]"}, {"$ref": "#/$defs/DatasetConfig"}],
        "description": dataset.get("description", "where prompts come from"), "title": "Dataset"}
    fields = copy.deepcopy(experiment)
    fields.pop("required", None)
    fields["title"] = "ExperimentFields"
    fields["description"] = "Experiment fields shared by (base:) or set for (experiments:) grid points; " \
                            "every one optional here."
    defs["ExperimentFields"] = fields
    study = defs["StudyConfig"]
    study["properties"]["base"] = {"$ref": "#/$defs/ExperimentFields"}
    study["properties"]["experiments"] = {"anyOf": [{"type": "array", "items": {"$ref": "#/$defs/ExperimentFields"}},
                                                    {"type": "null"}], "default": None,
                                          "description": "explicit points, each merged onto base (after the grid)"}
    for key in ("runners", "images"):
        study["properties"][key]["propertyNames"] = {"enum": ENGINE_NAMES}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "llenergymeasure study",
        "description": "A study (base/sweep/experiments/execution...) or a single experiment (top-level model:).",
        "anyOf": [{"$ref": "#/$defs/StudyConfig"}, {"$ref": "#/$defs/ExperimentConfig"}],
        "$defs": defs,
    }


def schema_json() -> str:
    """The study schema as the text shipped in docs/study.schema.json and printed by `llem config schema`."""
    return json.dumps(study_json_schema(), indent=2, sort_keys=False) + "\n"
