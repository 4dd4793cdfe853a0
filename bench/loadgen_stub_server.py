"""A local OpenAI-compatible streaming server for bench/loadgen_capacity.py: a benchmark fixture.

It answers `POST /v1/completions` with `stream: true` the way vLLM does (HTTP/1.1 chunked transfer,
one `data: {...}` SSE event per token with `choices[0].text`, the last one with `finish_reason`,
then a usage event when `stream_options.include_usage` is set, then `data: [DONE]`; with `stream: false`
one JSON completion with usage after all the tokens' time), so the load
generator's whole path (HTTP, SSE framing, JSON, bookkeeping) is exercised. No model: each token
event is a pre-encoded byte string, so the server costs a few microseconds per token and the client
is what the benchmark measures.

Request fields beyond the OpenAI ones: `stub_itl_s`, the gap between two tokens of one stream
(0: as fast as the socket takes them; a positive gap paces each stream on an absolute schedule,
so a late token is sent as soon as possible, never pushing the next ones back); `stub_whole_after_s`:
wait that long, then send the whole response in one write (a stalled server, as the load generator's
bunched-stream warning sees it).

Timestamp error: the server records `time.time()` right before each token event is handed to the
socket, per prompt. `GET /sendlog` returns and clears `{prompt: [send_s, ...]}`; the client's record
of the same token minus its send time (same host clock) is an upper bound on the client's timestamp
error (it includes the loopback transfer and any wait in the client's socket buffer).

    python bench/loadgen_stub_server.py --port 0 [--cpus 1]    # prints "PORT <n>" once listening
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import time

_HEAD_OK = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
            b"transfer-encoding: chunked\r\n\r\n")


def _http_chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def _event(obj) -> bytes:
    return _http_chunk(b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n")


def _token_event(finish_reason: str | None) -> bytes:
    """As vLLM's completion chunk (fields it sends); id/created fixed so the bytes are built once."""
    return _event({"id": "cmpl-0123456789abcdef0123456789abcdef", "object": "text_completion",
                   "created": 1767225600, "model": "stub",
                   "choices": [{"index": 0, "text": " tok", "logprobs": None,
                                "finish_reason": finish_reason, "stop_reason": None}]})


TOKEN = _token_event(None)
LAST_TOKEN = _token_event("length")
DONE = _http_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"


class StubProtocol(asyncio.Protocol):
    """HTTP/1.1 with keep-alive; one request at a time per connection (as httpx and aiohttp send)."""

    sendlog: dict[str, list[float]] = {}

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.buffer = b""
        self.busy = False
        self.can_write = asyncio.Event()
        self.can_write.set()

    def pause_writing(self) -> None:
        self.can_write.clear()

    def resume_writing(self) -> None:
        self.can_write.set()

    def connection_lost(self, exc) -> None:
        self.can_write.set()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self._next()

    def _next(self) -> None:
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return
        head = self.buffer[:head_end].decode("latin-1")
        request_line, *headers = head.split("\r\n")
        length = 0
        for line in headers:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        end = head_end + 4 + length
        if len(self.buffer) < end:
            return
        body, self.buffer = self.buffer[head_end + 4:end], self.buffer[end:]
        method, path = request_line.split(" ")[:2]
        self.busy = True
        asyncio.ensure_future(self._answer(method, path, body))

    def _plain(self, status: str, payload: bytes) -> None:
        self.transport.write(b"HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                             % (status.encode(), len(payload), payload))

    async def _answer(self, method: str, path: str, body: bytes) -> None:
        try:
            if method == "GET" and path == "/sendlog":
                self._plain("200 OK", json.dumps(StubProtocol.sendlog).encode())
                StubProtocol.sendlog = {}
            elif method == "GET" and path in ("/health", "/v1/models"):
                self._plain("200 OK", b'{"data":[{"id":"stub"}]}')
            elif method == "POST" and path == "/v1/completions":
                await self._stream(json.loads(body))
            else:
                self._plain("404 Not Found", b'{"error":"not found"}')
        finally:
            self.busy = False
            if self.buffer and not self.transport.is_closing():
                self._next()

    async def _stream(self, request: dict) -> None:
        n_tokens = int(request.get("max_tokens") or 16)
        itl_s = float(request.get("stub_itl_s") or 0.0)
        if request.get("stream") is False:  # one JSON answer once every token is "generated"
            await asyncio.sleep(itl_s * n_tokens)
            self._plain("200 OK", json.dumps({
                "id": "cmpl-0", "object": "text_completion", "created": 1767225600, "model": "stub",
                "choices": [{"index": 0, "text": " tok" * n_tokens, "finish_reason": "length"}],
                "usage": {"prompt_tokens": 4, "completion_tokens": n_tokens, "total_tokens": 4 + n_tokens}}).encode())
            return
        sends = StubProtocol.sendlog.setdefault(str(request.get("prompt")), [])
        write, now = self.transport.write, time.time
        if request.get("stub_whole_after_s") is not None:
            await asyncio.sleep(float(request["stub_whole_after_s"]))
            parts = [TOKEN] * (n_tokens - 1) + [LAST_TOKEN]
            if (request.get("stream_options") or {}).get("include_usage"):
                parts.append(_usage_event(n_tokens))
            write(_HEAD_OK + b"".join(parts) + DONE)
            return
        write(_HEAD_OK)
        t0 = now()
        for k in range(n_tokens):
            if itl_s:
                delay = t0 + k * itl_s - now()
                if delay > 0:
                    await asyncio.sleep(delay)
            if not self.can_write.is_set():
                await self.can_write.wait()
                if self.transport.is_closing():
                    return
            sends.append(now())
            write(LAST_TOKEN if k == n_tokens - 1 else TOKEN)
            if not itl_s and k % 64 == 63:
                await asyncio.sleep(0)  # let other streams and the reader run
        if (request.get("stream_options") or {}).get("include_usage"):
            write(_usage_event(n_tokens))
        write(DONE)


def _usage_event(n_tokens: int) -> bytes:
    return _event({"id": "cmpl-0", "object": "text_completion", "created": 1767225600, "model": "stub",
                   "choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": n_tokens,
                                            "total_tokens": 4 + n_tokens}})


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(StubProtocol, "127.0.0.1", port, backlog=1024)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cpus", default="", help="comma-separated CPU ids to pin this process to")
    args = parser.parse_args()
    if args.cpus:
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
    try:
        asyncio.run(serve(args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
