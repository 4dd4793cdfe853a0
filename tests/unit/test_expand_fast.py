"""The fast path of grid expansion (study/expand_fast.py) gives what full validation gives.

Each study is planned twice: as the planner does it, and with the fast path switched off (every
point validated in full, as before it existed); configs, hashes, summaries and skip reasons must
be identical, on grids that mix valid and invalid values."""
from __future__ import annotations

import pytest

from llenergymeasure.domain import StudyConfig
from llenergymeasure.study import expand_fast
from llenergymeasure.study.expand import expand


def _study(base: dict, sweep: dict, **extra) -> StudyConfig:
    return StudyConfig.model_validate({"name": "s", "base": base, "sweep": sweep, **extra})


def _both(study: StudyConfig, monkeypatch, cwd=None):
    fast = expand(study, cwd=cwd)
    with monkeypatch.context() as m:
        m.setattr(expand_fast.ScalarSweep, "of", classmethod(lambda cls, *a: None))
        full = expand(study, cwd=cwd)
    return fast, full


def _assert_same(fast, full) -> None:
    assert fast.hashes == full.hashes
    assert fast.summaries == full.summaries
    assert fast.engines == full.engines
    assert fast.skip_reasons == full.skip_reasons
    for index in range(len(full)):
        a, b = fast.config(index), full.config(index)
        assert (a is None) == (b is None), index
        if a is not None:
            assert a == b and a.model_dump() == b.model_dump() and a.model_fields_set == b.model_fields_set
            assert a.config_hash() == fast.hashes[index]  # also without the planner's shared section texts


MIXED = {
    "batch_size": [1, 0, 4, "x", 8],
    "precision": ["fp16", "bogus", "bf16"],
    "n_prompts": [8, -1, "16"],
    "max_output_tokens": [16, 2**23],
    "random_seed": [0, 2**40, 7],
}


def test_mixed_grid_gives_the_same_configs_hashes_and_skip_reasons(monkeypatch):
    study = _study({"model": "org/tiny", "max_input_tokens": 32,
                    "measurement": {"warmup": {"max_batches": 3}}, "decoding": {"temperature": 0.5}}, MIXED)
    fast, full = _both(study, monkeypatch)
    assert fast._fast is not None and fast._fast_hasher() is not None  # the fast path was taken
    assert 0 < len(fast.skip_reasons) < len(fast)
    assert any("batch_size" in reason for reason in fast.skip_reasons.values())
    _assert_same(fast, full)


@pytest.mark.parametrize("base", [
    {"model": "org/tiny", "engine": "vllm", "vllm": {"max_model_len": 512}},
    {"model": "org/tiny", "prefix_caching": True, "engine": "vllm"},
    {"model": "org/tiny", "engine": "llama_cpp", "mode": "serving", "serving": {"concurrency": 2}},
    {"model": "org/tiny", "dataset": "synthetic", "name": "named"},
])
def test_other_engines_modes_and_sections_agree(monkeypatch, base):
    study = _study(base, {"batch_size": [2, 0, 4], "max_output_tokens": [8, 16], "name": ["a", "b\x1b"]})
    fast, full = _both(study, monkeypatch)
    assert fast._fast is not None
    _assert_same(fast, full)


def test_swept_models_resolve_each_and_a_missing_directory_is_skipped_alike(monkeypatch, tmp_path):
    (tmp_path / "here").mkdir()
    study = _study({"model": "./here"}, {"model": ["./here", "./missing", "org/hub-model", "bad id!"],
                                          "batch_size": [1, 2]})
    fast, full = _both(study, monkeypatch, cwd=tmp_path)
    assert fast._fast is not None
    assert fast.config(0).model == str((tmp_path / "here").resolve())
    assert any("./missing" in reason for reason in fast.skip_reasons.values())
    _assert_same(fast, full)


def test_an_invalid_first_point_or_another_key_falls_back_to_full_validation(monkeypatch):
    invalid_first = _study({"model": "org/tiny"}, {"batch_size": [0, 2], "n_prompts": [4, 8]})
    fast, full = _both(invalid_first, monkeypatch)
    assert fast._fast is None
    _assert_same(fast, full)
    nested = _study({"model": "org/tiny"}, {"batch_size": [1, 2], "decoding.temperature": [0.0, -1.0]})
    fast, full = _both(nested, monkeypatch)
    assert fast._fast is None  # a section key: its validity is the section's business
    _assert_same(fast, full)


def test_explicit_experiments_after_the_grid_are_validated_in_full(monkeypatch):
    study = _study({"model": "org/tiny"}, {"batch_size": [1, 2]},
                   experiments=[{"batch_size": 0}, {"precision": "fp16", "batch_size": 3}])
    fast, full = _both(study, monkeypatch)
    assert fast._fast is not None
    _assert_same(fast, full)
    assert 2 in fast.skip_reasons and 3 not in fast.skip_reasons
