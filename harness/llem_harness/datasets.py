"""Prompt sources: a deterministic synthetic set (no download), JSONL files, HF datasets."""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Callable

from llenergymeasure.domain import ExperimentConfig

_SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "ta", "shi", "po", "ve", "den", "mar", "sol", "tri", "qua",
              "ber", "lin", "dor", "fe", "gra", "hu", "is", "jo", "ur", "xen", "zo", "pla", "cre", "sto")
_WORDS = ("the", "energy", "of", "a", "model", "is", "measured", "when", "it", "runs", "on", "and",
          "power", "time", "token", "light", "river", "stone", "cloud", "garden", "number", "small")


class DatasetError(ValueError):
    """The configured prompt source cannot provide the prompts asked for."""


def load_prompts(config: ExperimentConfig, fit_to_tokens: Callable[[str, int], str]) -> list[str]:
    ds = config.dataset
    if ds.source == "synthetic":
        target = ds.input_tokens or config.max_input_tokens
        return synthetic_prompts(config.n_prompts, target, config.random_seed, fit_to_tokens)
    if ds.source == "jsonl":
        prompts = _jsonl_prompts(Path(ds.path), ds.column)
    else:
        prompts = _hf_prompts(ds.path, ds.split, ds.column)
    if len(prompts) < config.n_prompts:
        raise DatasetError(f"dataset {ds.path} has {len(prompts)} prompts but n_prompts is {config.n_prompts}; "
                           f"lower n_prompts or add prompts")
    return prompts[:config.n_prompts]


WARMUP_SEED_OFFSET = 7919  # warm-up prompts come from another seeded stream than the measured ones


def warmup_prompts(config: ExperimentConfig, fit_to_tokens: Callable[[str, int], str], n: int,
                   measured: list[str]) -> list[str]:
    """`n` synthetic prompts disjoint from the measured set, at the measured target length.

    Warm-up must not compute any measured prompt: an engine or server with a prefix cache would
    then serve the measured request from it (a shorter prefill, a lower TTFT and less energy).
    """
    target = config.dataset.input_tokens or config.max_input_tokens
    taken = set(measured)
    prompts = [p for p in synthetic_prompts(2 * n + 1, target, config.random_seed + WARMUP_SEED_OFFSET, fit_to_tokens)
               if p not in taken]
    return prompts[:n]


def synthetic_prompts(n: int, target_tokens: int, seed: int, fit_to_tokens: Callable[[str, int], str]) -> list[str]:
    """Deterministic pseudo-text cut to `target_tokens` tokens (controlled input length)."""
    rng = random.Random(seed)
    prompts = []
    for _ in range(n):
        words = []
        for _ in range(target_tokens * 2 + 8):  # more words than tokens, then cut by the tokenizer
            if rng.random() < 0.5:
                words.append(rng.choice(_WORDS))
            else:
                words.append("".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 3))))
        prompts.append(fit_to_tokens(" ".join(words), target_tokens))
    return prompts


def _jsonl_prompts(path: Path, column: str | None) -> list[str]:
    if not path.is_file():
        raise DatasetError(f"dataset file not found: {path}")
    prompts = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise DatasetError(f"{path}:{lineno}: not valid JSON ({exc})") from None
            prompts.append(_pick(row, column, f"{path}:{lineno}"))
    return prompts


def _hf_prompts(name: str, split: str, column: str | None) -> list[str]:
    try:
        import datasets  # optional extra: llenergymeasure[datasets]
    except ImportError:
        raise DatasetError("dataset.source 'hf' needs the 'datasets' package (pip install llenergymeasure[datasets])") from None
    data = datasets.load_dataset(name, split=split)
    return [_pick(row, column, f"{name}[{i}]") for i, row in enumerate(data)]


def _pick(row: object, column: str | None, where: str) -> str:
    if not isinstance(row, dict):
        raise DatasetError(f"{where}: expected an object with a 'prompt' or 'text' field")
    for key in ([column] if column else ["prompt", "text"]):
        if isinstance(row.get(key), str):
            return row[key]
    wanted = column or "'prompt' or 'text'"
    raise DatasetError(f"{where}: no string field {wanted}")
