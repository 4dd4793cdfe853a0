"""llama-cpp-python's OpenAI server (`llama_cpp.server`) with prefix-cache control and cached-token counts.

Why a launcher: the server's `Llama.generate` reuses the longest prefix of the previous request
still in its KV cache (a "prefix-match hit"), with no request field or server flag to turn it off,
and its usage reports no cached tokens. This module starts the same server with two changes:

- `--llem_prefix_caching False` (llem's default): the KV cache is reset before every request, so
  every prefill is cold; `True` keeps llama-cpp-python's own prefix reuse.
- every response's `usage` gains `prompt_tokens_details.cached_tokens` (the tokens the prefix match
  reused, computed as llama-cpp-python does), and streaming responses end with a usage chunk
  (`prompt_tokens`, `completion_tokens`, counting an end-of-generation token as the offline engines
  do), so the load generator counts tokens, not chunks.

Everything else (arguments, endpoints, scheduling one request at a time) is llama_cpp.server's.
"""
from __future__ import annotations

import sys
from types import SimpleNamespace

# The request being generated. The server runs one request at a time (a lock around the model), but
# a stream's steps may run on different worker threads: module state, not thread-local state.
_state = SimpleNamespace(counts={})


def _patch(prefix_caching: bool) -> None:
    import llama_cpp

    from ..engines.llama_cpp import longest_reused_prefix
    from llama_cpp import llama_types

    generate, create = llama_cpp.Llama.generate, llama_cpp.Llama._create_completion

    def patched_generate(self, tokens, *args, reset: bool = True, **kwargs):
        tokens = list(tokens)
        if reset and not prefix_caching:
            self.reset()  # n_tokens = 0: nothing to match, a cold prefill
        cached = longest_reused_prefix(list(self._input_ids), tokens) if reset and self.n_tokens else 0
        _state.counts = {"prompt_tokens": len(tokens), "cached_tokens": cached, "completion_tokens": 0}
        for token in generate(self, tokens, *args, reset=reset, **kwargs):
            _state.counts["completion_tokens"] += 1
            yield token

    def patched_create(self, *args, **kwargs):
        stream = kwargs.get("stream", False)
        last = None
        for chunk in create(self, *args, **kwargs):
            counts = _state.counts
            if chunk.get("usage"):  # non-streamed: the same token count as the stream's usage
                n_out = counts.get("completion_tokens", chunk["usage"]["completion_tokens"])
                chunk["usage"].update(completion_tokens=n_out, total_tokens=chunk["usage"]["prompt_tokens"] + n_out,
                                      prompt_tokens_details={"cached_tokens": counts.get("cached_tokens", 0)})
            if stream:
                last = chunk
            yield chunk
        if stream and last is not None:
            counts = _state.counts
            n_in, n_out = counts.get("prompt_tokens", 0), counts.get("completion_tokens", 0)
            yield {"id": last.get("id"), "object": "text_completion", "created": last.get("created"),
                   "model": last.get("model"), "choices": [],
                   "usage": {"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out,
                             "prompt_tokens_details": {"cached_tokens": counts.get("cached_tokens", 0)}}}

    llama_cpp.Llama.generate = patched_generate
    llama_cpp.Llama._create_completion = patched_create
    # The non-streamed response is validated against TypedDicts: keep the added usage field.
    llama_types.CompletionUsage.__pydantic_config__ = {"extra": "allow"}


def main(argv: list[str]) -> None:
    prefix_caching = False
    if "--llem_prefix_caching" in argv:
        i = argv.index("--llem_prefix_caching")
        prefix_caching = argv[i + 1].lower() == "true"
        argv = argv[:i] + argv[i + 2:]
    _patch(prefix_caching)
    from llama_cpp.server.__main__ import main as server_main

    sys.argv = [sys.argv[0]] + argv
    server_main()


if __name__ == "__main__":
    main(sys.argv[1:])
