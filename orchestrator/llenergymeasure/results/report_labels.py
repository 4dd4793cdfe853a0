"""Short labels of configurations by what was swept (`bs=4`, `llama_cpp`, `bs=4 fp16`): one style everywhere.

Why: `#1`, `#2` in a figure send the reader to a table to learn what was compared; the values
that differ between the study's configurations say it in place. Fields that are the same in every
configuration are left out; the number stays in front where labels would otherwise collide. The
terminal tables, the report's figures, the Pareto front and the least-energy answer all label a
configuration with this one function, so one configuration reads the same in each.
"""
from __future__ import annotations

from typing import Any

from ..domain.base import dotted_fields

# Field -> short name in a label; engine and precision are shown as their bare value.
SHORT = {"batch_size": "bs", "n_prompts": "n", "max_input_tokens": "in", "max_output_tokens": "out",
         "random_seed": "seed", "serving.concurrency": "c", "serving.request_rate": "rate",
         "serving.n_requests": "req", "vllm.tensor_parallel_size": "tp", "vllm.max_num_seqs": "seqs"}
BARE = ("engine", "precision", "mode")
MAX_LABEL = 28


def _part(key: str, value: Any) -> str:
    if key in BARE:
        return str(value)
    if key == "model":
        return str(value).rstrip("/").split("/")[-1]
    name = SHORT.get(key, key.rsplit(".", 1)[-1])
    return f"{name}={value:g}" if isinstance(value, float) else f"{name}={value}"


def swept_labels(configurations: list[dict[str, Any]], max_chars: int | None = MAX_LABEL) -> list[str]:
    """One label per configuration (same order), from the fields whose values differ between them;
    cut at `max_chars` (figures) or whole (None: the answer line, the study result)."""
    flats = [dotted_fields(conf.get("config") or {}) for conf in configurations]
    keys = sorted({k for f in flats for k in f}, key=lambda k: (k not in BARE, k != "model", k))
    differing = [k for k in keys if len({repr(f.get(k)) for f in flats}) > 1]
    labels = []
    for number, (conf, flat) in enumerate(zip(configurations, flats), start=1):
        # Nothing swept (one configuration): its own summary names it.
        text = " ".join(_part(k, flat.get(k)) for k in differing) or conf.get("config_summary") or f"#{number}"
        if max_chars is not None and len(text) > max_chars:
            text = text[:max_chars - 1] + "…"
        labels.append(text)
    if len(set(labels)) < len(labels):  # cut labels that collide: the number tells them apart
        labels = [f"#{n} {text}" for n, text in enumerate(labels, start=1)]
    return labels
