"""Write a real-shape random-weight model (`llem models make`): safetensors streamed chunk by chunk.

Why direct writing: a safetensors file is an 8-byte header length, a JSON header naming every
tensor's dtype, shape and byte range, then the raw bytes. All of that is known from the shape
plan (`shapes.py`), so the header is written first and each tensor's bytes are generated in
chunks of at most CHUNK_ELEMENTS values, directly in the target dtype, on the chosen device
(`cuda` generates far faster; the bytes are copied to the host chunk by chunk). Peak host memory
is one chunk plus torch itself, whatever the model size; no fp32 copy of the model ever exists.

The tokenizer is the locally trained one of the tiny model (`tiny.py`), copied from a tiny model
built alongside: these models carry the real vocabulary *size* in their embeddings, but the
tokenizer knows 1000 tokens, so generated ids above that decode to nothing. That is fine: the
outputs are random text anyway, and the engines count tokens by id.
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from ..errors import ConfigError, PreFlightError
from .shapes import DEFAULT_SHARD_BYTES, DTYPES, INIT_STD, SHAPES, ModelPlan, ShardPlan, plan_model

PROVENANCE_FILE = "llem-model.json"
CHUNK_ELEMENTS = 1 << 25  # 32 Mi values: 64 MiB per chunk in bf16
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def is_shaped_model(directory: str | Path) -> bool:
    path = Path(directory)
    return (path / PROVENANCE_FILE).is_file() and (path / "config.json").is_file()


def read_model_provenance(directory: str | Path) -> dict:
    return json.loads((Path(directory) / PROVENANCE_FILE).read_text(encoding="utf-8"))


def safetensors_header(shard: ShardPlan, dtype: str) -> bytes:
    """The length-prefixed JSON header, padded with spaces to 8 bytes as the format recommends."""
    tag = DTYPES[dtype][0]
    header = {t.name: {"dtype": tag, "shape": list(t.shape), "data_offsets": [t.begin, t.end]}
              for t in shard.tensors}
    header["__metadata__"] = {"format": "pt", "llem": "random weights"}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw


def _write_shard(path: Path, shard: ShardPlan, dtype: str, device: str, generator) -> None:
    import torch

    torch_dtype = getattr(torch, DTYPES[dtype][2])
    with open(path, "wb") as fh:
        fh.write(safetensors_header(shard, dtype))
        for t in shard.tensors:
            remaining = t.nbytes // DTYPES[dtype][1]
            while remaining:
                n = min(remaining, CHUNK_ELEMENTS)
                if t.init == "ones":
                    chunk = torch.ones(n, dtype=torch_dtype, device=device)
                else:
                    chunk = torch.empty(n, dtype=torch_dtype, device=device).normal_(0.0, INIT_STD, generator=generator)
                fh.write(chunk.cpu().view(torch.uint8).numpy().data)
                remaining -= n


def _copy_tokenizer(out: Path) -> dict:
    """Tokenizer files of the tiny model (built in a scratch folder); returns its special ids."""
    from .tiny import make_tiny_model

    tiny = make_tiny_model(out / ".tiny-tokenizer-source")
    for name in TOKENIZER_FILES:
        if (tiny / name).is_file():
            shutil.copy2(tiny / name, out / name)
    cfg = json.loads((tiny / "config.json").read_text(encoding="utf-8"))
    shutil.rmtree(tiny)
    return {"bos_id": cfg["bos_token_id"], "eos_id": cfg["eos_token_id"], "pad_id": cfg["pad_token_id"]}


def _model_card(plan: ModelPlan) -> str:
    s = plan.shape
    return f"""# Random-weight model in the shape of {s.description}

**The weights are random: this model was never trained and its outputs are random text.**
It exists to measure inference cost (energy per token, throughput, latency) with real matrix
sizes, without downloading weights. Do not use it for anything that reads its output.

- shape: `{s.name}` ({s.num_hidden_layers} layers, hidden {s.hidden_size}, intermediate
  {s.intermediate_size}, {s.num_attention_heads} attention heads / {s.num_key_value_heads} KV heads,
  vocabulary size {s.vocab_size})
- dtype: {plan.dtype}; parameters: {plan.parameter_count:,}; {len(plan.shards)} safetensors file(s),
  {plan.total_bytes / 1e9:.2f} GB
- tokenizer: byte-level BPE of 1000 tokens trained on the project's own corpus (not the original
  tokenizer): ids beyond it decode to nothing
- written by `llem models make --shape {s.name} --dtype {plan.dtype}`; details in `{PROVENANCE_FILE}`
"""


def make_shaped_model(directory: str | Path, shape: str, dtype: str = "bf16", device: str = "cpu",
                      seed: int = 0, force: bool = False, max_shard_bytes: int = DEFAULT_SHARD_BYTES) -> Path:
    """Write the model to `directory` (kept if it already holds this shape and dtype, unless `force`).

    Built in a temporary sibling directory and renamed into place, so an interrupted call never
    leaves a directory that looks complete.
    """
    if shape not in SHAPES:
        raise ConfigError(f"unknown shape {shape!r}; choose one of {', '.join(SHAPES)}")
    if dtype not in DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    target = Path(directory).expanduser().resolve()
    if target.exists() and not target.is_dir():
        raise ConfigError(f"{target} exists and is not a directory; choose a directory path for the model")
    if is_shaped_model(target) and not force:
        info = read_model_provenance(target)
        if info.get("shape") == shape and info.get("dtype") == dtype:
            return target
        raise ConfigError(f"{target} holds a {info.get('shape')} {info.get('dtype')} model; "
                          "use --force to replace it or choose another directory")
    if target.is_dir() and any(target.iterdir()) and not is_shaped_model(target):
        raise ConfigError(f"{target} is not empty and holds no llem model; choose a new or empty directory")
    plan = plan_model(shape, dtype, max_shard_bytes)
    target.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(target.parent).free
    if free < plan.total_bytes * 1.02:
        raise ConfigError(f"{target.parent}: {free / 1e9:.1f} GB free, the {shape} {dtype} model needs "
                          f"{plan.total_bytes / 1e9:.1f} GB; choose a directory on a larger disk")
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        _build(staging, plan, device, seed)
        os.chmod(staging, 0o755)
        if target.exists():
            shutil.rmtree(target)
        os.rename(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _build(out: Path, plan: ModelPlan, device: str, seed: int) -> None:
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise PreFlightError(f"`llem models make` needs pip install 'llenergymeasure[transformers]' ({exc})") from exc
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is visible to torch; use --device cpu")
    from ..version import __version__

    ids = _copy_tokenizer(out)
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    for shard in plan.shards:
        _write_shard(out / shard.file, shard, plan.dtype, device, generator)
    if len(plan.shards) > 1:
        index = {"metadata": {"total_size": plan.total_bytes}, "weight_map": plan.weight_map()}
        (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    config = plan.shape.hf_config(plan.dtype, ids["bos_id"], ids["eos_id"], ids["pad_id"])
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    generation = {"bos_token_id": ids["bos_id"], "eos_token_id": ids["eos_id"], "pad_token_id": ids["pad_id"]}
    (out / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n", encoding="utf-8")
    (out / "README.md").write_text(_model_card(plan), encoding="utf-8")
    provenance = {
        "provenance": "random weights, not a trained model: outputs are random text",
        "shape": plan.shape.name, "shape_of": plan.shape.description, "dtype": plan.dtype, "seed": seed,
        "device": device, "parameter_count": plan.parameter_count, "bytes": plan.total_bytes,
        "files": [s.file for s in plan.shards],
        "tokenizer": "byte-level BPE (1000 tokens) trained on llenergymeasure/data/corpus.txt",
        "created_at": datetime.now(timezone.utc).isoformat(), "llenergymeasure_version": __version__,
        "torch_version": torch.__version__, "transformers_version": transformers.__version__,
    }
    (out / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    for path in out.iterdir():
        path.chmod(0o644)
