"""Error types, the exit codes the CLI maps them to, and how a validation error is worded.

Below every layer but the contract (domain/): the study plan words a configuration error here
without reaching up into the CLI."""
from __future__ import annotations


class LLEMError(Exception):
    exit_code = 1


class ConfigError(LLEMError):
    """The user's configuration or input is wrong. Exit 2; the message names the field and the fix."""

    exit_code = 2


class PreFlightError(LLEMError):
    """Something the study needs is missing (image, daemon, GPU runtime). Exit 1."""


class ExperimentError(LLEMError):
    """A single experiment could not be run at all."""


class StudyError(LLEMError):
    """The study as a whole cannot proceed (e.g. the study directory cannot be created)."""


def format_validation_error(exc, model=None, source: str | None = None) -> str:
    """One line per problem: the dotted field path, what is wrong, and a suggestion."""
    from .domain.base import closest_field

    lines = [f"Invalid configuration{f' in {source}' if source else ''}:"]
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        path = ".".join(str(p) for p in loc) or "(top level)"
        if err.get("type") == "extra_forbidden":
            hint = closest_field(model, loc) if model is not None else None
            fix = f" — did you mean '{hint}'?" if hint else " — remove it (see README: configuration)"
            lines.append(f"  {path}: unknown field{fix}")
        else:
            msg = err.get("msg", "invalid").removeprefix("Value error, ")
            got = repr(err.get("input"))
            lines.append(f"  {path}: {msg} (got {got if len(got) <= 200 else got[:200] + '…'})")
    return "\n".join(lines)

