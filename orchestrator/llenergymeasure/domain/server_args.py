"""`serving.server_args` may add to the server command, never override what llem sets.

Why: the server command llem builds (harness serving/servers.py) sets the address (loopback only),
the model, the served name, the seed, the dtype, prefix caching and the study's engine options, and
the result reports those values. Arguments appended after them win on every server's parser: a
repeated `--host 0.0.0.0` opens the measured server to the network (anyone could add load inside
the energy window), `--model other.gguf` measures a model the result does not name, and
`--enable-prefix-caching` turns on the cache the result says is off. So a flag llem sets, a prefix
of one (argparse accepts unique abbreviations), or a config file that could set any of them is
refused here, at validation (exit 2 naming the field). The harness test pins that these tables hold
every flag of the commands it builds.
"""
from __future__ import annotations

# Flags in one spelling: lower case, "-" for "_" (vLLM and argparse-based servers accept both).
LLEM_SET_FLAGS: dict[str, frozenset[str]] = {
    "llama_cpp": frozenset({
        "--llem-prefix-caching", "--model", "--model-alias", "--host", "--port", "--interrupt-requests", "--seed",
        "--n-ctx", "--n-gpu-layers", "--n-threads", "--n-threads-batch", "--n-batch", "--flash-attn", "--type-k",
        "--type-v", "--config-file"}),
    "vllm": frozenset({
        "--model", "--host", "--port", "--uds", "--served-model-name", "--dtype", "--seed",
        "--enable-prefix-caching", "--no-enable-prefix-caching", "--enable-prompt-tokens-details",
        "--no-enable-prompt-tokens-details", "--config", "--gpu-memory-utilization", "--max-num-seqs",
        "--max-model-len", "--enforce-eager", "--no-enforce-eager", "--kv-cache-dtype", "--enable-chunked-prefill",
        "--no-enable-chunked-prefill", "--tensor-parallel-size", "--quantization"}),
    "tensorrt_llm": frozenset({
        "--host", "--port", "--backend", "--served-model-name", "--extra-llm-api-options", "--config"}),
}
# Flags that would contradict the study's prefix_caching (issue: the result would say it was off).
PREFIX_CACHING_FLAGS = frozenset({"--llem-prefix-caching", "--enable-prefix-caching", "--no-enable-prefix-caching",
                                  "--extra-llm-api-options"})
# Short spellings of reserved flags (vLLM's parser has these aliases).
SHORT_FLAGS = {"vllm": {"-tp": "--tensor-parallel-size", "-q": "--quantization"}}
# Where the setting belongs instead (a hint in the refusal).
_INSTEAD = {"--host": "the server listens on 127.0.0.1 only, so no load from elsewhere enters the window",
            "--port": "set serving.port", "--model": "set model", "--dtype": "set precision", "--seed": "set random_seed",
            "--config": "a config file could set any flag llem sets",
            "--config-file": "a config file could set any flag llem sets"}


def canonical_flag(arg: str) -> str:
    """`--Served_Model_Name=x` -> `--served-model-name`; "" for a value (not a long flag)."""
    if not arg.startswith("--") or len(arg) <= 2:
        return ""
    return arg.split("=", 1)[0].lower().replace("_", "-")


def refused_server_arg(engine: str, args: list[str], prefix_caching: bool) -> str | None:
    """The refusal for the first argument that repeats (or abbreviates) a flag llem sets, else None."""
    reserved, short = LLEM_SET_FLAGS.get(engine, frozenset()), SHORT_FLAGS.get(engine, {})
    for arg in args:
        flag = short.get(arg.split("=", 1)[0]) or canonical_flag(arg)
        if not flag:
            continue
        hits = [flag] if flag in reserved else sorted(r for r in reserved if r.startswith(flag))
        if not hits:
            continue
        if hits[0] in PREFIX_CACHING_FLAGS:
            return (f"serving.server_args: '{arg}' sets prefix caching, which the study's prefix_caching "
                    f"({str(prefix_caching).lower()}) decides and the result reports; remove it and set prefix_caching")
        hint = _INSTEAD.get(hits[0]) or f"set it through the study's fields (e.g. {engine}: options)"
        return (f"serving.server_args: '{arg}' repeats {hits[0]}, which llem sets for the {engine} server "
                f"({hint}); remove it")
    return None
