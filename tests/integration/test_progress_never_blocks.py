"""A run whose llem stops reading its progress, and a run whose harness is stopped, for real.

Real: the harness as its own process (`python -u -m llem_harness RUN_DIR`, as the local runner
starts it), the transformers engine and the tiny model. The progress pipe is the test's own, made
as small as Linux allows (one page), so a reader that stops reading fills it within a few lines:
the test stops reading at the harness's first line and fills what is left of the pipe, the way a
stopped llem (Ctrl-Z, `kill -STOP`) leaves it, so the pipe is full long before the measured window
(engine import and model load take seconds): the harness must run its window and write its result
without waiting for the pipe, say how long llem did not read, and every progress line must still
arrive, in order, once reading resumes. A harness that is itself stopped inside its window cannot avoid the stall: the
result says how long it lasted.
"""
from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from llenergymeasure.domain import RESULT_FILE, ExperimentResult
from llenergymeasure.domain.progress import decode_event

pytestmark = pytest.mark.slow
F_SETPIPE_SZ = 1031
PIPE_BYTES = 4096


class Harness:
    """The harness process on a one-page pipe, read line by line on a thread that can be paused."""

    def __init__(self, run_dir: Path):
        self.read_fd, self.write_fd = os.pipe()
        fcntl.fcntl(self.read_fd, F_SETPIPE_SZ, PIPE_BYTES)
        self.run_dir = run_dir
        self.events: list[dict] = []
        self.measuring = threading.Event()
        self.first_batch = threading.Event()
        self.reading = threading.Event()
        self.reading.set()
        self.started = threading.Event()
        self.pause_at_start = False
        self.filler: threading.Thread | None = None
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("LLEM_NVML_REPLAY", None)
        with open(run_dir / "stderr.log", "wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-u", "-m", "llem_harness", str(run_dir)],
                                         stdout=self.write_fd, stderr=err, stdin=subprocess.DEVNULL, env=env,
                                         start_new_session=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        with open(self.read_fd, "r", encoding="utf-8") as lines:
            for line in lines:
                self.reading.wait()
                event = decode_event(line)
                if event is None:
                    continue
                self.events.append(event)
                if not self.started.is_set():
                    if self.pause_at_start:
                        self.reading.clear()
                    self.started.set()
                if event.get("event") == "stage" and event.get("stage") == "measuring":
                    self.measuring.set()
                if event.get("event") == "batch" and event.get("stage") == "measuring":
                    self.first_batch.set()

    def fill_pipe(self) -> None:
        """Write filler lines until the pipe is full (this thread blocks there, as llem's pipe would)."""
        def fill():
            for _ in range(200):
                os.write(self.write_fd, b"filler " + b"x" * 90 + b"\n")
        self.filler = threading.Thread(target=fill, daemon=True)
        self.filler.start()

    def finish(self, timeout_s: float = 120) -> int:
        self.reading.set()
        if self.filler is not None:
            self.filler.join(timeout=30)
        os.close(self.write_fd)  # the harness holds its own end; EOF once it exits
        code = self.proc.wait(timeout=timeout_s)
        self.thread.join(timeout=10)
        return code

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _wait_for(path: Path, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists():
            return True
        time.sleep(0.1)
    return False


def test_a_stopped_reader_does_not_hold_the_measured_window(make_run, tiny_model_dir):
    run_dir, _ = make_run(str(tiny_model_dir), n_prompts=24, batch_size=1, max_output_tokens=8,
                          decoding={"ignore_eos": True})
    harness = Harness(run_dir)
    harness.pause_at_start = True
    try:
        assert harness.started.wait(120), "the harness wrote no progress"
        harness.fill_pipe()  # the reader is paused: the pipe is full from here on, the window included
        # A harness that writes progress itself blocks on its next line here, until reading resumes.
        written = _wait_for(run_dir / RESULT_FILE, 60)
        code = harness.finish()
    finally:
        harness.kill()
    assert written, "the harness waited for its progress pipe to be read before finishing its window"
    assert code == 0
    result = ExperimentResult.model_validate_json((run_dir / RESULT_FILE).read_text())
    assert any("did not read the harness's progress" in w for w in result.measurement_warnings)
    assert result.window_stall_s == 0
    # Every line arrived once reading resumed, in order: 24 measured batches, then the end.
    batches = [e["done"] for e in harness.events if e.get("event") == "batch" and e.get("stage") == "measuring"]
    assert batches == list(range(1, 25))
    assert harness.events[-1] == {**harness.events[-1], "event": "done", "ok": True}
    assert "filler" not in (run_dir / "harness.log").read_text()
    # Prints of libraries and engines go to the run's log, never into the progress pipe.
    assert all(json.dumps(e) for e in harness.events)


def test_a_harness_stopped_inside_its_window_says_for_how_long(make_run, tiny_model_dir):
    run_dir, _ = make_run(str(tiny_model_dir), n_prompts=24, batch_size=1, max_output_tokens=8,
                          decoding={"ignore_eos": True})
    harness = Harness(run_dir)
    try:
        assert harness.first_batch.wait(120), "the harness never ran a measured batch"
        os.killpg(harness.proc.pid, signal.SIGSTOP)
        time.sleep(2.5)
        os.killpg(harness.proc.pid, signal.SIGCONT)
        code = harness.finish()
    finally:
        harness.kill()
    assert code == 0
    result = ExperimentResult.model_validate_json((run_dir / RESULT_FILE).read_text())
    assert 2.0 <= result.window_stall_s <= result.window_s
    assert any("did not run for" in w for w in result.measurement_warnings)
