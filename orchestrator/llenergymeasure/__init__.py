"""llenergymeasure: measure what LLM inference costs.

The public API is imported lazily so `import llenergymeasure` (and `llem --help`) stays fast.
"""
from __future__ import annotations

from typing import Any

from .version import __version__

__all__ = ["run_study", "run_experiment", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("run_study", "run_experiment"):
        from . import api

        return getattr(api, name)
    raise AttributeError(name)
