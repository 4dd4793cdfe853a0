"""Load generator: drives an OpenAI-compatible /v1/completions endpoint over HTTP.

Closed loop (concurrency C): C workers, each sends its next request when the previous one ends.
Open loop (request_rate): each request is sent at its seeded offset (gamma/Poisson arrivals, arrivals.py),
whatever is in flight. Every streamed chunk that carries a choice is a token event, its text empty or
not (a token can decode to "", and the closing chunk may carry only `finish_reason`), as `vllm bench
serve` counts them: TTFT is the first such event, e2e ends at the last.
Per request it records send time, every token's arrival time (streaming), the completion time,
HTTP status and the server's usage fields when it sends them. Times are unix seconds
(time.time(), the clock of the measurement window). A streamed response is read by http_stream.py
(the OpenAI stream is `data: <json>` lines): a token's time is when its bytes came off the socket,
and one client core keeps up with a fast server (bench/loadgen_capacity.py, docs/serving.md);
non-streamed requests and the tokenize endpoint go through httpx.
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Callable

import httpx

from .http_stream import MAX_LINE_BYTES, HTTPStreamError, StreamPool
from .window import WindowTracker


@dataclass
class RequestTrace:
    index: int
    prompt_index: int
    send_s: float
    token_times_s: list[float] = field(default_factory=list)
    done_s: float | None = None
    status: int | None = None
    error: str | None = None
    usage: dict | None = None
    finish_reason: str | None = None
    chunk_times_s: list[float] = field(default_factory=list)  # every streamed chunk carrying a choice
    empty_chunks: int = 0                                       # of those, chunks without text

    @property
    def ok(self) -> bool:
        return self.error is None and self.status == 200


@dataclass
class LoadPlan:
    n_requests: int
    concurrency: int | None = None          # closed loop
    send_offsets_s: list[float] | None = None  # open loop
    duration_cap_s: float | None = None
    request_timeout_s: float = 600.0


async def _one_request(client: httpx.AsyncClient, body: dict, trace: RequestTrace,
                       streams: StreamPool | None = None) -> None:
    """One request into `trace`; a streamed one through `streams` (a pool of its own when None)."""
    try:
        if not body.get("stream"):
            async with client.stream("POST", "/v1/completions", json=body) as response:
                trace.status = response.status_code
                raw = bytearray()
                async for piece in response.aiter_bytes():  # bounded, as a streamed body line
                    raw += piece
                    if len(raw) > MAX_LINE_BYTES:
                        raise HTTPStreamError(f"a response body over {MAX_LINE_BYTES} bytes")
            text = raw.decode("utf-8", "replace")
            if response.status_code != 200:
                trace.error = f"HTTP {response.status_code}: {text[:200]}"
                return
            payload = _decode_json(text)
            if not isinstance(payload, dict):
                raise BadEvent(f"the response is not a JSON object: {text[:80]!r}")
            trace.usage = checked_usage(payload.get("usage"))
            trace.finish_reason = checked_choices(payload.get("choices"))[0].get("finish_reason") \
                if payload.get("choices") else None
            return
        pool = streams or StreamPool(str(client.base_url), read_timeout_s=client.timeout.read or 600.0)
        try:
            trace.status, error_body = await pool.post("/v1/completions", body, _StreamRecorder(trace))
        finally:
            if streams is None:
                pool.close()
        if trace.status != 200:
            trace.error = f"HTTP {trace.status}: {error_body[:200]!r}"
            return
    except Exception as exc:  # noqa: BLE001 - one bad response (broken framing, a wrong-shaped event, a
        # timeout, a refused connection) fails this request only; the load and every other trace go on
        trace.error = f"{type(exc).__name__}: {exc}"
    finally:
        trace.done_s = time.time()


_decode_json = json.JSONDecoder().decode  # json.loads without its per-call checks (same decoder)


class BadEvent(HTTPStreamError):
    """A well-formed JSON event of the wrong shape (not an object, choices not a list, usage not an
    object or its counts not integers): this request fails, the load goes on."""


def checked_choices(choices) -> list:
    if choices is None:
        return []
    if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
        raise BadEvent(f"'choices' is not a list of objects: {str(choices)[:80]!r}")
    for choice in choices:
        for name in ("text", "finish_reason"):
            if not isinstance(choice.get(name), (str, type(None))):
                raise BadEvent(f"a choice's {name!r} is not a string: {str(choice.get(name))[:80]!r}")
    return choices


def checked_usage(usage) -> dict | None:
    if usage is None:
        return None
    if not isinstance(usage, dict):
        raise BadEvent(f"'usage' is not an object: {str(usage)[:80]!r}")
    for name in ("completion_tokens", "prompt_tokens"):
        value = usage.get(name)
        if value is not None and (type(value) is not int or value < 0):
            raise BadEvent(f"usage.{name} is not a token count: {str(value)[:80]!r}")
    return usage


class _StreamRecorder:
    """Records one SSE line of a streamed completion into the trace, at the time its bytes arrived.

    Called from the socket's data callback (http_stream.py) with that read's time: the record time
    of a token is when its bytes came off the socket, not when parsing them finished. Returns True
    at `data: [DONE]` (the stream's end: nothing after it is read into the trace).
    """

    __slots__ = ("trace",)

    def __init__(self, trace: RequestTrace) -> None:
        self.trace = trace

    def __call__(self, line: bytes, now: float) -> bool:
        if not line.startswith(b"data:"):
            return False
        data = line[5:].strip()
        if data == b"[DONE]":
            return True
        chunk = _decode_json(data.decode("utf-8", "replace"))
        if not isinstance(chunk, dict):
            raise BadEvent(f"an event that is not a JSON object: {data[:80]!r}")
        trace = self.trace
        usage = checked_usage(chunk.get("usage"))
        if usage:
            trace.usage = usage
        choices = checked_choices(chunk.get("choices"))
        if choices:  # a token event, its text empty or not (as vllm bench serve counts them)
            trace.token_times_s.append(now)
            trace.chunk_times_s.append(now)
            if not any(choice.get("text") for choice in choices):
                trace.empty_chunks += 1
            for choice in choices:
                if choice.get("finish_reason"):
                    trace.finish_reason = choice["finish_reason"]
        return False


async def drive(base_url: str, bodies: list[dict], plan: LoadPlan, tracker: WindowTracker,
                on_edge: Callable[[str], None]) -> list[RequestTrace]:
    """Send `plan.n_requests` requests (body i = bodies[i % len(bodies)]); call on_edge("start"/"end")
    the moment the window tracker opens or closes the steady-state window."""
    traces: list[RequestTrace] = []
    timeout = httpx.Timeout(plan.request_timeout_s, connect=10.0)
    limits = httpx.Limits(max_connections=max(plan.concurrency or 0, 64))

    def edge(event: str | None) -> None:
        if event:
            on_edge(event)

    def cap_reached() -> bool:
        return plan.duration_cap_s is not None and time.time() - t0 >= plan.duration_cap_s

    async with httpx.AsyncClient(base_url=base_url, timeout=timeout, limits=limits) as client, \
            StreamPool(base_url, read_timeout_s=plan.request_timeout_s) as streams:
        t0 = time.time()  # once the client exists: its set-up (SSL context) must not shift the schedule

        async def send(i: int) -> None:
            trace = RequestTrace(index=i, prompt_index=i % len(bodies), send_s=time.time())
            traces.append(trace)
            edge(tracker.on_send(trace.send_s))
            await _one_request(client, bodies[trace.prompt_index], trace, streams)
            edge(tracker.on_done(trace.done_s))

        if plan.concurrency is not None:
            counter = iter(range(plan.n_requests))

            async def worker() -> None:
                for i in counter:
                    if cap_reached():
                        edge(tracker.close_arrivals(time.time()))
                        return
                    await send(i)

            await asyncio.gather(*(worker() for _ in range(plan.concurrency)))
        else:
            tasks = []
            for i, offset in enumerate(plan.send_offsets_s[:plan.n_requests]):
                delay = t0 + offset - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                if cap_reached():
                    edge(tracker.close_arrivals(time.time()))
                    break
                tasks.append(asyncio.create_task(send(i)))
            await asyncio.gather(*tasks)
    return sorted(traces, key=lambda t: t.index)

