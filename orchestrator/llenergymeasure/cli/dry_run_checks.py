"""What would stop a study from starting, found without starting it (`llem run --dry-run`).

Why a separate list: `--dry-run` is what CI users run as a validator, so it must fail (exit 2)
whenever the real start would refuse something, naming each thing: an invalid grid point (a
missing local model or dataset, an empty dataset, a bad value), an engine that cannot run on
this host, a runner that cannot be resolved, an unwritable results or lock directory.
"""
from __future__ import annotations

from ..errors import LLEMError

SHOWN = 20  # problems named one by one; the rest are counted


def start_problems(study, run) -> list[str]:
    """One line per thing that would fail to start (empty: the study would start)."""
    from ..runners.gpu_presence import gpu_only_unavailable
    from ..study.locks import check_lock_dir
    from ..study.paths import check_storage

    problems: list[str] = []
    invalid = sorted(run.expanded.skip_reasons)  # numbered from 1, as in every other command
    for index in invalid[:SHOWN]:
        e = run.expanded[index]
        problems.append(f"configuration #{index + 1} ({e.label}) is invalid: {e.skip_reason}")
    if len(invalid) > SHOWN:
        problems.append(f"... and {len(invalid) - SHOWN:,} more invalid configurations")
    engines = {engine for engine in run.expanded.engines if engine}
    if not engines:
        problems.append("no valid configuration: nothing would run")
    no_gpu = gpu_only_unavailable(engines)
    for engine, reason in sorted(no_gpu.items()):
        problems.append(f"engine {engine}: its runs would be recorded failed: {reason}")
    for check in (lambda: check_storage(study.results_dir), check_lock_dir):
        problems += _catch(check)
    if engines:
        problems += _runner_problems(study, run, engines, set(no_gpu))
    if engines:  # what the executor refuses before a study starts (parallel: too few GPU sets)
        problems += _catch(lambda: _executor_check(study, run))
    for mount in study.docker.extra_mounts:
        problems += _catch(lambda: _mount(mount))
    return problems


def _catch(check) -> list[str]:
    try:
        check()
    except LLEMError as exc:
        return [str(exc)]
    return []


def _executor_check(study, run) -> None:
    from ..executors import for_study

    for_study(study).check(run)


def _mount(text: str) -> None:
    from ..runners.docker_support import parse_extra_mount

    parse_extra_mount(text)


def _runner_problems(study, run, engines: set[str], already_named: set[str]) -> list[str]:
    from ..runners.resolve import resolve_runners

    try:
        plan = resolve_runners(study, engines, run.cli_runner)
    except LLEMError as exc:
        return [f"runners: {exc}"]
    try:
        return [f"engine {engine}: no runner can run it here: {reason}"
                for engine, reason in sorted(plan.unavailable.items()) if engine not in already_named]
    finally:
        plan.close()
