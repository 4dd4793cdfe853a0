"""Serving reader cases of the fault campaign: one bad response in a load fails that request only.

Each case drives the real load generator (llem_harness.serving.loadgen `drive`, its streaming reader
http_stream.py) against a local HTTP server in this module that answers most requests with a well-formed
OpenAI completion stream and one request in four with a broken one:

- a well-formed but wrong-shaped event (`data: [1,2,3]`, `data: NaN`, `"choices": 5`, `"usage": "lots"`);
- a chunk size that is not hex;
- a 200 answer that never sends a newline: the reader cuts it at its line bound (`MAX_LINE_BYTES`), so the
  client's memory does not grow with the bytes the server sends.

86f093f raised out of the request on the first two (the whole load aborted, every other trace lost) and grew
a buffer 1:1 with the bytes of the third. Each case records "n ok / n failed" and the failed request's error.
"""
from __future__ import annotations

import asyncio
import json
import threading
import time
import tracemalloc
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

N_REQUESTS, N_TOKENS = 8, 4
BAD_EVENTS = {  # case -> the event line the bad answer carries (between good tokens)
    "event `data: [1,2,3]`": b"data: [1,2,3]",
    "event `data: NaN`": b"data: NaN",
    'event `"choices": 5`': b'data: {"choices": 5}',
    'event `"usage": "lots"`': b'data: {"choices": [], "usage": "lots"}',
}
NO_NEWLINE_OFFER_BYTES = 64 << 20  # what the no-newline answer would send if the client kept reading


def run_reader_cases(campaign) -> None:
    for name, event in BAD_EVENTS.items():
        _case(campaign, f"reader: {name}", ("event", event), "BadEvent")
    _case(campaign, "reader: chunk size not hex", ("nonhex", b""), "not a chunk size")
    _no_newline_case(campaign)


# -- the server -----------------------------------------------------------------------------------

def _chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def _token(i: int) -> bytes:
    chunk = {"choices": [{"index": 0, "text": " tok", "finish_reason": "length" if i == N_TOKENS - 1 else None}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


USAGE = b'data: {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": %d}}\n\n' % N_TOKENS


class _Handler(BaseHTTPRequestHandler):
    """A keep-alive chunked SSE stream for prompt "ok"; the server's `bad` answer for prompt "bad"."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        kind, payload = self.server.bad if request.get("prompt") == "bad" else ("ok", b"")
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        if kind == "nonewline":  # a body delimited by the connection's close, one endless line
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            self._endless_line()
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            self.wfile.write(_chunk(_token(0)))
            if kind == "event":
                self.wfile.write(_chunk(payload + b"\n\n"))
            elif kind == "nonhex":
                self.wfile.write(b"zz\r\n" + _token(1) + b"\r\n")
            self.wfile.write(b"".join(_chunk(_token(i)) for i in range(1, N_TOKENS)))
            self.wfile.write(_chunk(USAGE) + _chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:  # the client dropped a broken answer's connection: expected
            pass
        if kind != "ok":
            self.close_connection = True

    def _endless_line(self) -> None:
        blob, sent = b"x" * 65536, 0
        try:
            while sent < NO_NEWLINE_OFFER_BYTES:
                self.wfile.write(blob)
                sent += len(blob)
        except OSError:  # the client cut the connection at its bound
            self.server.cut.append(sent)
        else:
            self.server.whole.append(sent)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, bad: tuple[str, bytes]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.bad = bad
        self.cut: list[int] = []    # bytes an endless answer had sent when the client cut it
        self.whole: list[int] = []  # endless answers the client read to their end (never, with a bound)


def _drive(server: _Server) -> list:
    """N_REQUESTS streamed requests through the real load generator, two at a time; one prompt in four is bad."""
    from llem_harness.serving.loadgen import LoadPlan, drive
    from llem_harness.serving.window import WindowTracker

    url = f"http://127.0.0.1:{server.server_address[1]}"
    bodies = [{"prompt": p, "max_tokens": N_TOKENS, "stream": True} for p in ("ok", "ok", "bad", "ok")]
    return asyncio.run(drive(url, bodies, LoadPlan(n_requests=N_REQUESTS, concurrency=2, request_timeout_s=30),
                             WindowTracker(2, n_total=N_REQUESTS), lambda _event: None))


def _serving(bad: tuple[str, bytes]):
    server = _Server(bad)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# -- the cases ------------------------------------------------------------------------------------

def _judge(traces: list, words: str) -> tuple[bool, str, list]:
    """Every "bad" request failed naming `words`, every other one completed with its tokens and usage."""
    bad = [t for t in traces if t.prompt_index == 2]
    good = [t for t in traces if t.prompt_index != 2]
    failed = [t for t in traces if not t.ok]
    ok = (len(traces) == N_REQUESTS and failed == bad and all(words in (t.error or "") for t in bad)
          and all(len(t.token_times_s) == N_TOKENS and (t.usage or {}).get("completion_tokens") == N_TOKENS
                  for t in good))
    seen = f"{len(traces) - len(failed)} ok / {len(failed)} failed"
    return ok, seen + (f": {failed[0].error[:90]}" if failed else ""), bad


def _case(campaign, name: str, bad: tuple[str, bytes], words: str) -> None:
    server = _serving(bad)
    try:
        ok, seen, _ = _judge(_drive(server), words)
    except Exception as exc:  # noqa: BLE001 - the load itself aborted: what 86f093f did
        ok, seen = False, f"the whole load aborted: {type(exc).__name__}: {str(exc)[:90]}"
    finally:
        server.shutdown()
        server.server_close()
    campaign._record(name, ok, seen)


def _mib(sizes: list[int]) -> str:
    return "/".join(f"{n / 2**20:.1f}" for n in sizes) + " MiB"


def _no_newline_case(campaign) -> None:
    """The server offers 64 MiB without a newline (until the client cuts it); the client's Python heap peak
    during the load stays a few times the line bound, whatever the server sends."""
    from llem_harness.serving import http_stream

    bound = getattr(http_stream, "MAX_LINE_BYTES", 1 << 20)  # 86f093f had no bound: judged against 1 MiB
    server = _serving(("nonewline", b""))
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        ok, seen, bad = _judge(_drive(server), f"a body line over {bound} bytes")
        peak = tracemalloc.get_traced_memory()[1]
    except Exception as exc:  # noqa: BLE001 - the load itself aborted
        ok, seen, bad, peak = False, f"the whole load aborted: {type(exc).__name__}: {str(exc)[:90]}", [], 0
    finally:
        if started:
            tracemalloc.stop()
        server.shutdown()
        server.server_close()
    deadline = time.monotonic() + 10
    while len(server.cut) + len(server.whole) < len(bad) and time.monotonic() < deadline:
        time.sleep(0.05)  # the server's last write fails a moment after the client cuts it
    cut = sorted(server.cut)
    past = len(cut) == len(bad) == 2 and not server.whole and cut[0] > bound  # the bound was reached
    bounded = 0 < peak < 8 * bound
    sent = (f"the client cut the server after {_mib(cut)} of {NO_NEWLINE_OFFER_BYTES >> 20} MiB" if cut else "") \
        + (f"{', ' if cut else ''}read {_mib(server.whole)} to the end" if server.whole else "")
    campaign._record("reader: 200 answer without a newline", ok and past and bounded,
                     f"{seen}; {sent or 'no endless answer seen'}, client heap peak {peak / 2**20:.1f} MiB "
                     f"(line bound {bound / 2**20:g} MiB)")
