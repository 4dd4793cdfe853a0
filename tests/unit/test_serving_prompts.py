"""Serving prompts are cut to `max_input_tokens` tokens of the model's tokenizer, not by a word count,
and the counts sent are recorded. Real tokenizer (the tiny model's); the server is not started:
TensorRT-LLM's server has no tokenize endpoint, so the harness cuts with the model's tokenizer."""
from __future__ import annotations

import pytest

from llem_harness.serving.load import ServingLoad
from llenergymeasure.domain import ExperimentConfig, RunSpec

transformers = pytest.importorskip("transformers")


@pytest.mark.parametrize("target", [32, 7])
def test_prompts_reach_the_server_with_the_target_token_count(tiny_model_dir, tmp_path, target):
    config = ExperimentConfig(model=str(tiny_model_dir), engine="tensorrt_llm", mode="serving", n_prompts=12,
                              max_input_tokens=target, serving={"n_requests": 12, "concurrency": 2})
    spec = RunSpec(study_id="s", run_id="r", experiment_index=0, cycle=0, config=config, config_hash="h")
    load = ServingLoad(spec, tmp_path, emit=lambda *a, **k: None)
    load.prepare()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(tiny_model_dir))
    specials = len(tokenizer("")["input_ids"])
    for body in load.bodies + load.warm_bodies:
        assert len(tokenizer(body["prompt"], add_special_tokens=False)["input_ids"]) == target, body["prompt"]
    assert load.prompt_tokens == [target + specials] * 12
    sent = load.prompts_sent
    assert sent["cut_by"] == "the model's tokenizer" and sent["target_tokens"] == target
    assert sent["tokens_min"] == sent["tokens_max"] == target + specials
