"""Study expansion: base + sweep grid + explicit experiments -> validated ExperimentConfigs.

A grid point that fails validation becomes a skipped entry with its reason; it never stops
the study. Order is deterministic: sweep keys in YAML order, values in list order.
"""
from __future__ import annotations

import copy
import itertools
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..domain import ExperimentConfig, StudyConfig


@dataclass
class ExpandedExperiment:
    index: int
    raw: dict[str, Any]
    config: ExperimentConfig | None = None
    skip_reason: str | None = None

    @property
    def label(self) -> str:
        if self.config is not None:
            return self.config.summary()
        return ", ".join(f"{k}={v}" for k, v in _flatten(self.raw).items() if k != "model") or "(invalid)"


def set_dotted(target: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = target
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def raw_points(study: StudyConfig) -> list[dict[str, Any]]:
    points: list[dict[str, Any]] = []
    if study.sweep:
        keys = list(study.sweep)
        for combo in itertools.product(*(study.sweep[k] for k in keys)):
            point = copy.deepcopy(study.base)
            for key, value in zip(keys, combo):
                set_dotted(point, key, value)
            points.append(point)
    for explicit in study.experiments or []:
        points.append(deep_merge(study.base, explicit))
    if not points:
        points.append(copy.deepcopy(study.base))
    return points


def expand(study: StudyConfig, search_dirs: list[Path] | None = None) -> list[ExpandedExperiment]:
    """Validate every point; resolve local model/dataset paths to absolute ones."""
    from ..cli.errors import format_validation_error

    out: list[ExpandedExperiment] = []
    for index, raw in enumerate(raw_points(study)):
        item = ExpandedExperiment(index=index, raw=raw)
        try:
            item.config = resolve_local_paths(ExperimentConfig.model_validate(raw), search_dirs or [])
        except ValidationError as exc:
            item.skip_reason = format_validation_error(exc, ExperimentConfig).split("\n", 1)[-1].strip()
        out.append(item)
    return out


def resolve_local_paths(config: ExperimentConfig, search_dirs: list[Path]) -> ExperimentConfig:
    """Make local model directories and dataset files absolute (containers mount them as-is)."""
    updates: dict[str, Any] = {}
    model = _find(config.model, search_dirs)
    if model:
        updates["model"] = model
    if config.dataset.source == "jsonl":
        path = _find(config.dataset.path, search_dirs)
        if path:
            updates["dataset"] = config.dataset.model_copy(update={"path": path})
    return config.model_copy(update=updates) if updates else config


def _find(value: str | None, search_dirs: list[Path]) -> str | None:
    if not value:
        return None
    candidate = Path(os.path.expanduser(value))
    if candidate.is_absolute():
        return str(candidate) if candidate.exists() else None
    for base in [Path.cwd(), *search_dirs]:
        if (base / candidate).exists():
            return str((base / candidate).resolve())
    return None


def run_order(n_experiments: int, n_cycles: int, cycle_order: str, shuffle_seed: int) -> list[tuple[int, int]]:
    """(experiment index, cycle) pairs in execution order. Cycles are numbered from 1.

    sequential: A1 A2 A3 B1 B2 B3 — interleaved: A1 B1 A2 B2 — shuffled: every cycle a new
    seeded permutation, so drift over time does not line up with one configuration.
    """
    indices = list(range(n_experiments))
    if cycle_order == "sequential":
        return [(i, c) for i in indices for c in range(1, n_cycles + 1)]
    rng = random.Random(shuffle_seed)
    order = []
    for cycle in range(1, n_cycles + 1):
        perm = list(indices)
        if cycle_order == "shuffled":
            rng.shuffle(perm)
        order.extend((i, cycle) for i in perm)
    return order


def _flatten(raw: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat
