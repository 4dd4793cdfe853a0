"""Steady-state window: where the measured load is at its target, not ramping up or draining.

Definition (docs/methodology.md, "Steady state"):
- closed loop (concurrency C): opens at the first refill, the send that brings the in-flight count
  back to C after the first completion, so the first wave of C simultaneous cold prefills is outside
  the window; closes when, with no request left to send, the in-flight count first drops below C
  (the drain starts).
- open loop (Poisson rate): opens at the send of request number `ramp` (the arrival process has
  run for its ramp); closes at the last send (arrivals end, the drain starts).

`WindowTracker` is a pure state machine fed with send/done events. The load generator feeds it
live, so the energy counter is read at the edges as they happen; `window_from_trace` replays a
finished trace through the same machine (tests, and a check of the live edges).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class WindowTracker:
    target_concurrency: int | None  # closed loop; None = open loop
    ramp_sends: int = 1             # open loop: the window opens at this send
    n_total: int = 0                # sends planned (the tracker closes early via `close_arrivals`)
    in_flight: int = 0
    sent: int = 0
    arrivals_closed: bool = False
    start_s: float | None = None
    end_s: float | None = None

    def on_send(self, t_s: float) -> str | None:
        """Returns "start" when this send opens the window, "end" when it closes it (open loop)."""
        self.in_flight += 1
        self.sent += 1
        if self.sent >= self.n_total:
            self.arrivals_closed = True
        event = None
        if self.start_s is None:
            reached = (self.in_flight >= self.target_concurrency and self.sent > self.target_concurrency
                       if self.target_concurrency is not None else self.sent >= self.ramp_sends)
            if reached:
                self.start_s = t_s
                event = "start"
        if self.target_concurrency is None and self.arrivals_closed and self.end_s is None \
                and self.start_s is not None and t_s > self.start_s:
            self.end_s = t_s
            return "end"
        return event

    def on_done(self, t_s: float) -> str | None:
        """Returns "end" when this completion starts the drain (closed loop)."""
        self.in_flight -= 1
        if self.target_concurrency is not None and self.start_s is not None and self.end_s is None \
                and self.arrivals_closed and self.in_flight < self.target_concurrency:
            self.end_s = t_s
            return "end"
        return None

    def close_arrivals(self, t_s: float) -> str | None:
        """No more sends (duration cap or plan exhausted). Open loop: the window ends here."""
        self.arrivals_closed = True
        if self.start_s is not None and self.end_s is None and t_s > self.start_s:
            if self.target_concurrency is None or self.in_flight < self.target_concurrency:
                self.end_s = t_s
                return "end"
        return None


def window_from_trace(sends_s: list[float], dones_s: list[float | None], target_concurrency: int | None,
                      ramp_sends: int = 1) -> tuple[float | None, float | None]:
    """Replay a finished trace (send time and completion time per request) through the tracker.

    Completions at the same instant as a send are processed first (a slot frees before it refills).
    A request without a completion (failed before answering) is treated as done at its send.
    """
    events = [(t, 1, "send") for t in sends_s]
    events += [(d, 0, "done") if d is not None else (s, 2, "done") for s, d in zip(sends_s, dones_s)]
    events.sort(key=lambda e: (e[0], e[1]))
    tracker = WindowTracker(target_concurrency, ramp_sends, n_total=len(sends_s))
    for t, _order, kind in events:
        (tracker.on_send if kind == "send" else tracker.on_done)(t)
    return tracker.start_s, tracker.end_s


@dataclass
class LiveEdges:
    """The steady-state window's edges read inside the load's event loop: only the counters there, the rest elsewhere.

    `on_edge("start")` reads the edge (every meter's counter and the clocks) and hands the rest of
    the window's opening (sampler thread, contention, stall watch) to a worker thread that exists
    before the load; `on_edge("end")` reads the end edge only, and hands contention's end readings to
    that thread. `finish()`, called after the load, closes the session's "steady_state" window at the
    end edge — its samples are those between the edges, so none taken in the drain — and builds the
    window (files included). `stalls_s` records how long each edge held the event loop
    (bench/serving_edge_stall.py).
    """

    session: Any
    emit: Any = None
    end_edge: Any = None
    stalls_s: list[float] = field(default_factory=list)
    _worker: Any = None
    _started: Any = None
    _ended: Any = None

    def __post_init__(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llem-window")
        self._worker.submit(lambda: None).result()  # the thread exists before the load starts

    def on_edge(self, kind: str) -> None:
        import time

        t = time.perf_counter()
        if kind == "start":
            edge = self.session.read_edge(deferred=True)
            self._started = self._worker.submit(self.session.start_window, _no_sync, edge, STEADY_STATE)
        elif self.end_edge is None:
            if self._started is not None and not self._started.done():
                self._started.result()  # the end came before the start finished (a window of milliseconds)
            self.end_edge = self.session.read_edge(deferred=True)
            # Contention's end readings (/proc, process lists) at the edge, not after the drain; on the
            # window thread, so the event loop pays only the hand-over.
            self._ended = self._worker.submit(self.session.mark_window_end)
        else:
            return
        if self.emit is not None:
            self.emit("stage", stage="measuring", window="open" if kind == "start" else "closed")
        self.stalls_s.append(time.perf_counter() - t)

    def finish(self):
        try:
            for edge in (self._started, self._ended):
                if edge is not None:
                    edge.result()
            return self.session.stop_window(_no_sync, self.end_edge)
        finally:
            self._worker.shutdown(wait=True)


STEADY_STATE = "steady_state"  # the run window's name in serving


def _no_sync() -> None:
    """Serving's work runs in the server process: there is nothing to synchronise here."""
