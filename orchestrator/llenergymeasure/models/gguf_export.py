"""Write a Hugging Face Llama directory (the tiny model) as a GGUF file for llama.cpp.

Why our own converter: llama.cpp's `convert_hf_to_gguf.py` ships with llama.cpp's sources, not
with any PyPI package, and tests/CI have no model hub. The tiny model is a plain LlamaForCausalLM
with a byte-level BPE tokenizer, so the mapping is small and fully known: the tensors are renamed
to llama.cpp's names (Q/K permuted for its rotary layout, exactly as convert_hf_to_gguf does) and
the tokenizer is stored as a "gpt2" (byte-level BPE) vocabulary with its merges. It reads the
saved files (config.json, tokenizer.json, model.safetensors) without torch; weights stay float32.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import PreFlightError

GGUF_FILE = "model.gguf"


def _permute(weights, n_head: int):
    """HF stores rotary Q/K halves split; llama.cpp interleaves them (convert_hf_to_gguf.permute)."""
    rows = weights.shape[0]
    return (weights.reshape(n_head, 2, rows // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def _tensors(hf: dict, cfg: dict) -> dict:
    n_head, n_kv = cfg["num_attention_heads"], cfg.get("num_key_value_heads") or cfg["num_attention_heads"]
    out = {"token_embd.weight": hf["model.embed_tokens.weight"], "output_norm.weight": hf["model.norm.weight"],
           "output.weight": hf.get("lm_head.weight", hf["model.embed_tokens.weight"])}
    names = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
             "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate",
             "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    for i in range(cfg["num_hidden_layers"]):
        prefix = f"model.layers.{i}."
        for hf_name, gguf_name in names.items():
            out[f"blk.{i}.{gguf_name}.weight"] = hf[f"{prefix}{hf_name}.weight"]
        out[f"blk.{i}.attn_q.weight"] = _permute(hf[f"{prefix}self_attn.q_proj.weight"], n_head)
        out[f"blk.{i}.attn_k.weight"] = _permute(hf[f"{prefix}self_attn.k_proj.weight"], n_kv)
    return out


def _vocabulary(tokenizer: dict) -> tuple[list[str], list[int], list[str], set[int]]:
    """Tokens by id, their GGUF types, merges as 'a b' strings, and the special ids."""
    import gguf

    vocab: dict[str, int] = tokenizer["model"]["vocab"]
    special = {t["id"] for t in tokenizer.get("added_tokens", []) if t.get("special")}
    tokens = [""] * len(vocab)
    for text, token_id in vocab.items():
        tokens[token_id] = text
    types = [int(gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL) for i in range(len(tokens))]
    merges = [m if isinstance(m, str) else " ".join(m) for m in tokenizer["model"].get("merges", [])]
    return tokens, types, merges, special


def export_gguf(model_dir: str | Path, out_file: str | Path | None = None) -> Path:
    """Convert `model_dir` (Llama, byte-level BPE) to GGUF float32; returns the file written."""
    try:
        import gguf
        import numpy as np
        from safetensors.numpy import load_file
    except ImportError as exc:
        raise PreFlightError(f"writing a GGUF file needs the gguf package: pip install 'gguf>=0.10' (part of "
                             f"llenergymeasure[transformers]) ({exc})") from exc
    model_dir = Path(model_dir)
    out_file = Path(out_file) if out_file else model_dir / GGUF_FILE
    cfg = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    if cfg.get("model_type") != "llama":
        raise PreFlightError(f"{model_dir}: GGUF export handles Llama models only (model_type={cfg.get('model_type')})")
    tokenizer = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    tokens, types, merges, _ = _vocabulary(tokenizer)
    head_dim = cfg["hidden_size"] // cfg["num_attention_heads"]

    tmp = out_file.with_name(f".{out_file.name}.tmp-{os.getpid()}")
    writer = gguf.GGUFWriter(str(tmp), "llama")
    writer.add_name(model_dir.name)
    writer.add_context_length(cfg["max_position_embeddings"])
    writer.add_embedding_length(cfg["hidden_size"])
    writer.add_block_count(cfg["num_hidden_layers"])
    writer.add_feed_forward_length(cfg["intermediate_size"])
    writer.add_head_count(cfg["num_attention_heads"])
    writer.add_head_count_kv(cfg.get("num_key_value_heads") or cfg["num_attention_heads"])
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(cfg.get("rope_theta") or (cfg.get("rope_parameters") or {}).get("rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(float(cfg.get("rms_norm_eps", 1e-6)))
    writer.add_vocab_size(len(tokens))
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for key, setter in (("bos_token_id", writer.add_bos_token_id), ("eos_token_id", writer.add_eos_token_id),
                        ("pad_token_id", writer.add_pad_token_id)):
        if cfg.get(key) is not None:
            setter(int(cfg[key]))
    writer.add_add_bos_token(True)
    for name, array in _tensors(load_file(str(model_dir / "model.safetensors")), cfg).items():
        writer.add_tensor(name, np.ascontiguousarray(array, dtype=np.float32))
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    tmp.chmod(0o644)
    os.replace(tmp, out_file)
    return out_file
