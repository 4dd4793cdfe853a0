"""FLOPs / VRAM / wall-time estimates against values computed by hand for two architectures."""
from __future__ import annotations

import json

import pytest

from llenergymeasure.domain import ExperimentConfig
from llenergymeasure.domain.estimates import (dtype_bytes, estimate_flops, estimate_run_wall_time_s,
                                              estimate_vram_bytes, mlp_kind, read_local_model_config)

# llama-style: gated MLP, grouped-query attention (4 query heads share 2 KV heads), untied head.
LLAMA_GQA = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 64,
             "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
             "intermediate_size": 128, "vocab_size": 100, "hidden_act": "silu", "tie_word_embeddings": False}
# GPT-2 style: fc/proj MLP with n_inner unset (= 4 * n_embd), tied head, learned positions.
GPT2 = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_embd": 32, "n_layer": 2, "n_head": 2,
        "n_inner": None, "vocab_size": 50, "n_positions": 64, "activation_function": "gelu_new",
        "bos_token_id": 0, "eos_token_id": 0}


def test_llama_gqa_flops_by_hand():
    # head_dim = 64/4 = 16.  Attention projections per token per layer (MACs):
    #   Q 64*4*16=4096, K+V 2*64*2*16=4096 (GQA halves these), O 4*16*64=4096  -> 12288
    # gated MLP 3*64*128 = 24576 -> dense per token per layer 36864
    # scores+values per attended key: 2*4*16 = 128 ; LM head 64*100 = 6400
    # request A: 3 prompt tokens, 2 generated; request B: 2 prompt tokens, 1 generated.
    prefill_a = 3 * 2 * 36864 + 2 * 128 * (1 + 2 + 3) + 6400      # 229120
    decode_a = 1 * (2 * 36864 + 6400) + 2 * 128 * 4              # one step at context 4: 81152
    prefill_b = 2 * 2 * 36864 + 2 * 128 * (1 + 2) + 6400          # 154624
    decode_b = 0                                                 # 1 token comes from prefill
    est = estimate_flops(LLAMA_GQA, [3, 2], [2, 1])
    assert est.method == "estimate_from_config"
    assert est.mlp_kind == "gated"
    assert est.prefill_flops == 2 * (prefill_a + prefill_b) == 767488
    assert est.decode_flops == 2 * (decode_a + decode_b) == 162304
    assert est.total_flops == 767488 + 162304
    assert est.flops_per_output_token == pytest.approx((767488 + 162304) / 3)


def test_gpt2_flops_by_hand():
    # head_dim 16, n_kv = n_q = 2, inner = 4*32 = 128.
    # projections: 32*2*16 + 2*32*2*16 + 2*16*32 = 1024 + 2048 + 1024 = 4096
    # standard MLP 2*32*128 = 8192 -> dense 12288 ; per key 2*2*16 = 64 ; head 32*50 = 1600
    # one request: 4 prompt tokens, 3 generated -> 2 decode steps at contexts 5 and 6
    prefill = 4 * 2 * 12288 + 2 * 64 * (1 + 2 + 3 + 4) + 1600     # 101184
    decode = 2 * (2 * 12288 + 1600) + 2 * 64 * (5 + 6)           # 53760
    est = estimate_flops(GPT2, [4], [3])
    assert est.mlp_kind == "standard"
    assert (est.prefill_flops, est.decode_flops) == (2 * prefill, 2 * decode) == (202368, 107520)


def test_gqa_only_changes_kv_projections():
    mha = dict(LLAMA_GQA, num_key_value_heads=4)
    diff = estimate_flops(mha, [5], [1]).prefill_flops - estimate_flops(LLAMA_GQA, [5], [1]).prefill_flops
    # 2 extra KV heads * (K and V) * 64 * 16 MACs per token per layer, 5 tokens, 2 layers, 2 FLOPs/MAC
    assert diff == 2 * 5 * 2 * (2 * 64 * 2 * 16)


def test_mlp_detection_and_missing_keys():
    assert mlp_kind({"model_type": "qwen2"}) == "gated"
    assert mlp_kind({"model_type": "gemma", "hidden_act": "gelu_pytorch_tanh"}) == "gated"
    assert mlp_kind({"architectures": ["MistralForCausalLM"]}) == "gated"
    assert mlp_kind({"model_type": "opt", "activation_function": "relu"}) == "standard"
    assert mlp_kind({"model_type": "unknown", "hidden_act": "silu"}) == "gated"
    est = estimate_flops({"model_type": "llama"}, [1], [1])
    assert est.method == "unavailable" and "hidden_size" in est.unavailable_reason
    with pytest.raises(ValueError):
        estimate_flops(LLAMA_GQA, [1, 2], [1])


def test_vram_by_hand():
    # params: per layer 12288 (attn) + 24576 (MLP) + 2*64 (norms) = 36992; 2 layers = 73984
    # embeddings 100*64 = 6400, untied head 6400, final norm 64 -> 86848
    # KV: 2 * 2 layers * 2 kv heads * 16 * batch 3 * seq 10 * 2 bytes = 7680
    est = estimate_vram_bytes(LLAMA_GQA, batch_size=3, seq_len=10, dtype_bytes=2)
    assert est["parameters_estimate"] == 86848
    assert est["weights_bytes"] == 86848 * 2
    assert est["kv_cache_bytes"] == 7680
    assert est["overhead_bytes"] == int(0.1 * (86848 * 2 + 7680)) + 512 * 1024 * 1024
    assert est["total_bytes"] == est["weights_bytes"] + est["kv_cache_bytes"] + est["overhead_bytes"]
    assert estimate_vram_bytes({}, 1, 1, 2)["method"] == "unavailable"


def test_parameter_count_matches_transformers():
    """The weight count the VRAM estimate uses agrees with real randomly initialised models."""
    transformers = pytest.importorskip("transformers")
    for cfg, cls_name in ((LLAMA_GQA, "LlamaForCausalLM"), (GPT2, "GPT2LMHeadModel")):
        config_cls = transformers.AutoConfig.for_model(cfg["model_type"], **{k: v for k, v in cfg.items()
                                                                             if k not in ("model_type",)})
        model = getattr(transformers, cls_name)(config_cls)
        real = sum(p.numel() for p in model.parameters())
        est = estimate_vram_bytes(config_cls.to_dict(), 1, 1, 4)["parameters_estimate"]
        assert est == real, (cls_name, est, real)


def test_wall_time_and_helpers(tmp_path):
    exp = ExperimentConfig(model=str(tmp_path), n_prompts=8, batch_size=4, max_output_tokens=9)
    unknown = estimate_run_wall_time_s(exp)
    assert unknown["method"] == "crude_estimate"
    assert unknown["measured_batches"] == 2
    # 5 s start + 10 s baseline + 10 s load + (5 warm-up + 2) batches * 10 steps * 25 ms
    assert unknown["estimated_wall_time_s"] == pytest.approx(5 + 10 + 10 + 7 * 10 * 0.025)
    assert read_local_model_config(str(tmp_path)) is None
    (tmp_path / "config.json").write_text(json.dumps(LLAMA_GQA))
    assert read_local_model_config(str(tmp_path)) == LLAMA_GQA
    known = estimate_run_wall_time_s(exp, LLAMA_GQA)
    assert known["batch_s"] == pytest.approx(10 * 0.005)  # tiny weights -> 5 ms floor
    assert dtype_bytes("bf16") == 2 and dtype_bytes("auto", {"torch_dtype": "float32"}) == 4
    assert dtype_bytes("auto") is None
