"""The GPU engine images (vLLM, TensorRT-LLM) come from one Dockerfile with the engine as build argument.

Building those images needs their registry bases and a GPU (never here); the vLLM CPU variant is
built for real in tests/integration/test_docker_vllm.py. Here: the paths and build arguments
`llem images build` chooses, the Dockerfile's argument guard run by `sh`, and that the compose file
pins the same bases.
"""
from __future__ import annotations

import subprocess

import pytest

from llenergymeasure.runners.image_build import (
    GPU_ENGINE_BASE_IMAGES, build_args, buildable_engines, dockerfile_for, repo_root,
)

GPU_DOCKERFILE = repo_root() / "images" / "gpu" / "Dockerfile"


def test_vllm_and_tensorrt_llm_build_from_one_dockerfile_and_every_engine_stays_buildable():
    assert dockerfile_for("vllm") == dockerfile_for("tensorrt_llm") == GPU_DOCKERFILE
    assert dockerfile_for("transformers") == repo_root() / "images" / "transformers" / "Dockerfile"
    assert buildable_engines() == ["llama_cpp", "tensorrt_llm", "transformers", "vllm"]
    assert not (repo_root() / "images" / "vllm").exists() and not (repo_root() / "images" / "tensorrt_llm").exists()


@pytest.mark.parametrize("engine", sorted(GPU_ENGINE_BASE_IMAGES))
def test_a_gpu_engine_gets_its_name_and_pinned_base_and_neither_can_be_forged(engine):
    args = build_args(None, {"ENGINE": "forged", "VLLM_BACKEND": "cuda"}, engine)
    assert args["ENGINE"] == engine and args["BASE_IMAGE"] == GPU_ENGINE_BASE_IMAGES[engine]
    assert build_args("base:1", None, engine)["BASE_IMAGE"] == "base:1"   # --base-image overrides the pin
    assert "ENGINE" not in build_args(None, None, "transformers")


def _guard_script() -> str:
    """The Dockerfile's `RUN case "$ENGINE" ...` instruction, as the shell command it runs."""
    lines = GPU_DOCKERFILE.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith('RUN case "$ENGINE"'))
    end = start
    while lines[end].rstrip().endswith("\\"):
        end += 1
    return "\n".join(lines[start:end + 1])[len("RUN "):]


@pytest.mark.parametrize("engine, backend, ok", [
    ("vllm", "cuda", True), ("vllm", "cpu", True), ("tensorrt_llm", "cuda", True),
    ("vllm", "rocm", False), ("tensorrt_llm", "cpu", False), ("", "cuda", False), ("transformers", "cuda", False),
])
def test_the_dockerfile_refuses_an_unknown_engine_or_a_cpu_backend_outside_vllm(engine, backend, ok):
    done = subprocess.run(["sh", "-c", _guard_script()], env={"ENGINE": engine, "VLLM_BACKEND": backend},
                          capture_output=True, text=True)
    assert (done.returncode == 0) is ok, done.stderr
    assert ok or "ENGINE" in done.stderr or "VLLM_BACKEND" in done.stderr


def test_the_dockerfile_names_no_engine_where_it_installs_verifies_or_labels():
    text = GPU_DOCKERFILE.read_text()
    assert 'install-harness.sh /tmp/llem-src "$ENGINE"' in text
    assert 'verify-build-args.sh "$ENGINE"' in text
    assert 'org.llenergymeasure.engine="${ENGINE}"' in text


def test_compose_builds_the_gpu_engines_from_the_same_dockerfile_and_pins():
    compose = (repo_root() / "compose" / "docker-compose.yml").read_text()
    assert compose.count("dockerfile: images/gpu/Dockerfile") == 2
    for engine, base in GPU_ENGINE_BASE_IMAGES.items():
        assert f"ENGINE: {engine}" in compose and base in compose

