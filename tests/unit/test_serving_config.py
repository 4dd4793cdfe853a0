"""`mode: serving` in the experiment config: validation, defaults, hashing, sweeps."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from llenergymeasure.domain import ExperimentConfig, ServingConfig
from llenergymeasure.domain.serving import ServingSlo


def test_serving_defaults_to_concurrency_one():
    cfg = ExperimentConfig(model="m", engine="llama_cpp", mode="serving")
    assert cfg.serving.concurrency == 1 and cfg.serving.request_rate is None and cfg.serving.streaming


def test_offline_hash_is_unchanged_by_the_serving_fields():
    # The hash of an offline config must not depend on fields that did not exist before serving mode.
    import hashlib
    import json

    cfg = ExperimentConfig(model="m")
    payload = cfg.model_dump(mode="json", exclude={"name", "mode", "serving", "prefix_caching"})
    del payload["measurement"]["warmup"]["max_duration_s"]  # added later still: hashed only when set
    del payload["measurement"]["baseline"]["temperature_max_wait_s"]  # likewise
    del payload["measurement"]["external_energy_file"]  # likewise
    expected = hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]
    assert cfg.config_hash() == expected


def test_a_bounded_temperature_gate_is_hashed_only_when_set():
    default = ExperimentConfig(model="m")
    assert ExperimentConfig(model="m", measurement={"baseline": {"temperature_max_wait_s": 60}}).config_hash() \
        == default.config_hash()
    assert ExperimentConfig(model="m", measurement={"baseline": {"temperature_max_wait_s": 5}}).config_hash() \
        != default.config_hash()


def test_serving_load_shape_changes_the_hash():
    a = ExperimentConfig(model="m", engine="vllm", mode="serving", serving={"concurrency": 1, "n_requests": 8})
    b = ExperimentConfig(model="m", engine="vllm", mode="serving", serving={"concurrency": 4, "n_requests": 8})
    assert a.config_hash() != b.config_hash()
    assert "c=4" in b.summary() and "serving" in b.summary()


@pytest.mark.parametrize("data, field", [
    ({"engine": "llama_cpp", "serving": {"concurrency": 2}}, "mode"),
    ({"engine": "transformers", "mode": "serving"}, "transformers has none"),
    ({"mode": "serving", "serving": {"concurrency": 2, "request_rate": 1.0}}, "either concurrency or request_rate"),
    ({"mode": "serving", "serving": {"concurrency": 8, "n_requests": 8}}, "serving.n_requests"),
    ({"mode": "serving", "serving": {"request_rate": 1.0, "n_requests": 4, "ramp_requests": 4}}, "ramp_requests"),
    ({"mode": "serving", "serving": {"slo": {"ttft_s": -1}}}, "ttft_s"),
])
def test_invalid_serving_configs_name_the_field(data, field):
    with pytest.raises(ValidationError) as info:
        ExperimentConfig(model="m", **{"engine": "llama_cpp", **data})
    assert field in str(info.value)


def test_ramp_default_is_a_tenth_of_the_requests():
    assert ServingConfig(request_rate=2.0, n_requests=50).ramp() == 5
    assert ServingConfig(request_rate=2.0, n_requests=5).ramp() == 1
    assert ServingSlo(ttft_s=0.5).tpot_s is None


def test_sweeping_concurrency_expands_to_one_experiment_each():
    from llenergymeasure.domain import StudyConfig
    from llenergymeasure.study.expand import expand

    study = StudyConfig.model_validate({"name": "s", "base": {"model": "m", "engine": "llama_cpp", "mode": "serving",
                                                              "serving": {"n_requests": 8}},
                                        "sweep": {"serving.concurrency": [1, 4]}})
    configs = [e.config for e in expand(study)]
    assert [c.serving.concurrency for c in configs] == [1, 4]
