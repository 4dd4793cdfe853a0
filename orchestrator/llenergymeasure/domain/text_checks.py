"""No control character in a path or name that reaches a script, a command line or a container.

Why: study files are passed around clusters. A newline in `results_dir` ended the `#SBATCH
--output=` line of the generated Slurm script and made the next line a command run as the
submitting user; an escape sequence in a model name rewrote the terminal of whoever printed the
results. Paths and names never need control characters, so they are refused where they enter.
"""
from __future__ import annotations

import re
from typing import Any

CONTROL_CHARS = re.compile("[\x00-\x1f\x7f-\x9f]")


def refuse_control(value: Any, field: str) -> Any:
    """`value` (a string, or a list/dict of them) unchanged; ValueError naming `field` when any string in it
    holds a control character (newline, tab, escape, NUL...)."""
    if isinstance(value, str):
        found = CONTROL_CHARS.search(value)
        if found:
            raise ValueError(f"{field} contains the control character {found.group()!r} (U+{ord(found.group()):04X}); "
                             "a path or name must not hold newlines, tabs or escape sequences: remove it")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            refuse_control(item, f"{field}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            refuse_control(key, field)
            refuse_control(item, f"{field}.{key}")
    return value
