"""Bunched streams: a server that sends each whole response in one write (a stalled server) makes
the run warn; the same server streaming token by token does not. Real loopback server
(bench/loadgen_stub_server.py) and the load generator's real client."""
from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from llem_harness.serving.bunching import bunched_streams
from llem_harness.serving.loadgen import LoadPlan, drive
from llem_harness.serving.window import WindowTracker
from tests.helpers import REPO_ROOT


@pytest.fixture(scope="module")
def stub_url():
    proc = subprocess.Popen([sys.executable, str(REPO_ROOT / "bench" / "loadgen_stub_server.py"), "--port", "0"],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("PORT "), line
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        proc.kill()
        proc.wait()


def _load(url: str, **stub) -> list:
    bodies = [{"prompt": f"p{i}", "max_tokens": 8, "stream": True, "stream_options": {"include_usage": True},
               **stub} for i in range(8)]
    return asyncio.run(drive(url, bodies, LoadPlan(n_requests=8, concurrency=4), WindowTracker(4, n_total=8),
                             lambda _e: None))


def test_whole_responses_in_one_read_are_a_warning(stub_url):
    traces = _load(stub_url, stub_whole_after_s=0.05)
    assert all(t.ok and len(t.token_times_s) == 8 for t in traces)
    n, warning = bunched_streams(traces)
    assert n == 8 and warning.startswith("8 of 8 streamed responses arrived whole in one socket read")


def test_a_stream_paced_token_by_token_is_not(stub_url):
    # A stall of the server or the client as long as a whole response makes it arrive whole, which is
    # what the warning is for; one such response in 8 is over the 10 % share. Paced 10 ms apart, a
    # response took 70 ms, a stall a loaded host can cause; 40 ms apart it takes 280 ms (the test takes
    # about 0.6 s). Exact equality of the read times is the rule, so a detector that flags distinct
    # reads still fails at any pace.
    traces = _load(stub_url, stub_itl_s=0.04)
    assert all(t.ok for t in traces)
    assert bunched_streams(traces) == (0, None)
