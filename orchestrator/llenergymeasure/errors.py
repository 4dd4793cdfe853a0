"""Error types and the exit codes the CLI maps them to."""
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
