"""Reading a study YAML (or CLI flags) into a validated StudyConfig.

Every problem becomes a ConfigError whose message names the field and the fix, including the
closest valid name for a misspelled field.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..domain import ExperimentConfig, StudyConfig
from ..errors import ConfigError

# Keys that mark a YAML as a single experiment rather than a study.
_STUDY_KEYS = {"base", "sweep", "experiments", "execution", "runners", "images", "docker", "results_dir"}


MAX_YAML_BYTES = 1 << 20       # a study file is a few KB; anything this large is a mistake
MAX_EXPANDED_NODES = 200_000   # nodes after anchors/aliases are expanded (YAML bomb guard)


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _expanded_size(node, memo: dict[int, int], path: set[int], source) -> int:
    """Nodes the document has once every alias is expanded, in time linear in the file (memoised).

    Also refuses, with the line, what PyYAML would accept silently or crash on later: a mapping
    key given twice (the last one would win) and an alias inside its own anchor (a recursive
    structure that every later walk would follow forever)."""
    key = id(node)
    if key in path:
        raise ConfigError(f"{source}: line {node.start_mark.line + 1}: the alias refers to a node that contains it "
                          "(a recursive YAML structure); write the value out instead of the alias")
    if key not in memo:
        path.add(key)
        children = node.value if isinstance(node.value, list) else []
        if node.id == "mapping":
            _check_duplicate_keys(node, source)
        size = 1
        for child in children:
            parts = child if isinstance(child, tuple) else (child,)
            size += sum(_expanded_size(part, memo, path, source) for part in parts)
            if size > MAX_EXPANDED_NODES:
                break
        path.discard(key)
        memo[key] = size
    return memo[key]


def _check_duplicate_keys(node, source) -> None:
    """By key, not by line: a flow mapping (`{n_prompts: 2, n_prompts: 3}`) holds both on one line."""
    seen: dict[tuple[str, str], int] = {}
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG or key_node.id != "scalar":
            continue
        line = key_node.start_mark.line + 1
        key = (key_node.tag, key_node.value)
        if key in seen:
            where = f"line {seen[key]}" if seen[key] != line else "the same line"
            raise ConfigError(f"{source}: line {line}: key '{key_node.value}' is given twice (first on {where}); "
                              "keep one of them")
        seen[key] = line


def load_yaml(path: Path) -> dict[str, Any]:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    raw = path.read_bytes()
    if len(raw) > MAX_YAML_BYTES:
        raise ConfigError(f"{path} is {len(raw):,} bytes; a study YAML is limited to {MAX_YAML_BYTES:,}")
    try:
        text = raw.decode("utf-8")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None and _expanded_size(node, {}, set(), path) > MAX_EXPANDED_NODES:
            raise ConfigError(f"{path}: its anchors/aliases expand to more than {MAX_EXPANDED_NODES:,} values "
                              "(a 'YAML bomb'); write the study without nested aliases")
        data = yaml.safe_load(text) or {}
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise ConfigError(f"{path} is not valid YAML: {str(exc)[:500]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping (got {type(data).__name__})")
    return data


def study_from_mapping(data: dict[str, Any], source: str | None = None) -> StudyConfig:
    """A study mapping, or a single-experiment mapping wrapped as a one-point study."""
    from ..errors import format_validation_error

    if not (_STUDY_KEYS & set(data)) and "model" in data:
        data = {"name": data.pop("name", None) or "experiment", "base": data}
    try:
        study = StudyConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, StudyConfig, source).removeprefix("Invalid configuration")
                          .join(["Invalid study configuration", ""])) from None
    _check_base_fields(study, source)
    from .expand import check_grid_size

    check_grid_size(study)  # before anything is expanded: the size of a product is known up front
    return study


def _check_base_fields(study: StudyConfig, source: str | None) -> None:
    """Misspelled keys in `base:` or `sweep:` would otherwise only skip every grid point."""
    from ..domain.base import closest_field

    problems = []
    keys = _leaf_paths(study.base) + [tuple(k.split(".")) for k in study.sweep]
    for exp in study.experiments or []:
        keys += _leaf_paths(exp)
    for full in keys:
        bad = _first_unknown(full)
        if bad is not None:
            loc = full[:bad + 1]
            hint = closest_field(ExperimentConfig, loc)
            fix = f" — did you mean '{'.'.join(loc[:-1] + (hint,))}'?" if hint else ""
            problems.append(f"  {'.'.join(full)}: unknown experiment field '{loc[-1]}'{fix}")
    if problems:
        where = f" in {source}" if source else ""
        raise ConfigError(f"Invalid study configuration{where}:\n" + "\n".join(problems))


def _leaf_paths(mapping: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []
    for key, value in mapping.items():
        if isinstance(value, dict) and value:
            paths += _leaf_paths(value, prefix + (str(key),))
        else:
            paths.append(prefix + (str(key),))
    return paths


def _first_unknown(loc: tuple[str, ...]) -> int | None:
    """Index of the first part of a dotted path that names no ExperimentConfig field."""
    from pydantic import BaseModel

    from ..domain.base import _model_in_annotation

    model: Any = ExperimentConfig
    for i, part in enumerate(loc):
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None  # free-form section (engine dicts): not ours to check
        field = model.model_fields.get(part)
        if field is None:
            return i
        model = _model_in_annotation(field.annotation)
    return None


def load_study(path: str | Path) -> StudyConfig:
    path = Path(path)
    return study_from_mapping(load_yaml(path), source=str(path))
