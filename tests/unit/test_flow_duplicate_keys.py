"""A key given twice is refused in a flow mapping too (`{n_prompts: 2, n_prompts: 3}` was silently 3), and
a count beyond its bound is refused at the CLI (exit 2 naming the field), through the real CLI entry point."""
from __future__ import annotations

import pytest

from tests.unit.test_input_limits import _cli, _refused


@pytest.mark.parametrize("text", [
    "name: dup\nbase: {model: m, n_prompts: 2, n_prompts: 3}\n",
    "name: dup\nbase:\n  model: m\n  serving: {n_requests: 4, n_requests: 8}\n",
    "name: dup\nbase: {model: m}\nexecution: {n_cycles: 1,\n  n_cycles: 2}\n",
])
def test_a_duplicate_key_in_a_flow_mapping_is_refused(tmp_path, text):
    key = "n_prompts" if "n_prompts" in text else "n_requests" if "n_requests" in text else "n_cycles"
    _refused(_cli(tmp_path, text, "--dry-run"), f"'{key}' is given twice")


def test_distinct_keys_on_one_line_are_not_duplicates(tmp_path):
    outcome = _cli(tmp_path, "name: ok\nbase: {model: m, n_prompts: 2, batch_size: 1}\n", "--dry-run")
    assert "given twice" not in outcome.output


def test_input_tokens_of_10_to_the_12_are_refused_before_anything_runs(tmp_path):
    _refused(_cli(tmp_path, "name: big\nbase: {model: m, dataset: {source: synthetic, input_tokens: 1000000000000}}\n",
                  "--dry-run"), "dataset.input_tokens")
