"""Estimates from a Hugging Face `config.json`: FLOPs, VRAM and a crude run wall time.

Why estimates live here: the harness (FLOPs per run) and the host (`--dry-run`: VRAM and wall
time) both need them, and the contract package is the one both may import. Standard library
only. Every value returned is an *estimate from the model config*, labelled as such — never a
measurement.

FLOPs formula (documented again in docs/metrics.md, "FLOPs"). Symbols from the config:
h = hidden_size, L = num_hidden_layers, n_q = num_attention_heads, n_kv = num_key_value_heads
(defaults to n_q; < n_q is grouped-query attention), d = head_dim (default h / n_q),
I = intermediate_size (GPT-2: n_inner, default 4h), V = vocab_size, k = experts per token (MoE, 1).

Per token, per layer, multiply-accumulates (MACs) of the dense projections:
    attention projections   A = h*n_q*d (Q) + 2*h*n_kv*d (K, V) + n_q*d*h (O)
    MLP                     M = 3*h*I (gated: gate, up, down)  or  2*h*I (fc, proj)
                            MoE: k*M + h*E (router over E experts)
Attention scores and values for a token that attends to c positions (itself included):
    S(c) = 2*n_q*d*c        (Q.K^T and softmax(.).V; GQA does not shrink this)
LM head, once per position whose logits are needed:  H = h*V

For a request with p prompt tokens and g generated tokens:
    prefill MACs = p*L*(A+M) + L*sum_{c=1..p} S(c) + H          (causal: position c sees c keys;
                                                                 the logits of the first output token)
    decode MACs  = sum_{j=1..g-1} [ L*(A+M) + L*S(p+j) + H ]     (each later output token needs one
                                                                 forward of the previous token)
FLOPs = 2 * MACs. Ignored (lower order): embeddings lookups, norms, activations, softmax,
rotary embeddings, biases. Padding added by static batching is not counted: the estimate is
the useful work of the real tokens.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .config import PRECISION_DTYPES
from .metrics import FlopsEstimate

# model_type values whose MLP is gated (gate_proj/up_proj/down_proj, SwiGLU/GeGLU).
GATED_MLP_MODEL_TYPES = frozenset({
    "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma", "gemma2", "gemma3",
    "gemma3_text", "phi3", "olmo", "olmo2", "granite", "granitemoe", "cohere", "cohere2", "deepseek_v2",
    "deepseek_v3", "internlm2", "yi", "baichuan", "stablelm", "smollm3", "exaone", "glm", "glm4",
})
# model_type values with a plain two-matrix MLP (fc -> activation -> proj).
STANDARD_MLP_MODEL_TYPES = frozenset({
    "gpt2", "gpt_neox", "gptj", "gpt_neo", "opt", "bloom", "falcon", "phi", "gpt_bigcode", "codegen",
    "bert", "roberta", "mpt", "starcoder2",
})
GATED_ACTIVATIONS = frozenset({"silu", "swiglu", "geglu", "swish"})

_ALIASES = {
    "hidden_size": ("hidden_size", "n_embd", "d_model", "dim"),
    "num_layers": ("num_hidden_layers", "n_layer", "num_layers", "n_layers"),
    "num_heads": ("num_attention_heads", "n_head", "num_heads", "n_heads"),
    "num_kv_heads": ("num_key_value_heads", "num_kv_heads", "n_kv_heads", "multi_query_group_num"),
    "intermediate_size": ("intermediate_size", "n_inner", "ffn_dim", "ffn_hidden_size"),
    "vocab_size": ("vocab_size", "padded_vocab_size"),
}


def _get(cfg: dict, key: str) -> Any:
    for alias in _ALIASES[key]:
        value = cfg.get(alias)
        if value is not None:
            return value
    return None


def text_config(model_config: dict) -> dict:
    """The language-model part of a config (multimodal configs nest it under `text_config`)."""
    nested = model_config.get("text_config")
    if isinstance(nested, dict) and _get(model_config, "hidden_size") is None:
        merged = dict(model_config)
        merged.update(nested)
        return merged
    return model_config


def mlp_kind(model_config: dict) -> str:
    """'gated' (llama-style gate/up/down) or 'standard' (GPT-2-style fc/proj).

    Detection order: model_type, then architecture class names, then the activation name
    (SiLU/SwiGLU imply a gated MLP in every family we know; GELU alone does not, Gemma is
    caught by model_type above).
    """
    cfg = text_config(model_config)
    model_type = str(cfg.get("model_type") or "").lower()
    if model_type in GATED_MLP_MODEL_TYPES:
        return "gated"
    if model_type in STANDARD_MLP_MODEL_TYPES:
        return "standard"
    archs = " ".join(str(a) for a in cfg.get("architectures") or []).lower()
    if any(name in archs for name in ("llama", "mistral", "qwen", "gemma", "phi3")):
        return "gated"
    if any(name in archs for name in ("gpt2", "gptneox", "opt", "bloom", "falcon")):
        return "standard"
    act = str(cfg.get("hidden_act") or cfg.get("activation_function") or "").lower()
    return "gated" if act in GATED_ACTIVATIONS else "standard"


class ModelShape:
    """The handful of numbers the formulas need, read from a config with family aliases."""

    def __init__(self, model_config: dict):
        cfg = text_config(model_config)
        missing = [k for k in ("hidden_size", "num_layers", "num_heads", "vocab_size") if _get(cfg, k) is None]
        if missing:
            raise ValueError(f"config.json lacks {', '.join(missing)}")
        self.hidden_size = int(_get(cfg, "hidden_size"))
        self.num_layers = int(_get(cfg, "num_layers"))
        self.num_heads = int(_get(cfg, "num_heads"))
        kv = _get(cfg, "num_kv_heads")
        if kv is None and cfg.get("multi_query") is True:  # falcon-style MQA flag
            kv = 1
        self.num_kv_heads = int(kv) if kv is not None else self.num_heads
        self.head_dim = int(cfg.get("head_dim") or self.hidden_size // self.num_heads)
        inter = _get(cfg, "intermediate_size")
        self.intermediate_size = int(inter) if inter is not None else 4 * self.hidden_size
        self.vocab_size = int(_get(cfg, "vocab_size"))
        self.mlp = mlp_kind(cfg)
        self.n_experts = int(cfg.get("num_local_experts") or cfg.get("num_experts") or 0)
        self.experts_per_token = int(cfg.get("num_experts_per_tok") or 1) if self.n_experts else 1
        # HF's default is True except in the llama/mistral families (their config classes say False).
        untied_default = str(cfg.get("model_type") or "") in ("llama", "mistral", "mixtral")
        self.tie_word_embeddings = bool(cfg.get("tie_word_embeddings", not untied_default))
        model_type = str(cfg.get("model_type") or "")
        self.biases = bool(cfg.get("attention_bias", model_type in STANDARD_MLP_MODEL_TYPES))
        self.max_positions = cfg.get("n_positions") if cfg.get("model_type") == "gpt2" else None

    def attention_projection_macs(self) -> int:
        h, d = self.hidden_size, self.head_dim
        return h * self.num_heads * d + 2 * h * self.num_kv_heads * d + self.num_heads * d * h

    def mlp_macs(self) -> int:
        one = (3 if self.mlp == "gated" else 2) * self.hidden_size * self.intermediate_size
        if self.n_experts:
            return self.experts_per_token * one + self.hidden_size * self.n_experts
        return one

    def attention_score_macs(self, context: int) -> int:
        return 2 * self.num_heads * self.head_dim * context

    def lm_head_macs(self) -> int:
        return self.hidden_size * self.vocab_size

    def parameter_count(self) -> int:
        """Weights of projections, MLP, norms, embeddings and (untied) LM head.

        Families with biased linears and LayerNorm (GPT-2 style) add their biases; RMSNorm
        families count one weight vector per norm (two per layer plus the final one).
        """
        h, d, inter = self.hidden_size, self.head_dim, self.intermediate_size
        mlp_one = (3 if self.mlp == "gated" else 2) * h * inter
        if self.biases:
            mlp_one += inter + h
        mlp = mlp_one * self.n_experts + h * self.n_experts if self.n_experts else mlp_one
        attention = self.attention_projection_macs()
        if self.biases:
            attention += (self.num_heads + 2 * self.num_kv_heads) * d + h
        norm = 2 * h if self.biases else h
        per_layer = attention + mlp + 2 * norm
        embeddings = self.vocab_size * h + (int(self.max_positions) * h if self.max_positions else 0)
        head = 0 if self.tie_word_embeddings else self.vocab_size * h
        return self.num_layers * per_layer + embeddings + head + norm


def _sum_context(first: int, last: int) -> int:
    """sum_{c=first..last} c (0 when last < first)."""
    if last < first:
        return 0
    return (first + last) * (last - first + 1) // 2


def estimate_flops(model_config: dict, input_tokens: list[int], output_tokens: list[int]) -> FlopsEstimate:
    """Prefill and decode FLOPs of a run, from the config and the real per-request token counts.

    See the module docstring for the formula. `input_tokens[i]` / `output_tokens[i]` are the real
    prompt and generated token counts of request i (EOS stops count).
    """
    if len(input_tokens) != len(output_tokens):
        raise ValueError("input_tokens and output_tokens must have one entry per request")
    try:
        shape = ModelShape(model_config or {})
    except (ValueError, TypeError, ZeroDivisionError) as exc:
        return FlopsEstimate(method="unavailable", unavailable_reason=str(exc))
    L = shape.num_layers
    dense = shape.attention_projection_macs() + shape.mlp_macs()
    per_key = shape.attention_score_macs(1)  # MACs per attended position, per layer
    head = shape.lm_head_macs()
    prefill_macs = decode_macs = 0
    for p, g in zip(input_tokens, output_tokens):
        prefill_macs += p * L * dense + L * per_key * _sum_context(1, p) + head
        steps = max(g - 1, 0)
        decode_macs += steps * (L * dense + head) + L * per_key * _sum_context(p + 1, p + steps)
    prefill, decode = 2.0 * prefill_macs, 2.0 * decode_macs
    total_out = sum(output_tokens)
    return FlopsEstimate(
        method="estimate_from_config", prefill_flops=prefill, decode_flops=decode, total_flops=prefill + decode,
        flops_per_output_token=(prefill + decode) / total_out if total_out else None, mlp_kind=shape.mlp,
        parameters_estimate=shape.parameter_count())


def dtype_bytes(precision: str, model_config: dict | None = None) -> int | None:
    """Bytes per weight for a precision setting; 'auto' follows the config's dtype (None if unknown)."""
    fixed = {key: width for option, (name, width) in PRECISION_DTYPES.items() for key in (option, name)}
    if precision in fixed:
        return fixed[precision]
    if model_config:
        cfg = text_config(model_config)
        declared = str(cfg.get("torch_dtype") or cfg.get("dtype") or "")
        return fixed.get(declared)
    return None


def estimate_vram_bytes(model_config: dict, batch_size: int, seq_len: int, dtype_bytes: int) -> dict:
    """Device memory an inference run needs: weights + KV cache (batch x seq_len) + overhead.

    KV cache = 2 (K and V) * L * n_kv * d * batch_size * seq_len * dtype_bytes.
    Overhead = 10% of (weights + KV) for activations and allocator slack, plus 512 MiB for the
    CUDA context. A labelled estimate for `--dry-run`, not a measurement.
    """
    try:
        shape = ModelShape(model_config or {})
    except (ValueError, TypeError, ZeroDivisionError) as exc:
        return {"method": "unavailable", "unavailable_reason": str(exc)}
    params = shape.parameter_count()
    weights = params * dtype_bytes
    kv = 2 * shape.num_layers * shape.num_kv_heads * shape.head_dim * batch_size * seq_len * dtype_bytes
    overhead = int(0.10 * (weights + kv)) + 512 * 1024 * 1024
    return {
        "method": "estimate_from_config",
        "parameters_estimate": params,
        "weights_bytes": weights,
        "kv_cache_bytes": kv,
        "overhead_bytes": overhead,
        "total_bytes": weights + kv + overhead,
        "assumptions": ["overhead = 10% of weights+KV + 512 MiB CUDA context",
                        f"KV cache for batch_size={batch_size} x seq_len={seq_len} at {dtype_bytes} B/value"],
    }


# Crude dry-run constants, stated in the result so nobody mistakes them for measurements.
ASSUMED_PROCESS_START_S = 5.0
ASSUMED_LOAD_BYTES_PER_S = 1.0e9
ASSUMED_DECODE_STEP_S = 0.025
ASSUMED_MEMORY_BANDWIDTH_BYTES_PER_S = 1.0e12


def estimate_run_wall_time_s(experiment: Any, model_config: dict | None = None) -> dict:
    """Crude wall time of one run: start-up + baseline + load + warm-up + measured batches.

    `experiment` is an ExperimentConfig. A decode step is assumed memory-bound (weights read once
    per step at ~1 TB/s, at least 5 ms) when the config is known, else 25 ms; prefill is folded
    into one extra step per batch; warm-up is assumed to run max(min_batches, window) batches.
    """
    m = experiment.measurement
    batches = -(-experiment.n_prompts // experiment.batch_size)
    step_s = ASSUMED_DECODE_STEP_S
    load_s = 10.0
    assumptions = [f"process start {ASSUMED_PROCESS_START_S:g} s"]
    vram = None
    if model_config:
        nbytes = dtype_bytes(experiment.precision, model_config) or 4
        vram = estimate_vram_bytes(model_config, experiment.batch_size,
                                   experiment.max_input_tokens + experiment.max_output_tokens, nbytes)
    if vram and vram.get("method") == "estimate_from_config":
        step_s = max(0.005, vram["weights_bytes"] / ASSUMED_MEMORY_BANDWIDTH_BYTES_PER_S)
        load_s = 2.0 + vram["weights_bytes"] / ASSUMED_LOAD_BYTES_PER_S
        assumptions.append("decode step = weights / 1 TB/s (min 5 ms); load = 2 s + weights / 1 GB/s")
    else:
        assumptions.append(f"decode step {ASSUMED_DECODE_STEP_S * 1000:g} ms; model load 10 s (config unknown)")
    batch_s = (experiment.max_output_tokens + 1) * step_s
    warmup_batches = max(m.warmup.min_batches, m.warmup.window) if m.warmup.enabled else 0
    warmup_batches = min(warmup_batches, m.warmup.max_batches)
    baseline_s = m.baseline.duration_s if m.baseline.enabled else 0.0
    total = ASSUMED_PROCESS_START_S + baseline_s + load_s + (warmup_batches + batches) * batch_s
    return {"method": "crude_estimate", "estimated_wall_time_s": total, "baseline_s": baseline_s,
            "model_load_s": load_s, "warmup_batches": warmup_batches, "measured_batches": batches,
            "batch_s": batch_s, "assumptions": assumptions}


def read_local_model_config(model: str) -> dict | None:
    """`config.json` of a local model directory, or None (hub ids are not fetched by a dry run)."""
    path = Path(model).expanduser() / "config.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
