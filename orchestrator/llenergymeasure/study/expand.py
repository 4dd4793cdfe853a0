"""Study expansion: base + sweep grid + explicit experiments -> validated ExperimentConfigs.

A grid point that fails validation becomes a skipped entry with its reason; it never stops
the study. Order is deterministic: sweep keys in YAML order, values in list order.

Why lazy: a grid is a product, so a short YAML can name millions of points. The size is
computed before anything is expanded and refused over MAX_CONFIGURATIONS / MAX_RUNS; an
allowed grid is validated point by point in one streaming pass that keeps only what the
manifest needs (hash, summary, engine, skip reason). A point's dict and its ExperimentConfig
are rebuilt from its index when asked for (a few recent ones are cached), so memory grows with
a few hundred bytes per point, not with the size of a validated config.
"""
from __future__ import annotations

import copy
import itertools
import math
import os
import random
import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..domain import ExperimentConfig, StudyConfig
from ..domain.config import ENGINE_ALIASES, check_floats_bounded, section_canonical_json
from ..errors import ConfigError
from .expand_fast import ScalarSweep

MAX_CONFIGURATIONS = 100_000   # grid points + explicit experiments of one study
MAX_RUNS = 1_000_000           # configurations × cycles (one manifest entry each)
_CONFIG_CACHE = 256            # validated configs kept for repeated access (a run reads its own several times)


def grid_size(study: StudyConfig) -> int:
    """Configurations the study expands to, computed without expanding it."""
    grid = math.prod(len(v) for v in study.sweep.values()) if study.sweep else 0
    return (grid + len(study.experiments or [])) or 1


def check_grid_size(study: StudyConfig) -> None:
    """ConfigError (exit 2) naming the number and the sweep keys responsible when over the limits."""
    n = grid_size(study)
    runs = n * study.execution.planned_cycles
    if n <= MAX_CONFIGURATIONS and runs <= MAX_RUNS:
        return
    keys = sorted(study.sweep.items(), key=lambda kv: -len(kv[1]))
    product = " × ".join(f"{k} ({len(v)} values)" for k, v in keys) or "experiments"
    if n > MAX_CONFIGURATIONS:
        raise ConfigError(f"sweep: the study expands to {n:,} configurations ({product}), more than the limit of "
                          f"{MAX_CONFIGURATIONS:,}; remove values from the largest sweep keys or split the study "
                          "into several studies")
    raise ConfigError(f"execution.n_cycles: {n:,} configurations ({product}) × {study.execution.n_cycles} cycles = "
                      f"{runs:,} runs, more than the limit of {MAX_RUNS:,}; lower n_cycles or the sweep")


@dataclass(frozen=True)
class ExpandedExperiment:
    """One configuration of the plan; the heavy parts (raw dict, config) are rebuilt on demand."""

    index: int
    plan: "Plan"

    @property
    def raw(self) -> dict[str, Any]:
        return self.plan.raw(self.index)

    @property
    def config(self) -> ExperimentConfig | None:
        return self.plan.config(self.index)

    @property
    def skip_reason(self) -> str | None:
        return self.plan.skip_reasons.get(self.index)

    @property
    def valid(self) -> bool:
        return self.index not in self.plan.skip_reasons

    @property
    def config_hash(self) -> str | None:
        return self.plan.hashes[self.index]

    @property
    def engine(self) -> str | None:
        return self.plan.engines[self.index]

    @property
    def summary(self) -> str:
        return self.plan.summaries[self.index]

    @property
    def label(self) -> str:
        if self.valid:
            return self.summary
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
    out = _copy_tree(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _copy_tree(value: Any) -> Any:
    """Copy of a YAML tree (dicts, lists, immutable scalars): much faster than copy.deepcopy."""
    if isinstance(value, dict):
        return {k: _copy_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_tree(v) for v in value]
    return value


_PLAIN = frozenset({str, int, float, bool, type(None)})  # immutable: a point may share them with the sweep


class Grid:
    """A point's mapping from its index (mixed radix over the sweep, then the explicit experiments)."""

    def __init__(self, study: StudyConfig):
        check_grid_size(study)
        self.base = study.base
        self.keys = list(study.sweep)
        self.values = [study.sweep[k] for k in self.keys]
        self.n_grid = math.prod(len(v) for v in self.values) if self.keys else 0
        self.explicit = study.experiments or []
        self.n = grid_size(study)
        self._reversed_values = self.values[::-1]
        self._keys = [(key, "." in key) for key in self.keys]

    def digits(self, index: int) -> list[int]:
        """Position of each sweep key's value at grid point `index`, in YAML order."""
        rest, out = index, []
        for values in self._reversed_values:
            rest, digit = divmod(rest, len(values))
            out.append(digit)
        out.reverse()
        return out

    def raw(self, index: int, sections: dict[str, Any] | None = None) -> dict[str, Any]:
        """Base with the sweep values of `index` (the last key varies fastest, as itertools.product).

        `sections`: validated section instances that replace the base's sections the sweep never
        touches (validation does not depend on the parent, so the result is the same)."""
        if index < self.n_grid:
            point = _copy_tree(self.base) if not sections else \
                {**{k: _copy_tree(v) for k, v in self.base.items() if k not in sections}, **sections}
            rest, combo = index, []
            for values in self._reversed_values:
                rest, digit = divmod(rest, len(values))
                combo.append(values[digit])
            for (key, dotted), value in zip(self._keys, reversed(combo)):  # in YAML order: a later key wins
                if type(value) not in _PLAIN:
                    value = _copy_tree(value)
                if dotted:
                    set_dotted(point, key, value)
                else:
                    point[key] = value
            return point
        if self.explicit:
            return deep_merge(self.base, self.explicit[index - self.n_grid])
        return _copy_tree(self.base)


class Plan(Sequence):
    """The study's configurations in order, validated once in a streaming pass."""

    def __init__(self, study: StudyConfig, search_dirs: list[Path] | None = None, cwd: Path | None = None,
                 stream: bool = True, visit: Callable[[int, ExperimentConfig], None] | None = None):
        """`stream=False`: no validation pass (a caller that needs one point's config, e.g. to explain a change).

        `visit(index, config)`: called for every valid point during the validation pass, so that a
        caller that needs every config (the dry-run's checks and estimates) does not validate twice."""
        self.study = study
        self.grid = Grid(study)
        self.bases = list(dict.fromkeys([Path(cwd or Path.cwd()), *(Path(p) for p in search_dirs or [])]))
        self._n = self.grid.n
        self._found: dict[str, str | None] = {}
        self._cache: OrderedDict[int, ExperimentConfig] = OrderedDict()
        self._sections = self._shared_sections() if self.grid.n_grid > 1 else {}
        self._section_json = {id(v): section_canonical_json(v) for v in self._sections.values()}
        self._context = {"floats_checked": frozenset(self._section_json)}
        self._fast = ScalarSweep.of(self.grid, self._sections, self._context) if stream else None
        self.hashes: list[str | None] = []
        self.summaries: list[str] = []
        self.engines: list[str | None] = []
        self.skip_reasons: dict[int, str] = {}
        self._by_parallel: dict[int, int] = {}  # tensor-parallel size -> first valid index with it
        hash_of = self._fast_hasher()
        points = itertools.product(*(range(len(v)) for v in self.grid.values))  # each grid point's digits, in order
        for index in range(self._n if stream else 0):
            digits = next(points) if index < self.grid.n_grid else None
            config = self.config(index, digits)
            if config is not None and hash_of is not None and digits is not None:
                self.hashes.append(hash_of(digits))  # the same text as config_hash's
            else:
                self.hashes.append(config.config_hash(self._section_json) if config else None)
            self.summaries.append(config.summary() if config else "")
            self.engines.append(config.engine if config else None)
            if config is not None:
                section = config.__dict__.get(config.engine)  # a pydantic model's fields live in its __dict__
                size = section.__dict__.get("tensor_parallel_size") if section is not None else None
                self._by_parallel.setdefault(size or 1, index)
            if visit is not None and config is not None:
                visit(index, config)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._n))]
        if index < 0:
            index += self._n
        if not 0 <= index < self._n:
            raise IndexError(index)
        return ExpandedExperiment(index, self)

    def raw(self, index: int) -> dict[str, Any]:
        return self.grid.raw(index)

    def _fast_hasher(self) -> Callable[[list[int]], str] | None:
        """Hashes of the points built by the fast path (study/expand_fast.py), checked on the first point."""
        if self._fast is None:
            return None
        try:
            resolved = self._resolve(self._fast.template)
        except ConfigError:
            return None
        hash_of = self._fast.hasher(resolved, self._section_json)
        if hash_of is None or hash_of(self.grid.digits(0)) != resolved.config_hash(self._section_json):
            return None
        return hash_of

    def tensor_parallel_configs(self) -> list[ExperimentConfig]:
        """One valid config per distinct tensor-parallel size: all that the GPU-set checks read
        (executors/gpu_alloc.py takes their largest), without validating 100,000 configs again."""
        if not self._by_parallel and len(self.hashes) < self._n:  # no validation pass (stream=False)
            return [e.config for e in self if e.valid]
        return [self.config(index) for index in self._by_parallel.values()]

    def _shared_sections(self) -> dict[str, Any]:
        """Sections (measurement, decoding, ...) of the base that no sweep key touches, validated once
        and shared by every grid point: most of a point's validation and hashing cost is theirs."""
        from ..domain.base import _model_in_annotation

        swept = {key.split(".")[0] for key in self.grid.keys}
        engine = self.study.base.get("engine", ExperimentConfig.model_fields["engine"].default)
        engine = ENGINE_ALIASES.get(str(engine).strip().lower(), str(engine).strip().lower())
        shared: dict[str, Any] = {}
        for name, field in ExperimentConfig.model_fields.items():
            model = _model_in_annotation(field.annotation)
            value = self.study.base.get(name)
            if name in swept or model is None or not (value is None or isinstance(value, dict)):
                continue
            default_section = field.default_factory is not None or (name == engine and "engine" not in swept)
            if value is None and (name in self.study.base or not default_section):
                continue  # absent and not created by default (another engine's section, serving)
            try:
                shared[name] = check_floats_bounded(model.model_validate(value if value is not None else {}), name)
            except (ValidationError, ValueError):
                continue  # every point fails on it: the normal path names the field
        return shared

    def config(self, index: int, digits: Sequence[int] | None = None) -> ExperimentConfig | None:
        """The validated config with local paths resolved (None for a skipped point).

        `digits`: the point's Grid.digits, where the caller has them (the validation pass)."""
        if index in self.skip_reasons:
            return None
        cached = self._cache.get(index)
        if cached is not None:
            self._cache.move_to_end(index)
            return cached
        from ..errors import format_validation_error

        fast = None
        if self._fast is not None and index < self.grid.n_grid:
            fast = self._fast.config(self.grid.digits(index) if digits is None else digits)
        if fast is not None:  # its values each passed validation (study/expand_fast.py)
            try:
                config = self._resolve(fast)
            except ConfigError as exc:
                self.skip_reasons[index] = str(exc)
                return None
            return self._keep(index, config)
        try:
            raw = self.grid.raw(index, self._sections)
            config = self._resolve(ExperimentConfig.model_validate(raw, context=self._context))
        except ValidationError as exc:
            self.skip_reasons[index] = format_validation_error(exc, ExperimentConfig).split("\n", 1)[-1].strip()
            return None
        except ConfigError as exc:
            self.skip_reasons[index] = str(exc)
            return None
        return self._keep(index, config)

    def _keep(self, index: int, config: ExperimentConfig) -> ExperimentConfig:
        self._cache[index] = config
        if len(self._cache) > _CONFIG_CACHE:
            self._cache.popitem(last=False)
        return config

    def _resolve(self, config: ExperimentConfig) -> ExperimentConfig:
        """Make local model directories and dataset files absolute (containers mount them as-is);
        a path that names nothing, or an empty dataset, is refused here, before anything starts."""
        updates: dict[str, Any] = {}
        model = self._find(config.model)
        if model:
            if model != config.model:  # already absolute: no copy (a 100,000-point plan copies nothing)
                updates["model"] = model
        elif looks_like_path(config.model) or not _HUB_ID.match(config.model):
            shown = config.model if len(config.model) <= 200 else config.model[:200] + "…"
            raise ConfigError(f"model: {shown!r} is not an existing local directory (looked in "
                              f"{', '.join(str(b) for b in self.bases)}) nor a Hugging Face hub id; fix the path, "
                              "or give a hub id as org/name")
        if config.dataset.source == "jsonl":
            path = self._find(config.dataset.path)
            if path is None:
                raise ConfigError(f"dataset.path: JSONL file {config.dataset.path[:200]!r} not found (looked in "
                                  f"{', '.join(str(b) for b in self.bases)}); fix the path")
            if not Path(path).is_file() or os.path.getsize(path) == 0:
                raise ConfigError(f"dataset.path: '{path}' is empty or not a file; give a JSONL file with one "
                                  '{"prompt": "..."} object per line')
            updates["dataset"] = config.dataset.model_copy(update={"path": path})
        return config.model_copy(update=updates) if updates else config

    def _find(self, value: str | None) -> str | None:
        if not value:
            return None
        if value not in self._found:
            self._found[value] = _find(value, self.bases)
        return self._found[value]


# Hugging Face repo ids: `name` or `namespace/name`, letters, digits, - _ . (at most 96 characters each).
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?$", re.ASCII)


def looks_like_path(value: str) -> bool:
    """A local path rather than a hub id (`org/name` or `name`): absolute, ./ ../ ~, or 2+ slashes."""
    return (value.startswith(("/", "./", "../", "~", "\\")) or value in (".", "..") or value.count("/") > 1
            or "\\" in value)


def raw_points(study: StudyConfig) -> list[dict[str, Any]]:
    """Every point's mapping (small grids and tests; the study itself uses Plan)."""
    grid = Grid(study)
    return [grid.raw(i) for i in range(grid.n)]


def expand(study: StudyConfig, search_dirs: list[Path] | None = None, cwd: Path | None = None,
           visit: Callable[[int, ExperimentConfig], None] | None = None) -> Plan:
    """Validate every point; resolve local model/dataset paths against `cwd` (default: the
    current directory), then `search_dirs`. `visit`: see Plan."""
    return Plan(study, search_dirs, cwd, visit=visit)


def _find(value: str, bases: list[Path]) -> str | None:
    """The absolute path `value` names here, or None (also for a name the file system cannot hold)."""
    try:
        candidate = Path(os.path.expanduser(value))
        if candidate.is_absolute():
            return str(candidate) if candidate.exists() else None
        for base in bases:
            if (base / candidate).exists():
                return str((base / candidate).resolve())
    except (OSError, ValueError):  # too long for the file system, a NUL byte
        return None
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
