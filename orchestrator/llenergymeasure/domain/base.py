"""Shared base for every model that crosses the container boundary.

Why strict: a misspelled field in a study YAML must fail loudly (and name the closest valid
field) rather than be silently ignored and produce a measurement of the wrong configuration.
"""
from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Rejects unknown fields; validates on assignment so in-place edits stay valid."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


class OpenModel(BaseModel):
    """For records we read back (results, manifests): tolerate fields from newer writers."""

    model_config = ConfigDict(extra="ignore", protected_namespaces=())


def closest_field(model: type[BaseModel], loc: tuple[Any, ...]) -> str | None:
    """Return the closest valid field name for an unknown field at `loc`, walking nested models."""
    current: Any = model
    for part in loc[:-1]:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        current = _model_in_annotation(field.annotation)
    if not (isinstance(current, type) and issubclass(current, BaseModel)):
        return None
    names = list(current.model_fields)
    matches = difflib.get_close_matches(str(loc[-1]), names, n=1, cutoff=0.5)
    return matches[0] if matches else None


def _model_in_annotation(annotation: Any) -> Any:
    """Find the BaseModel class inside Optional[...] / Union[...] annotations."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in_annotation(arg)
        if found is not None:
            return found
    return None


def dotted_fields(data: dict, prefix: str = "") -> dict:
    """A nested mapping as one level with dotted keys (`{"vllm": {"tp": 2}}` -> `{"vllm.tp": 2}`): how
    configurations are compared field by field (what a resume changed, what a sweep varied)."""
    out: dict = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(dotted_fields(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
