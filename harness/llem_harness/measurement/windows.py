"""Named windows: the one primitive every measured span of a run is built on.

A window is a name and two edges. An edge is either read at an instant — every energy meter's
cumulative counter (GPUs and RAPL zones alike, through the device layer), the device clock and unix
time — or placed at an instant after the fact (no counter was read then, so its energy can only
come from the power timeline). The timeline is the sampler thread: it runs while any window is
open, and a window's samples are those between its edges, asked of the sampler (`between`).

Every span llem measures is a use of it:
- idle power before the model loads and with it loaded (idle_power.py: windows "pre_load_idle",
  "loaded_idle");
- the run window (session.py): offline, "run" between synchronised batch edges; serving,
  "steady_state", whose edges are read inside the load's event loop (`read_edge(deferred=True)`: the
  counters and clocks only) and handed to `begin_window`/`end_window` on another thread;
- the prefill and decode phases (phases.py via session.phase_energy): placed windows inside the run
  window, whose energy is the timeline integrated between their edges.

Why one primitive: a window opened by one mechanism and closed by another (three existed: the
session's, serving's deferred edges, the phase timeline) let their rules drift apart — which samples
belong to a window, which clock an edge is on, whether RAPL is read at the edge. Here an edge is
read one way, and a window's samples are chosen one way.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from .devices import EnergyMeter, EnergyReading
from .sampler import Sampler, Tick


@dataclass(frozen=True)
class Edge:
    """One edge of a window: the device clock, unix time and, when read, every meter's counter."""

    clock_s: float                      # device seconds (backend.clock(): trace time under replay)
    wall_s: float                       # unix seconds
    readings: dict[str, EnergyReading] = field(default_factory=dict)  # meter_id -> reading; {} if placed
    read: bool = True                   # False: placed after the fact, no counter behind it
    deferred: bool = False              # read inside a latency-critical loop: no synchronous sample beside it

    def reading(self, meter: EnergyMeter) -> EnergyReading:
        """This edge's reading of `meter` (a placed edge has none: the reason says so)."""
        return self.readings.get(meter.meter_id) or EnergyReading(None, "no counter reading at a placed window edge")


@dataclass
class Window:
    name: str
    start: Edge
    end: Edge | None = None
    edge_samples: list[Tick] = field(default_factory=list)  # the samples its edges took (the end's follows the edge)

    @property
    def duration_s(self) -> float:
        """Device seconds between the edges (trace seconds under replay)."""
        if self.end is None:
            raise ValueError(f"window {self.name!r} is still open")
        return self.end.clock_s - self.start.clock_s

    def readings(self, meters: list) -> tuple[list[EnergyReading], list[EnergyReading]]:
        """The start and end readings of `meters`, in their order."""
        if self.end is None:
            raise ValueError(f"window {self.name!r} is still open")
        return [self.start.reading(m) for m in meters], [self.end.reading(m) for m in meters]


class Windows:
    """Named windows over one set of meters, one clock and one timeline.

    `begin_window(name)` / `end_window(name)` read the edges now, or take edges read earlier
    (`read_edge`); `placed(name, t0, t1)` builds a window over a span of the past. The timeline runs
    while at least one window is open; an edge read now (not deferred) also takes a sample of its own.
    """

    def __init__(self, clock: Callable[[], float], meters: list[EnergyMeter], timeline: Sampler | None):
        self.clock = clock
        self.meters = list(meters)
        self.timeline = timeline
        self._open: dict[str, Window] = {}

    def read_edge(self, deferred: bool = False) -> Edge:
        """Every meter's counter and both clocks, nothing else: cheap enough for an event loop."""
        readings = {m.meter_id: m.read_energy() for m in self.meters}
        return Edge(self.clock(), time.time(), readings, deferred=deferred)

    def begin_window(self, name: str, edge: Edge | None = None) -> Window:
        if name in self._open:
            raise ValueError(f"window {name!r} is already open")
        edge = edge if edge is not None else self.read_edge()
        window = self._open[name] = Window(name, edge)
        if self.timeline is not None:
            if not edge.deferred:
                window.edge_samples.append(self.timeline.sample_now())
            if len(self._open) == 1:
                self.timeline.start()
        return window

    def end_window(self, name: str, edge: Edge | None = None) -> Window:
        window = self._open.pop(name, None)
        if window is None:
            raise ValueError(f"window {name!r} is not open")
        window.end = edge if edge is not None else self.read_edge()
        if self.timeline is not None:
            if not window.end.deferred:  # taken after the counters were read: it belongs to the window all the same
                window.edge_samples.append(self.timeline.sample_now())
            if not self._open:
                self.timeline.stop()
        return window

    def placed(self, name: str, start_clock_s: float, end_clock_s: float) -> Window:
        """A window over a past span of the timeline: no counters were read at its edges."""
        return Window(name, Edge(start_clock_s, float("nan"), read=False),
                      Edge(end_clock_s, float("nan"), read=False))

    def ticks(self, window: Window) -> list[Tick]:
        """The timeline's samples between the window's edges, and the samples its edges took."""
        if self.timeline is None or window.end is None:
            return []
        inside = self.timeline.between(window.start.clock_s, window.end.clock_s)
        extra = [tk for tk in window.edge_samples if all(tk is not other for other in inside)]
        return sorted(inside + extra, key=lambda tk: tk.t_s)

    def errors(self, window: Window) -> list[str]:
        """The timeline's read errors between the window's edges."""
        if self.timeline is None or window.end is None:
            return []
        return self.timeline.errors_between(window.start.clock_s, window.end.clock_s)

    def close(self) -> None:
        self._open.clear()
        if self.timeline is not None:
            self.timeline.stop()
