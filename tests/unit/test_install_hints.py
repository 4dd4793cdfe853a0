"""The install hint of an engine that is not installed says what the docs say (docs/engines.md)."""
from __future__ import annotations

from tests.helpers import REPO_ROOT


def test_llama_cpp_hint_is_the_setup_script_the_docs_name():
    from llenergymeasure.runners.resolve import install_hint

    assert install_hint("llama_cpp") == "bash scripts/setup.sh --all"
    assert "scripts/setup.sh --all" in (REPO_ROOT / "docs" / "engines.md").read_text()
    assert "scripts/setup-vllm.sh" in install_hint("vllm") and "pip install" not in install_hint("llama_cpp")
    assert install_hint("transformers") == "pip install 'llenergymeasure[transformers]'"
