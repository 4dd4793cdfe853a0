"""Real-size random-weight models: the published shape of an architecture, no weights downloaded.

Why: J/token, prefill and decode on a GPU are only meaningful with real matrix sizes, and there
is no model hub here. A named shape (Llama-3.2-1B, Llama-3.1-8B) is written from its public
hyper-parameters alone, with random weights and the project's locally trained tokenizer, and
loads with the ordinary `from_pretrained(DIR)`. The outputs are random text.

How, and why this way: the safetensors files are written directly, tensor by tensor and chunk by
chunk, in the target dtype (see `writer.py`), so an 8B bf16 model never exists in host memory or
in fp32 (peak memory stays near one chunk, whatever the model size). This module holds the shapes
and the layout plan (sizes, shards) and needs neither torch nor transformers.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..domain.config import PRECISION_DTYPES

# dtype option -> (safetensors dtype tag, bytes per element, torch dtype name); the last two from the domain's table
_SAFETENSORS_TAGS = {"bf16": "BF16", "fp16": "F16", "fp32": "F32"}
DTYPES: dict[str, tuple[str, int, str]] = {
    option: (tag, PRECISION_DTYPES[option][1], PRECISION_DTYPES[option][0]) for option, tag in _SAFETENSORS_TAGS.items()}
# save_pretrained's default shard limit (5 GB): Llama-3.1-8B in bf16 becomes 4 files, as published.
DEFAULT_SHARD_BYTES = 5_000_000_000
INIT_STD = 0.02  # initializer_range of the Llama configs: weights ~ N(0, 0.02), norms = 1


@dataclass(frozen=True)
class Shape:
    """A decoder-only Llama layout. Field names are those of a Hugging Face LlamaConfig."""

    name: str
    description: str
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    vocab_size: int
    max_position_embeddings: int
    tie_word_embeddings: bool
    rope_theta: float = 500000.0
    rope_scaling: dict | None = None
    rms_norm_eps: float = 1e-5
    published_parameter_count: int | None = None  # the figure the shape must reproduce

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def tensors(self) -> list[tuple[str, tuple[int, ...], str]]:
        """(name, shape, init) in Hugging Face Llama naming; init is "normal" or "ones"."""
        h, kv = self.hidden_size, self.num_key_value_heads * self.head_dim
        out = [("model.embed_tokens.weight", (self.vocab_size, h), "normal")]
        for i in range(self.num_hidden_layers):
            p = f"model.layers.{i}."
            out += [(p + "input_layernorm.weight", (h,), "ones"),
                    (p + "self_attn.q_proj.weight", (self.num_attention_heads * self.head_dim, h), "normal"),
                    (p + "self_attn.k_proj.weight", (kv, h), "normal"),
                    (p + "self_attn.v_proj.weight", (kv, h), "normal"),
                    (p + "self_attn.o_proj.weight", (h, self.num_attention_heads * self.head_dim), "normal"),
                    (p + "post_attention_layernorm.weight", (h,), "ones"),
                    (p + "mlp.gate_proj.weight", (self.intermediate_size, h), "normal"),
                    (p + "mlp.up_proj.weight", (self.intermediate_size, h), "normal"),
                    (p + "mlp.down_proj.weight", (h, self.intermediate_size), "normal")]
        out.append(("model.norm.weight", (h,), "ones"))
        if not self.tie_word_embeddings:
            out.append(("lm_head.weight", (self.vocab_size, h), "normal"))
        return out

    def hf_config(self, dtype: str, bos_id: int, eos_id: int, pad_id: int) -> dict:
        """config.json content (transformers 4.x and 5.x both read `rope_scaling`/`rope_theta`)."""
        return {
            "architectures": ["LlamaForCausalLM"], "model_type": "llama",
            "hidden_size": self.hidden_size, "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers, "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads, "head_dim": self.head_dim,
            "vocab_size": self.vocab_size, "max_position_embeddings": self.max_position_embeddings,
            "tie_word_embeddings": self.tie_word_embeddings, "rope_theta": self.rope_theta,
            "rope_scaling": self.rope_scaling, "rms_norm_eps": self.rms_norm_eps, "hidden_act": "silu",
            "attention_bias": False, "mlp_bias": False, "attention_dropout": 0.0, "initializer_range": INIT_STD,
            "pretraining_tp": 1, "use_cache": True, "torch_dtype": DTYPES[dtype][2],
            "bos_token_id": bos_id, "eos_token_id": eos_id, "pad_token_id": pad_id,
            "llem_note": f"RANDOM WEIGHTS in the shape of {self.description}: outputs are random text.",
        }


_LLAMA3_ROPE = {"rope_type": "llama3", "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192}
SHAPES: dict[str, Shape] = {s.name: s for s in (
    Shape("llama-3.2-1b", "Llama-3.2-1B", hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
          num_attention_heads=32, num_key_value_heads=8, vocab_size=128256, max_position_embeddings=131072,
          tie_word_embeddings=True, rope_scaling={**_LLAMA3_ROPE, "factor": 32.0},
          published_parameter_count=1_235_814_400),
    Shape("llama-3.1-8b", "Llama-3.1-8B", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
          num_attention_heads=32, num_key_value_heads=8, vocab_size=128256, max_position_embeddings=131072,
          tie_word_embeddings=False, rope_scaling={**_LLAMA3_ROPE, "factor": 8.0},
          published_parameter_count=8_030_261_248),
    # Not a published architecture: the Llama-3 layout at toy size, for tests and CPU rehearsals.
    Shape("llama-test", "a miniature Llama-3 layout (not a published model)", hidden_size=128,
          intermediate_size=256, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
          vocab_size=1024, max_position_embeddings=4096, tie_word_embeddings=False,
          rope_scaling={**_LLAMA3_ROPE, "factor": 4.0, "original_max_position_embeddings": 1024}),
)}


@dataclass
class TensorPlan:
    name: str
    shape: tuple[int, ...]
    init: str
    nbytes: int
    begin: int = 0  # byte offset inside its file's data section
    end: int = 0


@dataclass
class ShardPlan:
    file: str
    tensors: list[TensorPlan] = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)


@dataclass
class ModelPlan:
    shape: Shape
    dtype: str
    shards: list[ShardPlan]
    parameter_count: int

    @property
    def total_bytes(self) -> int:
        return sum(s.nbytes for s in self.shards)

    def weight_map(self) -> dict[str, str]:
        return {t.name: s.file for s in self.shards for t in s.tensors}


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def plan_model(shape: Shape | str, dtype: str = "bf16", max_shard_bytes: int = DEFAULT_SHARD_BYTES) -> ModelPlan:
    """Lay the tensors out in files of at most `max_shard_bytes` (a larger tensor gets its own file).

    One file is called model.safetensors; several are model-0000i-of-0000n.safetensors with an
    index, the names save_pretrained uses, so from_pretrained finds them.
    """
    if isinstance(shape, str):
        shape = SHAPES[shape]
    width = DTYPES[dtype][1]
    groups: list[list[TensorPlan]] = [[]]
    size = 0
    count = 0
    for name, dims, init in shape.tensors():
        t = TensorPlan(name, dims, init, _numel(dims) * width)
        count += _numel(dims)
        if groups[-1] and size + t.nbytes > max_shard_bytes:
            groups.append([])
            size = 0
        t.begin, t.end = size, size + t.nbytes
        groups[-1].append(t)
        size += t.nbytes
    n = len(groups)
    names = ["model.safetensors"] if n == 1 else [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
    return ModelPlan(shape, dtype, [ShardPlan(f, g) for f, g in zip(names, groups)], count)
