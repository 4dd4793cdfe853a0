"""The recipe page's study (docs/recipe-vllm-docker.md) is a valid study: every configuration expands."""
from __future__ import annotations

import re

import yaml

from tests.helpers import REPO_ROOT


def test_the_recipe_study_is_valid():
    from llenergymeasure.study.expand import expand
    from llenergymeasure.study.loader import study_from_mapping

    text = (REPO_ROOT / "docs" / "recipe-vllm-docker.md").read_text()
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "engine: vllm" in b)
    study = study_from_mapping(yaml.safe_load(block), source="docs/recipe-vllm-docker.md")
    plan = expand(study)
    assert len(plan) == 3 and not plan.skip_reasons, plan.skip_reasons
    assert {e.config.serving.concurrency for e in plan} == {1, 8, 32}
    assert study.runners["vllm"] == "docker" and study.execution.n_cycles == 3
