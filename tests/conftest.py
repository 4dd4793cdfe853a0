"""Shared fixtures: the real tiny model (built once per session) and CLI helpers."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Device locks (study/locks.py) of test studies live in a private directory, so concurrent test
# sessions on one machine, or a real study running beside them, never block each other.
os.environ.setdefault("LLEM_LOCK_DIR", tempfile.mkdtemp(prefix="llem-test-locks-"))
# Test runs must not feed the user's duration history (what `--dry-run` estimates from).
os.environ.setdefault("LLEM_HISTORY", os.path.join(tempfile.mkdtemp(prefix="llem-test-history-"), "h.jsonl"))

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A real random-weight Llama model + locally trained tokenizer (from_pretrained-loadable)."""
    from llenergymeasure.models import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny-llm", seed=0)
