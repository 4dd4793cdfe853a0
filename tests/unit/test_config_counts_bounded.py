"""Every count a study can set has an upper bound: `dataset.input_tokens: 1e12` passed validation and the
synthetic prompt builder then grew without limit until the run's timeout. The walk below finds every
integer field of the study and experiment models, so a field added later without a bound fails here."""
from __future__ import annotations

import typing

import pytest
from pydantic import BaseModel, ValidationError

from llenergymeasure.domain import ExperimentConfig, StudyConfig

NOT_COUNTS = {"ServingConfig.port"}  # bounded too, by the port range (asserted below like the others)


def _models(model: type[BaseModel], seen: set) -> None:
    if model in seen:
        return
    seen.add(model)
    for field in model.model_fields.values():
        for arg in _flatten(field.annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                _models(arg, seen)


def _flatten(annotation) -> list:
    args = typing.get_args(annotation)
    return [annotation] if not args else [a for arg in args for a in _flatten(arg)]


def _int_fields() -> list[tuple[type, str, object]]:
    seen: set = set()
    _models(StudyConfig, seen)
    _models(ExperimentConfig, seen)
    return [(model, name, field) for model in sorted(seen, key=lambda m: m.__name__)
            for name, field in model.model_fields.items() if int in _flatten(field.annotation)]


def test_every_integer_setting_has_an_upper_bound():
    unbounded = []
    for model, name, field in _int_fields():
        bounded = any(getattr(m, "le", None) is not None or getattr(m, "lt", None) is not None
                      for m in field.metadata)
        if not bounded and f"{model.__name__}.{name}" != "ExecutionConfig.parallel":  # bounded by its validator
            unbounded.append(f"{model.__name__}.{name}")
    assert len(_int_fields()) > 25 and unbounded == []


@pytest.mark.parametrize("field, value", [
    ("dataset", {"input_tokens": 10**12}), ("decoding", {"top_k": 10**12}), ("serving", {"n_requests": 10**12}),
    ("llama_cpp", {"n_threads": 10**6}), ("measurement", {"warmup": {"max_batches": 10**12}}),
])
def test_an_absurd_count_is_refused_naming_its_field(field, value):
    extra = {"engine": "llama_cpp"} if field == "llama_cpp" else {}
    if field == "serving":
        extra = {"engine": "llama_cpp", "mode": "serving"}
    with pytest.raises(ValidationError) as info:
        ExperimentConfig(model="org/model", **extra, **{field: value})
    assert field in str(info.value) and "less than or equal" in str(info.value)


def test_parallel_is_bounded():
    from llenergymeasure.domain import ExecutionConfig

    with pytest.raises(ValidationError, match="from 1 to 1024"):
        ExecutionConfig(parallel=10**6)
