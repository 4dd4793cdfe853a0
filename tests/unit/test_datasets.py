"""Prompt sources of the harness: synthetic (deterministic), JSONL, and their errors."""
from __future__ import annotations

import json

import pytest

from llem_harness.datasets import DatasetError, load_prompts, synthetic_prompts
from llenergymeasure.domain import ExperimentConfig


def _words(text: str, n: int) -> str:
    """A whitespace 'tokenizer': enough to check length control without loading a model."""
    return " ".join(text.split()[:n])


def test_synthetic_prompts_are_deterministic_and_length_controlled():
    a = synthetic_prompts(5, 12, seed=3, fit_to_tokens=_words)
    assert a == synthetic_prompts(5, 12, seed=3, fit_to_tokens=_words)
    assert a != synthetic_prompts(5, 12, seed=4, fit_to_tokens=_words)
    assert all(len(p.split()) == 12 for p in a)
    assert len(set(a)) == 5


def test_synthetic_uses_dataset_input_tokens_over_max_input_tokens():
    cfg = ExperimentConfig(model="m", n_prompts=2, max_input_tokens=40, dataset={"source": "synthetic", "input_tokens": 7})
    assert [len(p.split()) for p in load_prompts(cfg, _words)] == [7, 7]


def test_jsonl_reads_prompt_or_text_or_a_named_column(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [{"prompt": "a b"}, {"text": "c d"}, {"prompt": "e", "q": "x"}]) + "\n\n")
    cfg = ExperimentConfig(model="m", n_prompts=3, dataset=str(path))
    assert load_prompts(cfg, _words) == ["a b", "c d", "e"]
    path2 = tmp_path / "q.jsonl"
    path2.write_text(json.dumps({"q": "question?"}) + "\n")
    cfg2 = ExperimentConfig(model="m", n_prompts=1, dataset={"source": "jsonl", "path": str(path2), "column": "q"})
    assert load_prompts(cfg2, _words) == ["question?"]


@pytest.mark.parametrize("content, message", [
    ('{"prompt": "only one"}\n', "has 1 prompts but n_prompts is 2"),
    ('{"prompt": "x"}\nnot json\n', ":2: not valid JSON"),
    ('{"other": "x"}\n{"prompt": "y"}\n', "no string field 'prompt' or 'text'"),
])
def test_jsonl_errors_say_what_and_where(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(DatasetError, match=message):
        load_prompts(ExperimentConfig(model="m", n_prompts=2, dataset=str(path)), _words)


def test_missing_file_and_shorthand_parsing(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        load_prompts(ExperimentConfig(model="m", dataset=str(tmp_path / "none.jsonl")), _words)
    hf = ExperimentConfig(model="m", dataset="hf:org/set:test").dataset
    assert (hf.source, hf.path, hf.split) == ("hf", "org/set", "test")
    with pytest.raises(ValueError, match="not 'synthetic'"):
        ExperimentConfig(model="m", dataset="prompts.txt")
