"""The plain progress output says each thing once: the NVML reason, repeated environment lines; the live
display names the run's stage from the harness's own events."""
from __future__ import annotations

from llenergymeasure.cli.progress import PlainObserver

REASON = "no NVIDIA GPU visible: nvmlInit failed (NVMLError_LibraryNotFound: NVML Shared Library Not Found)"


def test_the_nvml_reason_is_printed_once_over_several_runs(capsys):
    observer = PlainObserver()
    for _ in range(3):  # what the harness emits for each run on a host without a GPU
        observer.run_event({"event": "environment", "summary": f"no GPU measured ({REASON})"})
        observer.run_event({"event": "warning", "message": f"GPU energy unavailable: {REASON}"})
    out = capsys.readouterr().out
    assert out.count("nvmlInit failed") == 1, out
    assert observer.already_said(REASON)


def test_a_different_warning_is_still_printed(capsys):
    observer = PlainObserver()
    observer.run_event({"event": "environment", "summary": f"no GPU measured ({REASON})"})
    observer.run_event({"event": "warning", "message": "warm-up did not converge: CV 0.149 >= 0.1"})
    observer.run_event({"event": "warning", "message": "GPU energy unavailable: another reason"})
    out = capsys.readouterr().out
    assert "warm-up did not converge" in out and "another reason" in out


def test_the_live_display_says_the_reason_once_too(capsys):
    from llenergymeasure.cli.progress import LiveObserver

    observer = LiveObserver()
    for _ in range(2):
        observer.run_event({"event": "environment", "summary": f"no GPU measured ({REASON})"})
        observer.run_event({"event": "warning", "message": f"GPU energy unavailable: {REASON}"})
    assert capsys.readouterr().out.count("nvmlInit failed") == 1


def test_the_live_display_names_the_stage_the_harness_entered(capsys):
    """The harness's `Stage.enter` line, as the host decodes it, is the live line; a warm-up batch says warmup."""
    from llem_harness.progress import Stage, emit

    from llenergymeasure.cli.progress import LiveObserver
    from llenergymeasure.domain.progress import decode_event

    observer = LiveObserver()
    observer.study_started("study", 1, 0)
    previous = Stage.name
    try:
        capsys.readouterr()
        Stage.enter("warmup")
        emit("batch", stage="warmup", done=3, total=30)  # as measurement/warmup.py emits it
        stage, batch = (decode_event(line) for line in capsys.readouterr().out.splitlines())
        assert (stage["event"], stage["stage"]) == ("stage", "warmup")
        observer.run_event(stage)
        assert observer.progress.tasks[0].description == "warmup"
        observer.run_event(batch)
        assert observer.progress.tasks[0].description == "warmup batch 3/30"
    finally:
        Stage.name = previous
        observer.progress.stop()


def test_a_closed_pipe_silences_the_output_and_never_exits(monkeypatch, capsys):
    """rich's own reaction to a broken pipe is SystemExit(1); the study's observer must get an error it
    handles instead, go quiet, and say so once on stderr (a real pipe whose reader has gone)."""
    import os
    import sys

    from llenergymeasure.cli.console import make_console

    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    stream = os.fdopen(write_fd, "w", buffering=1)
    monkeypatch.setattr(sys, "stdout", stream)
    observer = PlainObserver()
    try:
        observer._write(lambda: make_console().print("a table"))  # the summary table's path
        observer.notice("later lines go nowhere, without an error")
        observer._write(lambda: make_console().print("nor rich's"))
    finally:
        stream.close()
    err = capsys.readouterr().err
    assert err.count("standard output failed (Broken pipe); the study goes on") == 1
