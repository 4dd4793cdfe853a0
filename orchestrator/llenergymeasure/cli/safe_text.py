"""Text from a study (model paths, experiment names, error messages) made safe to print.

Why: these values come from study files and result files that may have been written by someone
else. Printed raw, an escape sequence in a model directory's name retitles or rewrites the
user's terminal (OSC, CSI), a carriage return hides what came before it on the line, and
`[bold]` is consumed as rich markup. Every line and table cell that shows such a value goes
through `visible` (control characters shown as `\\xNN`) and, where rich renders markup,
`markup_safe`.
"""
from __future__ import annotations

import re

# C0 controls, DEL, C1 controls, and the Unicode controls that reorder or hide text (bidi
# embeddings/overrides/isolates, line and paragraph separators).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_CONTROL_KEEP_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _show(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: object, keep_newlines: bool = False) -> str:
    """`text` with every control character written as an escape (`\\x1b`), so none reaches the terminal."""
    pattern = _CONTROL_KEEP_NEWLINE if keep_newlines else _CONTROL
    return pattern.sub(_show, str(text))


def markup_safe(text: object, keep_newlines: bool = False) -> str:
    """`visible(text)` with rich markup escaped (`[bold]` prints as written)."""
    from rich.markup import escape

    return escape(visible(text, keep_newlines))
