"""The project's layering rules, enforced.

- host code (orchestrator/) never imports torch, engines or NVML at import time;
- the contract (domain/) imports only pydantic and the standard library;
- the harness imports nothing from the host package but `llenergymeasure.domain`;
- the host packages form layers (HOST_LAYERS): nothing imports a layer above its own, and no
  host module reaches itself again through its imports (no circle), counting the imports made
  inside functions too, since they tie the code together just the same.

The path of a study runs domain (contract) -> study (plan) -> executors -> runners -> harness
(in its own process); imports point the other way, down towards the contract. See
docs/architecture.md.
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


# Host layers, top to bottom: each may import its own layer and the layers it names, never one above.
HOST_LAYERS: dict[str, set[str]] = {
    "__init__": {"api"},                    # the package face: hands run_study/run_experiment on lazily
    "__main__": {"cli"},                                                   # python -m llenergymeasure
    "cli": {"api", "executors", "study", "results", "runners", "models", "errors", "domain"},  # the commands
    "api": {"executors", "study", "runners", "errors", "domain"},          # run_study / run_experiment
    "executors": {"study", "results", "runners", "errors", "domain"},      # how planned runs execute
    "study": {"results", "runners", "errors", "domain"},                   # the plan of a study
    "runners": {"results", "errors", "domain"},                            # one run's process or container
    # Beside the layers above: reads and writes a study directory's files (manifest, results,
    # study.json, tables, report); the plan writes its outputs through it, `llem results` reads.
    "results": {"errors", "domain"},
    "models": {"errors", "domain"},                                        # tiny models for tests and examples
    "errors": {"domain"},
    "domain": set(),                                                       # the contract
    "version": set(),                                                      # __version__: any layer reads it
}


def _module_name(path: Path, root: Path = HOST) -> str:
    parts = ("llenergymeasure",) + path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _targets(path: Path, modules: set[str], root: Path) -> list[str]:
    """The host modules `path` imports (anywhere in it); `from pkg import mod` names the submodule."""
    tree = ast.parse(path.read_text())
    own = _module_name(path, root).split(".")
    if path.name != "__init__.py":
        own = own[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(own[: len(own) - node.level + 1] + ([node.module] if node.module else [])) \
                if node.level else node.module or ""
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name.startswith("llenergymeasure"):
                found.append(name)
    return found


def host_graph(root: Path = HOST) -> dict[str, set[str]]:
    """Module -> the host modules it imports, read with ast from the files under `root`."""
    paths = {_module_name(p, root): p for p in root.rglob("*.py")}
    return {name: {t for t in _targets(p, set(paths), root) if t != name} for name, p in paths.items()}


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every import of a layer its importer may not use (a layer not in HOST_LAYERS is one too)."""
    bad = []
    for module, targets in sorted(graph.items()):
        mine = layer_of(module)
        for target in sorted(targets):
            theirs = layer_of(target)
            if theirs in (mine, "version"):
                continue
            if mine not in HOST_LAYERS or theirs not in HOST_LAYERS[mine]:
                bad.append(f"{module} -> {target}")
    return bad


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                circles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return circles


def test_host_layers_cover_every_host_package():
    """A new host package must be given its place in HOST_LAYERS (and a stale entry is removed)."""
    assert {layer_of(m) for m in host_graph()} == set(HOST_LAYERS)


def test_no_host_module_imports_upward():
    assert upward_imports(host_graph()) == []


def test_no_import_circle_on_the_host_side():
    assert import_circles(host_graph()) == []


def test_the_layer_checks_catch_a_planted_violation(tmp_path):
    """A check that cannot fail is no check: plant an upward import and a circle in a copy of the host."""
    import shutil

    copy = tmp_path / "llenergymeasure"
    shutil.copytree(HOST, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "study" / "_probe_up.py").write_text("from ..executors import sequential\n")
    (copy / "domain" / "_probe_a.py").write_text("from . import _probe_b\n")
    (copy / "domain" / "_probe_b.py").write_text("def f():\n    from ._probe_a import x\n")
    graph = host_graph(copy)
    assert upward_imports(graph) == ["llenergymeasure.study._probe_up -> llenergymeasure.executors.sequential"]
    assert import_circles(graph) == [["llenergymeasure.domain._probe_a", "llenergymeasure.domain._probe_b"]]


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
    code = ("import sys, llenergymeasure.cli.main, llenergymeasure.study.study_run, llenergymeasure.executors.sequential, llenergymeasure.executors.parallel, llenergymeasure.executors.slurm_submit, llenergymeasure.runners.local;"
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
