"""The project's layering rules, enforced.

- host code (orchestrator/) never imports torch, engines or NVML at import time;
- the contract (domain/) imports only pydantic and the standard library;
- the harness imports nothing from the host package but `llenergymeasure.domain`.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HOST = REPO / "orchestrator" / "llenergymeasure"
HARNESS = REPO / "harness" / "llem_harness"
HEAVY = {"torch", "transformers", "vllm", "tensorrt_llm", "pynvml", "llama_cpp", "accelerate", "tokenizers"}
SLOW_FOR_HELP = {"pandas", "matplotlib", "scipy", "pyarrow", "docker", "numpy"}


def _imports(path: Path, module_level_only: bool) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    found = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against the package path
                pkg = path.relative_to(path.parents[len(path.relative_to(REPO).parts) - 2]).parent.parts
                base = ".".join(pkg[: len(pkg) - node.level + 1])
                found.append((f"{base}.{node.module}" if node.module else base, node.lineno))
            else:
                found.append((node.module or "", node.lineno))
    return found


def test_host_modules_do_not_import_heavy_libraries_at_module_level():
    offenders = [f"{p.relative_to(REPO)}:{line} imports {name}"
                 for p in HOST.rglob("*.py") for name, line in _imports(p, module_level_only=True)
                 if name.split(".")[0] in HEAVY | SLOW_FOR_HELP]
    assert offenders == []


def test_domain_imports_only_pydantic_and_stdlib():
    allowed_third_party = {"pydantic", "pydantic_core", "typing_extensions"}
    offenders = []
    for path in (HOST / "domain").rglob("*.py"):
        for name, line in _imports(path, module_level_only=False):
            top = name.split(".")[0]
            if top == "llenergymeasure":
                if not name.startswith("llenergymeasure.domain"):
                    offenders.append(f"{path.name}:{line} {name}")
            elif top not in sys.stdlib_module_names and top not in allowed_third_party:
                offenders.append(f"{path.name}:{line} {name}")
    assert offenders == []


def test_harness_imports_only_the_domain_from_the_host_package():
    offenders = [f"{p.relative_to(REPO)}:{line} imports {name}"
                 for p in HARNESS.rglob("*.py") for name, line in _imports(p, module_level_only=False)
                 if name.startswith("llenergymeasure") and not name.startswith("llenergymeasure.domain")]
    assert offenders == []


def test_importing_the_cli_loads_no_heavy_module():
    """The runtime check behind `llem --help` staying fast: import everything the CLI registers."""
    code = ("import sys, llenergymeasure.cli.main, llenergymeasure.study.loop, llenergymeasure.runners.local;"
            "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in %r)))" % (HEAVY | SLOW_FOR_HELP,))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_the_rules_catch_a_violation(tmp_path):
    """The scanner itself must find a module-level heavy import (a check that cannot fail is no check)."""
    bad = HOST / "_probe_violation.py"
    bad.write_text("import torch\n")
    try:
        assert ("torch", 1) in _imports(bad, module_level_only=True)
    finally:
        bad.unlink()
