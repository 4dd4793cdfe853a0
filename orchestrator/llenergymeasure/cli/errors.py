"""Exit codes and friendly error output, in one place.

ConfigError / ValidationError -> 2 (message names the field and the fix); PreFlightError,
ExperimentError, StudyError -> 1; SIGINT -> 130. Tracebacks only with --verbose.
"""
from __future__ import annotations

import os
import sys

import click

from ..errors import ConfigError, LLEMError, format_validation_error

EXIT_INTERRUPTED = 130


def run_cli(cli: click.Group, docker: bool) -> None:
    if docker:  # every command (run, config) then knows Docker is forced
        from ..runners.resolve import FORCE_DOCKER_ENV

        os.environ[FORCE_DOCKER_ENV] = "1"
    # `kill PID` takes the same path as Ctrl-C, and SIGINT works even where it was inherited ignored
    # (background, nohup, cron): stop the run's process/container, manifest interrupted by that signal.
    from ..runners import signals

    signals.install()
    verbose = "-v" in sys.argv or "--verbose" in sys.argv
    try:
        code = cli.main(standalone_mode=False, prog_name="llem-docker" if docker else "llem")
        sys.exit(code if isinstance(code, int) else 0)
    except click.exceptions.Abort:
        click.echo("Interrupted.", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if isinstance(exc, click.UsageError) else exc.exit_code)
    except LLEMError as exc:
        if verbose:
            import traceback

            traceback.print_exc()
        label = "Configuration error" if isinstance(exc, ConfigError) else type(exc).__name__
        click.echo(f"{label}: {exc}", err=True)
        sys.exit(exc.exit_code)
    except Exception as exc:  # an in-place edit of a validated config (e.g. a flag) that is out of range
        from pydantic import ValidationError  # imported here: `llem --help` stays fast

        if not isinstance(exc, ValidationError):
            raise
        if verbose:
            import traceback

            traceback.print_exc()
        click.echo(f"Configuration error: {format_validation_error(exc)}", err=True)
        sys.exit(2)
