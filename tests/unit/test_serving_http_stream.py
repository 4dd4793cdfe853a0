"""The load generator's streaming HTTP/1.1 reader against a real loopback socket server that sends
scripted bytes: framing split at awkward places, keep-alive reuse, error bodies, a server that
closes or goes silent mid-stream. What the load generator records must not depend on how the
bytes were cut into socket reads; a token's time is the time of the read that completed it.
"""
from __future__ import annotations

import asyncio
import json

import httpx

from llem_harness.serving.loadgen import LoadPlan, RequestTrace, _one_request, drive
from llem_harness.serving.window import WindowTracker

HEAD_CHUNKED = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def _event(obj) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def _tok(text: str, finish=None) -> bytes:
    return _event({"choices": [{"index": 0, "text": text, "finish_reason": finish}]})


def _chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


USAGE = _event({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 3}})
STREAM = (HEAD_CHUNKED + _chunk(_event({"choices": [{"index": 0, "text": "", "finish_reason": None}]}))
          + _chunk(_tok("a") + _tok("b")) + _chunk(_tok("c", "length")) + _chunk(USAGE)
          + _chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")


class Scripted:
    """A loopback server answering each request with `pieces` (bytes or a float: sleep that long)."""

    def __init__(self, pieces) -> None:
        self.pieces, self.connections, self.requests = pieces, 0, []

    async def _handle(self, reader, writer) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                self.requests.append(json.loads(await reader.readexactly(length)))
                for piece in self.pieces:
                    if isinstance(piece, float):
                        await asyncio.sleep(piece)
                    elif piece == b"CLOSE":
                        writer.close()
                        return
                    else:
                        writer.write(piece)
                        await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def __aenter__(self):
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc) -> None:
        self.server.close()


def _one(pieces, timeout_s: float = 5.0) -> RequestTrace:
    async def go():
        async with Scripted(pieces) as url:
            async with httpx.AsyncClient(base_url=url, timeout=timeout_s) as client:
                trace = RequestTrace(index=0, prompt_index=0, send_s=0.0)
                await _one_request(client, {"prompt": "p", "max_tokens": 3, "stream": True}, trace)
                return trace
    return asyncio.run(go())


def test_framing_cut_anywhere_records_the_same_tokens():
    whole = _one([STREAM])
    assert whole.ok and whole.usage == {"prompt_tokens": 3, "completion_tokens": 3}
    assert whole.finish_reason == "length" and whole.empty_chunks == 1
    assert len(whole.chunk_times_s) == 4 and len(whole.token_times_s) == 4  # the empty chunk is a token event
    for cut in range(1, len(STREAM), 7):   # inside the head, a size line, a CRLF, a JSON line
        split = _one([STREAM[:cut], 0.002, STREAM[cut:]])
        assert (split.ok, split.usage, split.finish_reason, split.empty_chunks) == \
            (True, whole.usage, "length", 1), cut
        assert (len(split.chunk_times_s), len(split.token_times_s)) == (4, 4), cut


def test_a_token_time_is_the_time_of_the_read_that_brought_it():
    first, rest = HEAD_CHUNKED + _chunk(_tok("a") + _tok("b")), _chunk(_tok("c", "length")) + \
        _chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"
    trace = _one([first, 0.05, rest])
    a, b, c = trace.token_times_s
    assert a == b                     # one read: one arrival time, not a time after each parse
    # The later read: its own, later time. The server waits 50 ms between its two writes; a loaded host
    # that delays the first read shortens the gap the client sees by that delay, while times stamped
    # per parse would differ by microseconds: 20 ms tells them apart and leaves 30 ms for the host.
    assert c - b >= 0.02


def test_content_length_and_close_delimited_bodies():
    body = _tok("a") + _tok("b", "length") + b"data: [DONE]\n\n"
    sized = _one([b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body) + body])
    unterminated = _tok("a") + _tok("b", "length").rstrip(b"\n")   # the last line has no "\n"
    closed = _one([b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n" + unterminated, b"CLOSE"])
    assert sized.ok and len(sized.token_times_s) == 2 and sized.finish_reason == "length"
    assert closed.ok and len(closed.token_times_s) == 2 and closed.finish_reason == "length"


def test_an_error_status_keeps_the_servers_message():
    trace = _one([b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 13\r\n\r\nmodel loading"])
    assert trace.status == 503 and trace.error == "HTTP 503: b'model loading'" and not trace.ok


def test_a_server_closing_mid_stream_or_going_silent_fails_the_request_and_keeps_what_arrived():
    cut = _one([HEAD_CHUNKED + _chunk(_tok("a")), b"CLOSE"])
    assert not cut.ok and cut.error.startswith("HTTPStreamError") and len(cut.chunk_times_s) == 1
    silent = _one([HEAD_CHUNKED + _chunk(_tok("a")), 3.0], timeout_s=0.3)
    assert not silent.ok and silent.error.startswith("TimeoutError") and len(silent.chunk_times_s) == 1
    assert silent.done_s is not None


def test_bytes_that_are_not_utf8_are_replaced_as_a_text_decoder_would_not_a_crash():
    event = b'data: {"choices":[{"index":0,"text":"\xff","finish_reason":"length"}]}\n\n'
    trace = _one([HEAD_CHUNKED + _chunk(event) + _chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"])
    assert trace.ok and len(trace.token_times_s) == 1


def test_garbage_instead_of_json_is_an_error_not_a_token():
    trace = _one([HEAD_CHUNKED + _chunk(b"data: {not json\n\n") + b"0\r\n\r\n"])
    assert not trace.ok and trace.error.startswith("JSONDecodeError") and not trace.chunk_times_s


def test_closed_loop_reuses_one_keep_alive_connection_per_worker():
    async def go():
        scripted = Scripted([STREAM])
        async with scripted as url:
            bodies = [{"prompt": f"p{i}", "max_tokens": 3, "stream": True} for i in range(6)]
            traces = await drive(url, bodies, LoadPlan(n_requests=6, concurrency=2),
                                 WindowTracker(2, n_total=6), lambda _e: None)
            return scripted, traces
    scripted, traces = asyncio.run(go())
    assert all(t.ok and len(t.token_times_s) == 4 for t in traces)
    assert sorted(r["prompt"] for r in scripted.requests) == [f"p{i}" for i in range(6)]
    assert scripted.connections == 2


def test_every_chunk_with_a_choice_is_a_token_event_and_e2e_ends_at_the_closing_chunk():
    """As `vllm bench serve` counts them: an empty-text chunk (a token that decodes to "") is a token
    event whatever usage says, and the closing chunk with only `finish_reason` ends e2e."""
    from llem_harness.serving.report import to_records

    usage = _event({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}})
    trace = _one([HEAD_CHUNKED + _chunk(_tok("")), 0.05, _chunk(_tok("a") + _tok("")), 0.05,
                  _chunk(_tok("b")), 0.05, _chunk(_tok("", "length")) + _chunk(usage)
                  + _chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"])
    assert trace.ok and trace.finish_reason == "length" and trace.empty_chunks == 3
    first, a, empty, b, closing = trace.token_times_s
    assert a == empty and b - a >= 0.02 and closing - b >= 0.02  # 50 ms writes apart, less a delayed read
    (record,), itl = to_records([trace], [3], max_output_tokens=4)
    assert record.ttft_s == first - trace.send_s             # the first read, though its text is empty
    assert record.e2e_latency_s == closing - trace.send_s    # the response's end, not its last text
    assert record.tpot_s == (closing - first) / 3 and len(itl) == 4


def _stream_of(*events: bytes) -> bytes:
    return HEAD_CHUNKED + b"".join(_chunk(e) for e in events) + _chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"


def test_a_wrong_shaped_event_or_framing_fails_that_request_only():
    bad = [b"data: [1,2,3]\n\n", b"data: NaN\n\n", b'data: {"choices": 5}\n\n', b'data: "text"\n\n',
           _event({"choices": [], "usage": "lots"}), _event({"choices": [], "usage": {"completion_tokens": "3"}}),
           _event({"choices": [{"text": 7}]}), _event({"choices": [{"text": "a", "finish_reason": ["x"]}]})]
    for event in bad:
        trace = _one([_stream_of(_tok("a"), event, _tok("b", "length"))])
        assert not trace.ok and trace.error.startswith("BadEvent"), (event, trace.error)
        assert trace.done_s is not None
    for framing in (HEAD_CHUNKED + b"zz\r\n", HEAD_CHUNKED + b"-5\r\n",
                    b"HTTP/1.1 200 OK\r\ncontent-length: many\r\n\r\n"):
        trace = _one([framing])
        assert not trace.ok and trace.error.startswith("HTTPStreamError"), (framing, trace.error)


def test_one_bad_response_in_a_load_leaves_every_other_trace():
    """A server whose every third answer is `data: [1,2,3]`: those requests fail, the load completes."""
    async def go():
        answers = iter([STREAM, STREAM, _stream_of(b"data: [1,2,3]\n\n")] * 3)

        class Alternating(Scripted):
            pieces = property(lambda self: [next(answers)], lambda self, _value: None)  # one answer per request

        async with Alternating([]) as url:
            bodies = [{"prompt": f"p{i}", "max_tokens": 3, "stream": True} for i in range(9)]
            return await drive(url, bodies, LoadPlan(n_requests=9, concurrency=1), WindowTracker(1, n_total=9),
                               lambda _e: None)
    traces = asyncio.run(go())
    assert [t.ok for t in traces] == [True, True, False] * 3
    assert all(t.error.startswith("BadEvent") for t in traces if not t.ok)


def test_a_200_body_without_newlines_is_bounded_and_fails_its_request():
    from llem_harness.serving.http_stream import MAX_LINE_BYTES

    blob = b"x" * 65536
    pieces = [b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n"] + [blob] * (MAX_LINE_BYTES // len(blob) * 4)
    trace = _one(pieces)
    assert not trace.ok and "without a newline" in trace.error


def _one_plain(pieces) -> RequestTrace:
    async def go():
        async with Scripted(pieces) as url:
            async with httpx.AsyncClient(base_url=url, timeout=5.0) as client:
                trace = RequestTrace(index=0, prompt_index=0, send_s=0.0)
                await _one_request(client, {"prompt": "p", "max_tokens": 3, "stream": False}, trace)
                return trace
    return asyncio.run(go())


def test_a_non_streamed_response_of_the_wrong_shape_or_size_fails_that_request():
    from llem_harness.serving.http_stream import MAX_LINE_BYTES

    def plain(body: bytes) -> bytes:
        return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
    good = _one_plain([plain(json.dumps({"choices": [{"text": "abc", "finish_reason": "length"}],
                                         "usage": {"prompt_tokens": 3, "completion_tokens": 3}}).encode())])
    assert good.ok and good.usage["completion_tokens"] == 3 and good.finish_reason == "length"
    for body in (b"[1,2,3]", b'{"usage": "lots"}', b'{"choices": 5}'):
        trace = _one_plain([plain(body)])
        assert not trace.ok and trace.error.startswith("BadEvent"), (body, trace.error)
    huge = _one_plain([plain(b"x" * (MAX_LINE_BYTES + 10))])
    assert not huge.ok and "over" in huge.error
