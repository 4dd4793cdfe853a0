"""A tiny random-weight Llama model + locally trained tokenizer, so `llem` runs with no model hub.

Why: tests, CI and the quickstart need a real `from_pretrained`-loadable causal LM that exists
offline and generates in milliseconds on CPU. Its weights are random (it was never trained), so
its text is noise; it exercises the measuring machinery only. torch/transformers/tokenizers are
imported inside the functions so the host CLI stays fast.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

from ..errors import ConfigError, PreFlightError

PROVENANCE_FILE = "llem-tiny.json"
HF_FILES = (PROVENANCE_FILE, "config.json", "model.safetensors", "tokenizer.json")
GGUF_FILE = "model.gguf"  # the same weights and tokenizer for llama.cpp (see gguf_export.py)
REQUIRED_FILES = HF_FILES + (GGUF_FILE,)
SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>")  # ids 0..3, in this order
VOCAB_SIZE = 1000
# head_dim = hidden_size / num_attention_heads = 64: the smallest head size every engine's kernels
# accept (vLLM's CPU attention refuses 16); one KV head keeps grouped-query attention in the shape.
ARCHITECTURE = dict(
    hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2,
    num_key_value_heads=1, max_position_embeddings=512, tie_word_embeddings=False,
)


def is_tiny_model(directory: str | Path) -> bool:
    """True when `directory` holds a complete model written by `make_tiny_model`."""
    path = Path(directory)
    return all((path / name).is_file() for name in REQUIRED_FILES)


def read_provenance(directory: str | Path) -> dict:
    return json.loads((Path(directory) / PROVENANCE_FILE).read_text(encoding="utf-8"))


def corpus_lines() -> list[str]:
    text = resources.files("llenergymeasure").joinpath("data/corpus.txt").read_text("utf-8")
    return [line for line in text.splitlines() if line.strip()]


def make_tiny_model(directory: str | Path, seed: int = 0, force: bool = False) -> Path:
    """Write the tiny model to `directory` (idempotent unless `force`) and return its path.

    Built in a temporary sibling directory and renamed into place, so a concurrent or
    interrupted call never leaves a half-written model that `is_tiny_model` would accept.
    """
    target = Path(directory).expanduser().resolve()
    if target.exists() and not target.is_dir():
        raise ConfigError(f"{target} exists and is not a directory; choose a directory path for the tiny model")
    if is_tiny_model(target) and not force:
        return target
    if not force and all((target / name).is_file() for name in HF_FILES):  # made before GGUF output existed
        from .gguf_export import export_gguf

        export_gguf(target)
        return target
    if target.is_dir() and any(target.iterdir()) and not is_tiny_model(target):
        raise ConfigError(
            f"{target} is not empty and does not hold a llem tiny model; refusing to write into it "
            "(choose a new or empty directory)"
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    except OSError as exc:
        raise ConfigError(f"cannot create the tiny model directory {target}: {exc}") from exc
    try:
        _build(staging, seed)
        _make_world_readable(staging)
        if force and is_tiny_model(target):
            shutil.rmtree(target)
        try:
            os.rename(staging, target)  # replaces a missing or empty directory atomically
        except OSError:
            if not is_tiny_model(target):  # not a concurrent maker finishing first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _build(out: Path, seed: int) -> None:
    try:
        import tokenizers
        import torch
        import transformers
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
        from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    except ImportError as exc:
        raise PreFlightError(f"the tiny model needs pip install 'llenergymeasure[transformers]' ({exc})") from exc
    from ..version import __version__

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(corpus_lines(), trainer)
    pad_id, bos_id, eos_id, _ = (bpe.token_to_id(t) for t in SPECIAL_TOKENS)
    bpe.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", bos_id)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
        model_max_length=ARCHITECTURE["max_position_embeddings"], padding_side="left",
    )
    config = LlamaConfig(
        vocab_size=bpe.get_vocab_size(), bos_token_id=bos_id, eos_token_id=eos_id,
        pad_token_id=pad_id, **ARCHITECTURE,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    model.generation_config = GenerationConfig(bos_token_id=bos_id, eos_token_id=eos_id, pad_token_id=pad_id)
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()  # keep `llem models make-tiny` output clean
    try:
        model.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
    finally:
        if bars:
            transformers.utils.logging.enable_progress_bar()
    # transformers 5 names its class "TokenizersBackend", unknown to 4.x; this name loads in both.
    tok_config = json.loads((out / "tokenizer_config.json").read_text(encoding="utf-8"))
    tok_config["tokenizer_class"] = "PreTrainedTokenizerFast"
    (out / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2) + "\n", encoding="utf-8")
    provenance = {
        "provenance": "random weights, not a trained model",
        "seed": seed,
        "architecture": "LlamaForCausalLM",
        "config": {**ARCHITECTURE, "vocab_size": config.vocab_size},
        "parameter_count": sum(p.numel() for p in model.parameters()),
        "tokenizer": "byte-level BPE trained on llenergymeasure/data/corpus.txt",
        "gguf_file": GGUF_FILE,
        "created_at": datetime.now(timezone.utc).isoformat(),
        "llenergymeasure_version": __version__,
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "tokenizers_version": tokenizers.__version__,
    }
    (out / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    from .gguf_export import export_gguf

    export_gguf(out, out / GGUF_FILE)


def _make_world_readable(root: Path) -> None:
    """Files 0644, dirs 0755: save_pretrained/mkdtemp may write 0600/0700, unreadable to a
    container (or colleague) running under another uid."""
    root.chmod(0o755)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            Path(dirpath, name).chmod(0o755)
        for name in filenames:
            Path(dirpath, name).chmod(0o644)
