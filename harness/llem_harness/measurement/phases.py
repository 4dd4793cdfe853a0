"""Prefill/decode time of a measured window: the union of every request's intervals per phase.

Why a union: engines that batch continuously (vLLM, TensorRT-LLM) or serve requests concurrently
run many requests' prefills and decodes at the same moment. Summing per-request intervals counts
the same joules once per request (prefill + decode could exceed the window's energy). Here each
phase is the set of instants when at least one request was in it, clipped to the window; an instant
when one request is in prefill while another decodes is given to prefill (`OVERLAP_ATTRIBUTION`),
so the two phases are disjoint and prefill + decode <= window, in time and in energy.

A request's prefill starts when the engine first scheduled it, where the engine says (vLLM,
TensorRT-LLM: requests beyond the batch limit wait in a queue, which is neither prefill nor
decode); `queue` spans are reported apart as `queue_time_s`.
"""
from __future__ import annotations

from typing import Callable, Iterable

from llenergymeasure.domain import PhaseEnergy

Interval = tuple[float, float]
OVERLAP_ATTRIBUTION = "prefill: an instant when any request is in prefill counts as prefill, decode is the rest"


def union(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, non-overlapping intervals covering the same instants (empty ones dropped)."""
    merged: list[list[float]] = []
    for a, b in sorted((a, b) for a, b in intervals if b > a):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged]


def subtract(base: list[Interval], cut: list[Interval]) -> list[Interval]:
    """Instants of `base` not in `cut` (both unions)."""
    out: list[Interval] = []
    for a, b in base:
        pieces = [(a, b)]
        for c, d in cut:
            pieces = [p for x, y in pieces for p in ((x, min(y, c)), (max(x, d), y)) if p[1] > p[0]]
        out.extend(pieces)
    return out


def clip(intervals: list[Interval], lo: float, hi: float) -> list[Interval]:
    return [(max(a, lo), min(b, hi)) for a, b in intervals if min(b, hi) > max(a, lo)]


def total_s(intervals: list[Interval]) -> float:
    return sum(b - a for a, b in intervals)


def split_phases(spans: list[tuple[float, float, str]], window: Interval) -> tuple[list[Interval], list[Interval], float]:
    """(prefill union, decode union minus prefill, overlap seconds), all inside `window`."""
    prefill = clip(union((a, b) for a, b, p in spans if p == "prefill"), *window)
    decode_all = clip(union((a, b) for a, b, p in spans if p == "decode"), *window)
    decode = subtract(decode_all, prefill)
    return prefill, decode, total_s(decode_all) - total_s(decode)


def phase_energy(spans: list[tuple[float, float, str]], window: Interval, sample_times: list[float],
                 integrate: Callable[[float, float], float | None], window_energy_j: float | None = None) -> PhaseEnergy:
    """Energy per phase: the power timeline integrated over each phase's disjoint intervals.

    `spans`, `window` and `sample_times` share one clock; `integrate(a, b)` is the joules of the
    power timeline between a and b. With `window_energy_j` (the counter's window energy) each phase
    gets that energy times its share of the timeline's window integral, so prefill + decode never
    exceeds the counter. Per-phase sample counts say how many power readings fell inside each
    phase: a phase shorter than the sampling period is interpolated, not observed.
    """
    if not spans:
        return PhaseEnergy(unavailable_reason="no prefill/decode intervals reported by the engine")
    prefill, decode, overlap = split_phases(spans, window)

    whole = integrate(*window) or 0.0
    scale = window_energy_j / whole if window_energy_j is not None and whole > 0 else 1.0

    def energy(parts: list[Interval]) -> float:
        return scale * sum(integrate(a, b) or 0.0 for a, b in parts)

    def samples(parts: list[Interval]) -> int:
        return sum(1 for t in sample_times if any(a <= t <= b for a, b in parts))

    queued = [(a, b) for a, b, p in spans if p == "queue"]  # reported apart: neither prefill nor decode
    return PhaseEnergy(method="timeline_integration", prefill_energy_j=energy(prefill), decode_energy_j=energy(decode),
                       prefill_time_s=total_s(prefill), decode_time_s=total_s(decode),
                       prefill_samples=samples(prefill), decode_samples=samples(decode), overlap_s=overlap,
                       overlap_attribution=OVERLAP_ATTRIBUTION,
                       queue_time_s=total_s(clip(union(queued), *window)) if queued else None)
