"""Sweep expansion, run ordering, config hashing and skipped grid points."""
from __future__ import annotations

from llenergymeasure.domain import ExperimentConfig, StudyConfig
from llenergymeasure.study.expand import expand, raw_points, run_order


def _study(**kwargs) -> StudyConfig:
    return StudyConfig.model_validate({"name": "s", "base": {"model": "m", "n_prompts": 2}, **kwargs})


def test_sweep_is_cartesian_in_yaml_order():
    study = _study(sweep={"batch_size": [1, 2], "precision": ["fp32", "fp16", "bf16"]})
    points = raw_points(study)
    assert len(points) == 6
    assert [(p["batch_size"], p["precision"]) for p in points[:3]] == [(1, "fp32"), (1, "fp16"), (1, "bf16")]
    assert all(p["n_prompts"] == 2 and p["model"] == "m" for p in points)


def test_dotted_sweep_keys_set_nested_fields():
    study = _study(sweep={"transformers.attn_implementation": ["eager", "sdpa"],
                          "measurement.warmup.max_batches": [3]})
    configs = [e.config for e in expand(study)]
    assert [c.transformers.attn_implementation for c in configs] == ["eager", "sdpa"]
    assert all(c.measurement.warmup.max_batches == 3 for c in configs)


def test_explicit_experiments_merge_onto_base_after_the_grid():
    study = _study(sweep={"batch_size": [1, 2]}, experiments=[{"batch_size": 8, "measurement": {"baseline": {"enabled": False}}}])
    configs = [e.config for e in expand(study)]
    assert [c.batch_size for c in configs] == [1, 2, 8]
    assert configs[2].measurement.baseline.enabled is False
    assert configs[2].measurement.baseline.duration_s == 10.0  # deep merge keeps the rest


def test_invalid_grid_point_is_skipped_with_reason_and_others_survive():
    study = _study(sweep={"batch_size": [1, 0, 4]})
    expanded = expand(study)
    assert [e.config is not None for e in expanded] == [True, False, True]
    assert "batch_size" in expanded[1].skip_reason and "greater than or equal to 1" in expanded[1].skip_reason


def test_run_order_variants():
    assert run_order(2, 2, "sequential", 0) == [(0, 1), (0, 2), (1, 1), (1, 2)]
    assert run_order(2, 2, "interleaved", 0) == [(0, 1), (1, 1), (0, 2), (1, 2)]
    shuffled = run_order(5, 3, "shuffled", 7)
    assert shuffled == run_order(5, 3, "shuffled", 7)  # deterministic for a seed
    assert shuffled != run_order(5, 3, "shuffled", 8)
    for cycle in (1, 2, 3):  # every cycle is a permutation of all experiments
        assert sorted(i for i, c in shuffled if c == cycle) == list(range(5))


def test_config_hash_is_stable_and_ignores_the_label():
    a = ExperimentConfig(model="m", batch_size=2, name="first")
    b = ExperimentConfig.model_validate({"batch_size": 2, "model": "m", "name": "second"})
    assert a.config_hash() == b.config_hash()
    assert len(a.config_hash()) == 16
    assert ExperimentConfig(model="m", batch_size=3).config_hash() != a.config_hash()
    # Defaults spelled out explicitly hash the same as defaults left implicit.
    assert ExperimentConfig(model="m", batch_size=2, engine="pytorch").config_hash() == a.config_hash()


def test_local_model_path_becomes_absolute(tmp_path, monkeypatch):
    (tmp_path / "models" / "tiny").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    [item] = expand(StudyConfig.model_validate({"base": {"model": "models/tiny"}}))
    assert item.config.model == str((tmp_path / "models" / "tiny").resolve())
    [hub] = expand(StudyConfig.model_validate({"base": {"model": "org/not-a-local-dir"}}))
    assert hub.config.model == "org/not-a-local-dir"
