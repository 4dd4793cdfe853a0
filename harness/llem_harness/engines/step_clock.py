"""Per-step timestamps that do not disturb the measured workload.

A decoding loop calls `mark()` once per step, right after the step's work was issued.

- CPU (`HostStepClock`): the step's work is done when the call returns (no device queue), so
  perf_counter at that moment is when the token was ready; nothing else is added.
- CUDA (`CudaEventStepClock`): kernels are queued asynchronously. A host synchronise per step
  would stop the host from queueing the next step while the current one runs, making the measured
  workload slower than the one users run. Instead each step records a CUDA event on the current
  stream (no synchronise); after the batch's closing synchronise, each event's GPU time is read
  relative to an origin event whose host time is known. The origin is recorded first, then the
  batch's one opening synchronise waits for it (and all earlier work), then the host clock is read
  (`anchor`): the origin executed just before that reading. Read the other way round (clock, then
  record), the origin sits after the host reading by the record call and whatever the queue still
  held, and every TTFT/ITL is shifted by that. Events are allocated once and reused, so a step costs
  one `cudaEventRecord`.

The batch edge is one sequence for both clocks (`open_batch`): begin, synchronise, read the clock.
"""
from __future__ import annotations

import time
from typing import Any


class HostStepClock:
    """perf_counter per step (CPU devices)."""

    def __init__(self) -> None:
        self._times: list[float] = []

    def begin(self) -> None:
        self._times = []

    def anchor(self, start_s: float) -> None:
        """Nothing to anchor: host times are read directly."""

    def mark(self) -> None:
        self._times.append(time.perf_counter())

    def times_s(self) -> list[float]:
        """Call after the batch's closing synchronise."""
        return list(self._times)


class CudaEventStepClock:
    """A CUDA event per step, read after the batch (no host synchronise inside the decoding loop)."""

    def __init__(self, torch: Any, expected_steps: int) -> None:
        self._torch = torch
        self._pool = [torch.cuda.Event(enable_timing=True) for _ in range(expected_steps + 1)]
        self._used = 0
        self._start_s = 0.0

    def _event(self, i: int) -> Any:
        while i >= len(self._pool):  # more steps than expected: grow (creating an event queues nothing)
            self._pool.append(self._torch.cuda.Event(enable_timing=True))
        return self._pool[i]

    def begin(self) -> None:
        """Record the origin event: before the batch's opening synchronise (`open_batch`)."""
        self._event(0).record()
        self._used = 1

    def anchor(self, start_s: float) -> None:
        """`start_s`: perf_counter read right after the opening synchronise, which the origin preceded."""
        self._start_s = start_s

    def mark(self) -> None:
        self._event(self._used).record()
        self._used += 1

    def times_s(self) -> list[float]:
        """Call after the batch's closing synchronise: every event has completed, reading waits for nothing."""
        origin = self._pool[0]
        return [self._start_s + origin.elapsed_time(self._pool[i]) / 1000.0 for i in range(1, self._used)]


def open_batch(clock: HostStepClock | CudaEventStepClock, synchronize) -> float:
    """The batch's opening edge: record the origin, synchronise once, then read the host clock."""
    clock.begin()
    synchronize()
    start_s = time.perf_counter()
    clock.anchor(start_s)
    return start_s


def step_clock(device: str, torch: Any, expected_steps: int) -> HostStepClock | CudaEventStepClock:
    return CudaEventStepClock(torch, expected_steps) if device == "cuda" else HostStepClock()
