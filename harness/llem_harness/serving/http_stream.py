"""Streaming HTTP/1.1 for the load generator: every non-empty line of a response body is handed
over, with the time its bytes arrived, from inside the socket's data callback.

Why not httpx for the streams: with httpx each streamed token passes through h11's pure-Python
event machine, httpcore and httpx's decoders (30-100 us of client CPU per token,
bench/loadgen_capacity.py), so one client core could not follow a fast server, and a token's record
time included that parsing and any queue behind it. Here the arrival time is read once per socket
read, before any parsing, and shared by the lines that read completed; chunked framing, line
splitting and the caller's per-line work run in the same callback with no task switch per token.

Scope: plain `http://` (the harness starts its servers on 127.0.0.1), HTTP/1.1 with keep-alive (a
connection is reused once its response has been read to the end), chunked or Content-Length bodies
or a body closed by the server; lines end with "\n" ("\r\n" too: the caller strips). A server that
goes silent for `read_timeout_s` fails the request with TimeoutError; a broken response with
HTTPStreamError; no data is invented in either case. Every buffer is bounded: the head to 64 KiB,
a chunk size line to 4 KiB, a body line to `MAX_LINE_BYTES` (a 200 answer that never sends a newline
fails its request instead of growing the client's memory with every byte).
"""
from __future__ import annotations

import asyncio
import json
import time
from typing import Callable
from urllib.parse import urlsplit

OnLine = Callable[[bytes, float], bool]  # (non-empty line without "\n", arrival time.time()) -> True: stop
MAX_LINE_BYTES = 1 << 20  # one SSE event of a completion stream is far smaller, logprobs included
_HEX = frozenset(b"0123456789abcdefABCDEF")


class HTTPStreamError(Exception):
    """The server's response broke HTTP/1.1 framing, or the connection closed mid-response."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one response at a time, parsed as its bytes arrive."""

    def __init__(self, pool: "StreamPool") -> None:
        self.pool = pool
        self.transport = None
        self.closed = False
        self.last_rx_s = 0.0
        self._begin(None)

    def _begin(self, on_line: OnLine | None) -> None:
        self.on_line, self.status, self.error_body = on_line, None, bytearray()
        self.finished = asyncio.get_running_loop().create_future()
        self.raw, self.lines = bytearray(), bytearray()
        self.chunked, self.remaining, self.keep_alive = False, None, True
        self.chunk_left, self.need_crlf, self.in_trailers, self.stopped, self.body_done = 0, False, False, False, False

    # asyncio.Protocol
    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self.status is not None and not self.body_done and self.remaining is None and not self.chunked \
                and not self.finished.done():  # not after a failure: what is left is not read
            self._end_of_body(time.time())  # a body delimited by the connection's close
        self._fail(exc or HTTPStreamError("the server closed the connection before the response ended"))

    def data_received(self, data: bytes) -> None:
        now = self.last_rx_s = time.time()
        try:
            self.raw += data
            if self.status is None and not self._parse_head():
                return
            self._parse_body(now)
        except Exception as exc:  # noqa: BLE001 - a broken response or a failing line handler ends this request
            self._fail(exc)
            self.transport.abort()

    # parsing
    def _parse_head(self) -> bool:
        end = self.raw.find(b"\r\n\r\n")
        if end < 0:
            if len(self.raw) > 65536:
                raise HTTPStreamError("response head over 64 KiB")
            return False
        status_line, *header_lines = bytes(self.raw[:end]).decode("latin-1").split("\r\n")
        del self.raw[:end + 4]
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise HTTPStreamError(f"not an HTTP/1.x status line: {status_line[:80]!r}")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip().lower()
        self.status = int(parts[1])
        self.chunked = "chunked" in headers.get("transfer-encoding", "")
        if not self.chunked and "content-length" in headers:
            if not headers["content-length"].isdigit():
                raise HTTPStreamError(f"content-length is not a number: {headers['content-length'][:40]!r}")
            self.remaining = int(headers["content-length"])
        self.keep_alive = parts[0] == "HTTP/1.1" and headers.get("connection") != "close" \
            and (self.chunked or self.remaining is not None)
        return True

    def _parse_body(self, now: float) -> None:
        raw = self.raw
        if self.chunked:
            pos = 0
            while not self.body_done:
                if self.chunk_left:
                    take = min(self.chunk_left, len(raw) - pos)
                    if not take:
                        break
                    self._body(raw[pos:pos + take], now)
                    pos += take
                    self.chunk_left -= take
                    self.need_crlf = not self.chunk_left
                    continue
                eol = raw.find(b"\r\n", pos)
                if eol < 0:
                    if len(raw) - pos > 4096:
                        raise HTTPStreamError("chunk size line over 4 KiB")
                    break
                line, pos = raw[pos:eol], eol + 2
                if self.need_crlf:
                    if line:
                        raise HTTPStreamError("a chunk is longer than its declared size")
                    self.need_crlf = False
                elif self.in_trailers:
                    if not line:
                        self._end_of_body(now)
                else:
                    digits = bytes(line).split(b";", 1)[0].strip()
                    if not digits or not _HEX.issuperset(digits) or len(digits) > 16:
                        raise HTTPStreamError(f"not a chunk size: {bytes(line)[:40]!r}")
                    size = int(digits, 16)
                    self.chunk_left = size
                    self.in_trailers = size == 0
            del raw[:pos]
        elif self.remaining is not None:
            take = min(self.remaining, len(raw))
            self._body(raw[:take], now)
            self.remaining -= take
            del raw[:take]
            if not self.remaining:
                self._end_of_body(now)
        else:
            self._body(raw, now)
            raw.clear()

    def _body(self, piece, now: float) -> None:
        if self.status != 200:
            self.error_body += piece[:max(0, 400 - len(self.error_body))]
            return
        if self.stopped:
            return
        lines = self.lines
        lines += piece
        start = 0
        while True:
            nl = lines.find(b"\n", start)
            if nl < 0:
                break
            line, start = bytes(lines[start:nl]), nl + 1
            if line and self.on_line(line, now):  # an empty line ends an SSE event: nothing to record
                self.stopped = True
                self._resolve()
                break
        del lines[:start]
        if len(lines) > MAX_LINE_BYTES:
            raise HTTPStreamError(f"a body line over {MAX_LINE_BYTES} bytes without a newline")

    def _end_of_body(self, now: float) -> None:
        if self.status == 200 and self.lines and not self.stopped:
            self.on_line(bytes(self.lines), now)  # a last line without "\n"
        self.lines.clear()
        self.body_done = True
        self._resolve()
        if self.keep_alive and not self.closed:
            self.pool.idle.append(self)
        elif not self.closed:
            self.transport.close()

    def _resolve(self) -> None:
        """The caller's answer, fixed now: once back in the pool this connection serves another request."""
        if not self.finished.done():
            self.finished.set_result((self.status, bytes(self.error_body)))

    def _fail(self, exc: BaseException) -> None:
        if not self.finished.done():
            self.finished.set_exception(exc if isinstance(exc, Exception) else HTTPStreamError(str(exc)))
            self.finished.exception()  # retrieved: a request that stopped waiting does not log it


class StreamPool:
    """Keep-alive connections to one `http://host:port` server for streamed POSTs."""

    def __init__(self, base_url: str, read_timeout_s: float, connect_timeout_s: float = 10.0) -> None:
        url = urlsplit(base_url)
        if url.scheme != "http" or not url.hostname:
            raise ValueError(f"the streaming load generator speaks plain http:// only, not {base_url!r}")
        self.host, self.port, self.prefix = url.hostname, url.port or 80, url.path.rstrip("/")
        self.read_timeout_s, self.connect_timeout_s = read_timeout_s, connect_timeout_s
        self.idle: list[_Connection] = []

    async def _connection(self) -> _Connection:
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed:
                return conn
        loop = asyncio.get_running_loop()
        try:
            _transport, conn = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(self), self.host, self.port), self.connect_timeout_s)
        except asyncio.TimeoutError:  # not the builtin TimeoutError before Python 3.11
            raise TimeoutError(f"no connection to {self.host}:{self.port} within {self.connect_timeout_s:g} s") from None
        return conn

    async def post(self, path: str, body: dict, on_line: OnLine) -> tuple[int, bytes]:
        """POST `body` as JSON; every body line of a 200 answer goes to `on_line` as it arrives, until
        it returns True. Returns (status, the first 400 bytes of a non-200 body)."""
        payload = json.dumps(body, separators=(",", ":")).encode()
        conn = await self._connection()
        conn._begin(on_line)
        conn.last_rx_s = time.time()
        conn.transport.write(b"POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                             b"Accept: text/event-stream\r\nContent-Length: %d\r\n\r\n%s"
                             % ((self.prefix + path).encode(), self.host.encode(), self.port, len(payload), payload))
        try:
            return await self._wait(conn, conn.finished)
        except BaseException:
            conn.transport.abort()  # mid-response: this connection cannot carry another request
            raise

    async def _wait(self, conn: _Connection, fut: asyncio.Future):
        """Wait for `fut`; TimeoutError when no byte arrived for read_timeout_s (as httpx's read timeout)."""
        while True:
            silent_s = time.time() - conn.last_rx_s
            if silent_s >= self.read_timeout_s:
                raise TimeoutError(f"no data from the server for {self.read_timeout_s:g} s")
            done, _ = await asyncio.wait((fut,), timeout=self.read_timeout_s - silent_s)
            if done:
                return fut.result()

    async def __aenter__(self) -> "StreamPool":
        return self

    async def __aexit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for conn in self.idle:
            if not conn.closed:
                conn.transport.close()
        self.idle.clear()
