"""`llem` and `llem-docker`: the command-line entry points.

Subcommands live in their own modules and import heavy things only inside the command body,
so `llem --help` stays fast. Errors map to exit codes in one place (`cli.errors`).
"""
from __future__ import annotations

import click

from ..version import __version__
from .errors import run_cli

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name="llem")
def cli() -> None:
    """Measure what LLM inference costs: energy per token, throughput, latency, idle and net GPU energy."""


def _register(group: click.Group) -> None:
    from .config_cmd import config_cmd
    from .images import images_group
    from .models import models_group
    from .results import results_group
    from .run import run_cmd
    from .slurm_cmd import status_cmd

    group.add_command(run_cmd)
    group.add_command(config_cmd)
    group.add_command(models_group)
    group.add_command(images_group)
    group.add_command(results_group)
    group.add_command(status_cmd)


_register(cli)


def main() -> None:
    run_cli(cli, docker=False)


def main_docker() -> None:
    """`llem-docker ...`: identical to `llem ...` but every engine runs in its Docker image."""
    run_cli(cli, docker=True)
