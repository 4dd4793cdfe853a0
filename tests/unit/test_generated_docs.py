"""The generated references (docs/study-reference.md, docs/cli.md) and the JSON Schema
(docs/study.schema.json) match the code, and every example validates against the schema."""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from llenergymeasure.cli.main import cli
from llenergymeasure.cli.reference import generated_files, missing_meanings
from llenergymeasure.domain.schema import study_json_schema
from llenergymeasure.study.loader import load_study

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


@pytest.mark.parametrize("rel", sorted(generated_files()))
def test_generated_doc_is_current(rel):
    committed = (REPO / rel).read_text(encoding="utf-8") if (REPO / rel).is_file() else ""
    assert committed == generated_files()[rel], f"{rel} is stale: run `python scripts/gen_docs.py`"


def test_study_reference_names_every_field_and_says_what_it_does():
    text = generated_files()["docs/study-reference.md"]
    for path in ("decoding.ignore_eos", "measurement.warmup.cv_threshold", "execution.max_consecutive_failures",
                 "serving.slo.ttft_s", "llama_cpp.n_gpu_layers", "docker.shm_size"):
        assert f"`{path}`" in text
    assert missing_meanings() == []


def test_cli_reference_covers_every_command_and_option():
    text = generated_files()["docs/cli.md"]
    for heading in ("`llem run`", "`llem results show`", "`llem results compare`", "`llem config`",
                    "`llem models make-tiny`", "`llem images build`", "`llem status`"):
        assert heading in text
    for flag in ("--dry-run", "--resume", "--executor", "--wait-for-devices"):
        assert flag in text


def test_the_schema_is_a_valid_draft_2020_12_schema():
    jsonschema.Draft202012Validator.check_schema(study_json_schema())


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_example_validates_against_the_schema_and_loads(example):
    data = yaml.safe_load(example.read_text(encoding="utf-8"))
    errors = [e.message for e in jsonschema.Draft202012Validator(study_json_schema()).iter_errors(data)]
    assert errors == []
    study = load_study(example)
    assert study.execution.n_cycles >= 3, "examples use at least 3 cycles (confidence intervals need n >= 3)"
    first = example.read_text(encoding="utf-8").splitlines()[0]
    assert first == "# yaml-language-server: $schema=../docs/study.schema.json"


@pytest.mark.parametrize("bad, where", [
    ({"name": "s", "base": {"model": "m", "decodng": {}}}, "decodng"),
    ({"name": "s", "base": {"model": "m", "batch_size": 0}}, "batch_size"),
    ({"name": "s", "execution": {"cycle_order": "random"}}, "random"),
    ({"name": "s", "runners": {"podman": "local"}}, "podman"),
    ({"model": "m", "engine": "onnx"}, "onnx"),
])
def test_the_schema_refuses_what_the_models_refuse(bad, where):
    errors = list(jsonschema.Draft202012Validator(study_json_schema()).iter_errors(bad))
    assert errors and any(where in json.dumps(e.instance) or where in e.message or where in str(list(e.path))
                          for e in _leaves(errors))


def _leaves(errors):
    for error in errors:
        yield error
        yield from _leaves(error.context or [])


def test_the_shorthands_the_models_accept_validate():
    schema = study_json_schema()
    for ok in ({"model": "m", "dataset": "synthetic", "engine": "pytorch"},
               {"name": "s", "base": {"model": "m", "dataset": "hf:org/ds:test"}, "sweep": {"batch_size": [1, 2]},
                "runners": {"llama.cpp": "local"}}):
        assert list(jsonschema.Draft202012Validator(schema).iter_errors(ok)) == []


def test_llem_config_schema_prints_the_schema():
    out = CliRunner().invoke(cli, ["config", "schema"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output) == study_json_schema()


def test_the_readme_has_exactly_two_commands_for_a_fresh_machine_and_a_valid_minimal_study():
    import re

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Two commands for a fresh machine", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)\n```", section, flags=re.S)
    assert commands == [
        "bash scripts/setup.sh && .venv/bin/llem models make-tiny models/tiny-llm && "
        ".venv/bin/llem run examples/quickstart.yaml",
        "bash scripts/test.sh"]
    header = (REPO / "examples" / "quickstart.yaml").read_text(encoding="utf-8")
    assert "README's first command runs it" in header and ".venv/bin/llem run examples/quickstart.yaml" in header
    [study] = re.findall(r"```yaml\n(.*?)\n```", readme.split("## A minimal study", 1)[1], flags=re.S)
    data = yaml.safe_load(study)
    assert list(jsonschema.Draft202012Validator(study_json_schema()).iter_errors(data)) == []
    assert study.startswith("# yaml-language-server: $schema=docs/study.schema.json")
