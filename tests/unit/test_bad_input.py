"""Bad study files through the real CLI: exit 2 with a message naming the problem, never a traceback,
never a study directory, in bounded time and memory (the long campaign: bench/fault_campaign.py)."""
from __future__ import annotations

import collections
import resource

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.bad_inputs import check_bad_input, generate, run_cli_in_process, yaml_bomb

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=50)
values = st.recursive(scalars, lambda children: st.lists(children, max_size=4)
                      | st.dictionaries(st.text(max_size=12), children, max_size=4), max_leaves=20)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("bad-input")


@SETTINGS
@given(raw=st.binary(max_size=400))
def test_random_bytes(raw, workdir):
    assert check_bad_input(raw, workdir) == []


@SETTINGS
@given(doc=st.dictionaries(st.sampled_from(["name", "base", "sweep", "experiments", "execution", "runners",
                                            "results_dir", "images", "docker", "bogus"]), values, max_size=5))
def test_random_documents_with_study_keys(doc, workdir):
    try:
        text = yaml.safe_dump(doc, allow_unicode=True).encode()
    except yaml.YAMLError:
        return
    assert check_bad_input(text, workdir) == []


@SETTINGS
@given(field=st.sampled_from(["n_prompts", "batch_size", "max_output_tokens", "max_input_tokens", "precision",
                              "engine", "dataset", "random_seed", "decoding", "measurement"]),
       value=values)
def test_any_value_in_any_experiment_field(field, value, workdir, tiny_model_dir):
    text = yaml.safe_dump({"name": "f", "base": {"model": str(tiny_model_dir), field: value}}, allow_unicode=True)
    assert check_bad_input(text.encode(), workdir) == []


def test_generated_campaign_sample_behaves(workdir, tiny_model_dir):
    kinds, problems = collections.Counter(), []
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for kind, data in generate(seed=7, n=250, model=str(tiny_model_dir)):
        kinds[kind] += 1
        problems += [(kind, p) for p in check_bad_input(data, workdir)]
    assert problems == []
    assert kinds["bomb"] and kinds["mutated"] and kinds["random-bytes"]
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 300 * 1024  # KiB: bombs are not expanded


@pytest.mark.parametrize("data, expected", [
    (yaml_bomb(9, 10), "YAML bomb"), (b"", "model"), (b"\xff\xfe\x00", "not UTF-8"),
    (b"name: ../../escape\nbase: {model: m}", "name"), (b"base: {model: m, n_prompts: -5}", "n_prompts"),
    (b"base: {model: m, n_prompts: 100000000000000000000}", "n_prompts"),
    (b"base: {model: m, batch_sise: 2}", "batch_size")])
def test_refusals_name_the_problem_without_running(data, expected, tmp_path):
    (tmp_path / "study.yaml").write_bytes(data)
    outcome = run_cli_in_process(["run", str(tmp_path / "study.yaml")], tmp_path)  # a real run, not --dry-run
    assert outcome.exit_code == 2 and expected in outcome.output, outcome.output
    assert "Traceback" not in outcome.output and outcome.study_dirs_left == 0
