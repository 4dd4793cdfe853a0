"""Stalls of the harness process inside the measured window: detected, never silently published.

Why: a process that is not running (SIGSTOP, Ctrl-Z on its group, a suspended VM, a host so loaded
that it is not scheduled) keeps its window open while no work is done: the window's throughput
falls and its energy includes the stall. The harness avoids every stall of its own making (its
progress output never waits for llem: progress.py); what it cannot avoid is detected here.

How: a thread wakes every `PERIOD_S` and measures, on the monotonic clock (it runs on while a
process is stopped), how long it really slept. A wake-up later than `STALL_S` means the process
did not run for that long. Each stall is kept with its wall-clock span, so the part inside the
window's edges is what counts (serving's end edge is read before the watch stops).
"""
from __future__ import annotations

import threading
import time

PERIOD_S = 0.1
STALL_S = 1.0  # late by this much: the process did not run (a busy host delays a wake-up by milliseconds)


class StallWatch:
    def __init__(self, period_s: float = PERIOD_S, stall_s: float = STALL_S):
        self.period_s, self.stall_s = period_s, stall_s
        self.stalls: list[tuple[float, float]] = []  # (wall start, wall end) of each stall
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="llem-stall-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last = time.monotonic()
        while True:
            stopped = self._stop.wait(self.period_s)
            now = time.monotonic()
            if now - last - self.period_s > self.stall_s:  # also when stop() came first after a stall
                end = time.time()
                self.stalls.append((end - (now - last), end))
            if stopped:
                return
            last = now

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None

    def stalled_s(self, start_wall_s: float, end_wall_s: float) -> float:
        """Seconds of stall inside [start_wall_s, end_wall_s]."""
        return sum(max(0.0, min(b, end_wall_s) - max(a, start_wall_s)) for a, b in self.stalls)
