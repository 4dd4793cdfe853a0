"""The harness process's entry (`python -m llem_harness RUN_DIR`): read the run spec, run the measured run,
write result.json or error.json.

The measured run itself (baseline, load, warm-up, window, result) is `measured_run.py`, the same
for every mode; this module owns what surrounds it: signals that must always reach the error
handler, the harness log, and the files the host reads — the result written atomically, or
error.json naming the stage where anything failed (storage failures with their own exit status).
"""
from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path

from llenergymeasure.domain import (ERROR_FILE, HARNESS_EXIT_STORAGE, HARNESS_LOG_FILE, RESULT_FILE, RUN_SPEC_FILE,
                                    ExperimentResult, HarnessError, RunSpec)
from llenergymeasure.domain.io import write_json_atomic

from .lifecycle import ignore_further_signals, install_signal_handlers, stop_with_parent, storage_failure
from .progress import Stage, close_channel, emit, open_channel

log = logging.getLogger("llem_harness")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m llem_harness RUN_DIR", file=sys.stderr)
        return 2
    run_dir = Path(argv[0])
    install_signal_handlers()  # before anything slow: a stop must always reach the except below
    stop_with_parent()
    open_channel()  # progress never waits for llem to read it (progress.py)
    try:
        logging.basicConfig(filename=str(run_dir / HARNESS_LOG_FILE), level=logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        spec = RunSpec.model_validate_json((run_dir / RUN_SPEC_FILE).read_text())
        result = run(spec, run_dir)
        Stage.enter("writing")
        write_json_atomic(run_dir / RESULT_FILE, result)
        emit("done", ok=True)
        ignore_further_signals()  # the result is written: waiting for llem to read the last lines loses nothing
        close_channel()
        return 0
    except BaseException as exc:  # noqa: BLE001 - every failure must leave error.json behind
        ignore_further_signals()  # a second signal must not cut the writing of error.json short
        log.exception("run failed in stage %s", Stage.name)
        storage = storage_failure(exc)
        kind = "StorageError" if storage is not None else type(exc).__name__
        message = (f"out of storage: {storage.strerror or storage} ({storage.filename or run_dir})"
                   if storage is not None else str(exc) or type(exc).__name__)
        error = HarnessError(type=kind, message=message, traceback=traceback.format_exc(), stage=Stage.name)
        try:
            write_json_atomic(run_dir / ERROR_FILE, error)
        except OSError:
            pass  # disk full: the exit status below still says StorageError
        emit("done", ok=False, error_type=error.type, message=error.message)
        close_channel()
        if storage is not None:
            return HARNESS_EXIT_STORAGE
        return 130 if isinstance(exc, KeyboardInterrupt) else 1


def run(spec: RunSpec, run_dir: Path) -> ExperimentResult:
    """The measured run of `spec` (offline batches or a serving load, chosen by `config.mode`)."""
    from .measured_run import measured_run  # imported after the signal handlers: it loads the measurement code

    return measured_run(spec, run_dir)
