"""Prompts cut to a token count, in the tokens of the server that will read them.

`max_input_tokens: 32` (or `dataset.input_tokens`) means 32 tokens of the model's tokenizer before
the server adds its special tokens (a BOS), as offline mode cuts them. Cutting by a word count
scaled by the server's total count missed by a third either way (23-45 tokens for 32). The cut
here: token ids of the text (the server's tokenize endpoint, else the model's own tokenizer), the
first n decoded back to text (the server's detokenize endpoint, else the tokenizer), and, since
decoding then re-encoding can merge or split a token at the cut, re-encoded and cut again until the
text is n tokens or fewer. Only where neither the server nor the harness can tokenize is the text
cut by words (said in the result). Every prompt's count as the server reads it (special tokens
included) is recorded (`effective.prompt_tokens_sent`).
"""
from __future__ import annotations

from typing import Callable

import httpx

MAX_RECUTS = 4


class PromptFitter:
    """fit(text, n) -> text of at most n tokens; count(text) -> the server's count (specials included)."""

    def __init__(self, ids: Callable[[str], list[int]] | None, text: Callable[[list[int]], str] | None,
                 count: Callable[[str], int | None], method: str) -> None:
        self._ids, self._text, self.count, self.method = ids, text, count, method
        self._prefix: list[int] | None = None

    def body_ids(self, text: str) -> list[int]:
        """Token ids of `text` without the special tokens the tokenizer puts in front (a BOS)."""
        if self._prefix is None:
            self._prefix = self._ids("")
        ids = self._ids(text)
        return ids[len(self._prefix):] if ids[:len(self._prefix)] == self._prefix else ids

    def fit(self, text: str, n_tokens: int) -> str:
        if self._ids is None or self._text is None:  # nothing here can tokenize: words, said in the result
            return " ".join(text.split()[:n_tokens])
        ids = self.body_ids(text)
        for _ in range(MAX_RECUTS):
            if len(ids) <= n_tokens:
                return text
            text = self._text(ids[:n_tokens])
            ids = self.body_ids(text)
        return text if len(ids) <= n_tokens else self._text(ids[:max(1, n_tokens - 1)])


def _post(base_url: str, endpoint, payload):
    path, body, read = endpoint
    response = httpx.post(base_url + path, json=body(payload), timeout=120.0)
    response.raise_for_status()
    return read(response.json())


def prompt_fitter(config, base_url: str, server_def) -> PromptFitter:
    """The server's tokenize/detokenize endpoints, else the model's tokenizer, else words (labelled)."""
    if server_def.tokenize is not None:
        count = lambda p: _post(base_url, server_def.tokenize, p)  # noqa: E731
    else:
        count = None
    if server_def.token_ids is not None and server_def.detokenize is not None:
        return PromptFitter(lambda p: list(_post(base_url, server_def.token_ids, p)),
                            lambda ids: _post(base_url, server_def.detokenize, ids), count,
                            "the server's tokenize and detokenize endpoints")
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(config.model)
    except Exception:  # noqa: BLE001 - no tokenizer here: cut by words, counts come from the server's usage
        return PromptFitter(None, None, count or (lambda p: None),
                            "words (no tokenizer available: the server's usage gives the counts)")
    return PromptFitter(lambda p: tokenizer(p)["input_ids"], lambda ids: tokenizer.decode(ids), count or
                        (lambda p: len(tokenizer(p)["input_ids"])), "the model's tokenizer")
