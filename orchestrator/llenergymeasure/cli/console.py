"""The CLI's rich consoles, which report a closed pipe like any other failed write.

rich's own reaction to a reader that left (`llem run ... | head`) is SystemExit(1) from inside
whatever printed. A study must not end that way: its observer catches the BrokenPipeError this
console raises instead and keeps measuring with its output silenced (cli/progress.py). Any other
command ends as click ends on a closed pipe: quietly, exit code 1. rich is imported only here.
"""
from __future__ import annotations

import errno


def make_console(**kwargs):
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    return _Console(**kwargs)
