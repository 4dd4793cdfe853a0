"""Real-shape random-weight models (`llem models make`): the plan of the published shapes, and a
real write + from_pretrained + generate of the toy layout through the same streaming writer."""
from __future__ import annotations

import json
import struct

import pytest

from llenergymeasure.errors import ConfigError
from llenergymeasure.models.shapes import DTYPES, SHAPES, plan_model


@pytest.mark.parametrize("name", ["llama-3.2-1b", "llama-3.1-8b"])
def test_published_shapes_reproduce_the_published_parameter_counts(name):
    plan = plan_model(name, "bf16")
    assert plan.parameter_count == SHAPES[name].published_parameter_count


def test_8b_plan_is_four_bf16_files_under_5_gb_like_the_published_checkpoint():
    plan = plan_model("llama-3.1-8b", "bf16")
    assert plan.total_bytes == 8_030_261_248 * 2
    assert [s.file for s in plan.shards] == [f"model-0000{i}-of-00004.safetensors" for i in range(1, 5)]
    assert all(s.nbytes <= 5_000_000_000 for s in plan.shards)
    names = [t.name for s in plan.shards for t in s.tensors]
    assert len(names) == len(set(names)) == 2 + 32 * 9 + 1   # embed + lm_head + 9 per layer + final norm
    assert "lm_head.weight" in names                          # untied in 8B
    for shard in plan.shards:                                 # contiguous byte ranges, as safetensors requires
        ends = [0] + [t.end for t in shard.tensors]
        assert [t.begin for t in shard.tensors] == ends[:-1]
    assert plan_model("llama-3.1-8b", "fp32").total_bytes == 2 * plan.total_bytes


def test_1b_is_one_file_with_tied_embeddings_and_the_real_attention_layout():
    plan = plan_model("llama-3.2-1b", "bf16")
    assert [s.file for s in plan.shards] == ["model.safetensors"]
    shapes = {t.name: t.shape for t in plan.shards[0].tensors}
    assert "lm_head.weight" not in shapes
    assert shapes["model.embed_tokens.weight"] == (128256, 2048)
    assert shapes["model.layers.0.self_attn.k_proj.weight"] == (512, 2048)  # 8 KV heads x head_dim 64
    assert shapes["model.layers.15.mlp.down_proj.weight"] == (2048, 8192)
    cfg = SHAPES["llama-3.2-1b"].hf_config("bf16", 1, 2, 0)
    assert cfg["head_dim"] == 64 and cfg["rope_scaling"]["factor"] == 32.0 and "RANDOM WEIGHTS" in cfg["llem_note"]


def test_shard_limit_splits_files_and_the_header_is_valid_safetensors():
    from llenergymeasure.models.writer import safetensors_header

    plan = plan_model("llama-test", "fp16", max_shard_bytes=200_000)
    assert len(plan.shards) > 1
    raw = safetensors_header(plan.shards[1], "fp16")
    (length,) = struct.unpack("<Q", raw[:8])
    assert length == len(raw) - 8 and length % 8 == 0
    header = json.loads(raw[8:])
    assert {v["dtype"] for k, v in header.items() if k != "__metadata__"} == {DTYPES["fp16"][0]}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    pytest.importorskip("transformers")
    from llenergymeasure.models.writer import make_shaped_model

    # A small shard limit so the multi-file layout (index + several files) is what loads.
    return make_shaped_model(tmp_path_factory.mktemp("m") / "test-shape", "llama-test", dtype="bf16",
                             max_shard_bytes=300_000)


def test_made_model_loads_with_from_pretrained_and_generates(made):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    files = sorted(p.name for p in made.glob("*.safetensors"))
    assert len(files) > 1 and (made / "model.safetensors.index.json").is_file()
    model = AutoModelForCausalLM.from_pretrained(made, dtype=torch.bfloat16)
    tok = AutoTokenizer.from_pretrained(made)
    on_disk = {}
    for f in files:
        on_disk.update(load_file(str(made / f)))
    state = model.state_dict()
    assert set(on_disk) == set(state)
    assert all(torch.equal(state[k], v) for k, v in on_disk.items())   # nothing re-initialised by the loader
    weight = on_disk["model.layers.1.mlp.up_proj.weight"].float()
    assert abs(weight.std().item() - 0.02) < 0.002 and on_disk["model.norm.weight"].float().eq(1).all()
    out = model.generate(**tok(["energy per token"], return_tensors="pt"), max_new_tokens=4, min_new_tokens=4,
                         do_sample=False, pad_token_id=tok.pad_token_id)
    assert out.shape[1] == len(tok("energy per token")["input_ids"]) + 4


def test_made_model_says_it_is_random_and_is_kept_or_refused(made, tmp_path):
    from llenergymeasure.models.writer import make_shaped_model, read_model_provenance

    info = read_model_provenance(made)
    assert info["shape"] == "llama-test" and "random" in info["provenance"]
    assert "random text" in (made / "README.md").read_text()
    assert make_shaped_model(made, "llama-test", dtype="bf16") == made       # same shape+dtype: kept
    with pytest.raises(ConfigError, match="--force"):
        make_shaped_model(made, "llama-test", dtype="fp32")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("x")
    with pytest.raises(ConfigError, match="not empty"):
        make_shaped_model(tmp_path / "other", "llama-test")
    with pytest.raises(ConfigError, match="unknown shape"):
        make_shaped_model(tmp_path / "new", "gpt-5")


def test_cli_dry_run_plans_the_8b_shape_without_writing(tmp_path):
    from click.testing import CliRunner

    from llenergymeasure.cli.models import models_group

    res = CliRunner().invoke(models_group, ["make", "--shape", "llama-3.1-8b", "--dry-run", str(tmp_path / "m8")])
    assert res.exit_code == 0, res.output
    assert "8,030,261,248 parameters, 16.06 GB in 4 file(s)" in res.output
    assert not (tmp_path / "m8").exists()
