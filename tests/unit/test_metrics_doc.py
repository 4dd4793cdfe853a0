"""Every field of the result models is defined in docs/metrics.md (with its unit and reference point).

Walks the pydantic models reachable from ExperimentResult (result.json) and StudyResult
(study_result.json), except the configuration they echo (documented with the study format), and
requires each field name in a table row of docs/metrics.md: `| `name` | unit | definition |`.
"""
from __future__ import annotations

import re
import typing
from pathlib import Path

from pydantic import BaseModel

from llenergymeasure.domain import ExperimentConfig, ExperimentResult, HarnessError, StudyConfig, StudyResult
from llenergymeasure.domain.serving import ServingSlo

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
CONFIG_MODELS = (ExperimentConfig, StudyConfig, ServingSlo)


def _models(root: type[BaseModel]) -> list[type[BaseModel]]:
    seen: list[type[BaseModel]] = []

    def visit(tp) -> None:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if tp in seen or issubclass(tp, CONFIG_MODELS):
                return
            seen.append(tp)
            for field in tp.model_fields.values():
                visit(field.annotation)
            return
        for arg in typing.get_args(tp):
            visit(arg)

    visit(root)
    return seen


def result_fields() -> list[tuple[str, str]]:
    out = []
    for root in (ExperimentResult, StudyResult, HarnessError):
        for model in _models(root):
            out += [(model.__name__, name) for name in model.model_fields if (model.__name__, name) not in out]
    return out


def documented_names() -> set[str]:
    names = set()
    for line in DOC.read_text().splitlines():
        if line.startswith("|"):
            first_cell = line.split("|")[1]
            names.update(n.split(".")[-1] for n in re.findall(r"`([^`]+)`", first_cell))
    return names


def test_the_walk_reaches_the_nested_result_models():
    names = {m.__name__ for m in _models(ExperimentResult)}
    assert {"ExperimentResult", "RequestRecord", "Metrics", "Distribution", "PhaseEnergy", "ServingResult",
            "ServingWindow", "PromptCache", "EnergyResult"} <= names
    assert "ExperimentConfig" not in names


def test_every_result_field_is_defined_in_docs_metrics_md():
    documented = documented_names()
    missing = [f"{model}.{name}" for model, name in result_fields() if name not in documented]
    assert not missing, f"add a row `| `name` | unit | definition |` to docs/metrics.md for: {missing}"


def test_the_methodology_is_in_the_repository_and_nothing_cites_a_missing_document():
    """Every markdown file name that code or docs mention is a file of the repository (or one the tool writes):
    a user must be able to follow every reference, so reasoning lives in docs/, not elsewhere."""
    root = DOC.parents[1]
    assert (root / "docs" / "methodology.md").is_file()
    present = {p.name for p in root.rglob("*.md") if ".venv" not in p.parts and ".git" not in p.parts}
    written_by_the_tool = {"summary.md"}  # bench/gpu_validation.py's output
    offenders = []
    for folder in ("orchestrator", "harness", "docs", "bench", "scripts", "examples", "tests", "images"):
        for path in (root / folder).rglob("*"):
            if path.suffix in (".py", ".md", ".yaml", ".sh", ".toml") and path.is_file():
                text = path.read_text(errors="ignore")
                offenders += [f"{path.relative_to(root)}: {name}" for name in re.findall(r"[A-Za-z0-9_-]+\.md\b", text)
                              if name not in present | written_by_the_tool]
    assert not offenders, offenders
