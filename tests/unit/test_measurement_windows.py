"""The named-window primitive (measurement/windows.py) on a replayed NVML trace and a fake RAPL tree.

Both are fakes for hardware this machine lacks (documented in tests/fixtures/traces/README.md and
in devices/rapl.py); the sampler thread and the clocks are real.
"""
from __future__ import annotations

import ast
import threading
from pathlib import Path

import pytest

from _measurement_helpers import TRACES, counter_energy_bounds
from llem_harness.measurement.devices.rapl import cpu_energy, open_rapl
from llem_harness.measurement.devices.replay import ReplayBackend
from llem_harness.measurement.energy import window_energy
from llem_harness.measurement.sampler import Sampler
from llem_harness.measurement.windows import Windows

HARNESS = Path(__file__).resolve().parents[2] / "harness" / "llem_harness"


def _windows(speed: float = 10.0, zones=()) -> tuple[ReplayBackend, Windows]:
    backend = ReplayBackend.from_file(TRACES / "two_gpu_counter.jsonl", speed=speed)
    devices = backend.devices()
    return backend, Windows(backend.clock, [*devices, *zones], Sampler(backend, devices, period_ms=100))


def _wait_until(backend: ReplayBackend, trace_t_s: float) -> None:
    backend.wait(threading.Event(), trace_t_s - backend.clock())


def test_a_window_is_its_edges_counters_and_only_the_samples_between_them():
    backend, windows = _windows()
    devices = backend.devices()
    _wait_until(backend, 6.0)          # past the idle part: 300 W + 200 W from here on
    start_before = backend.clock()
    windows.begin_window("run")
    start_after = backend.clock()
    _wait_until(backend, 12.0)
    inner = windows.begin_window("inner")   # two windows open at once share one timeline
    _wait_until(backend, 14.0)
    inner = windows.end_window("inner")
    assert windows.timeline.running  # "run" is still open: the timeline runs on
    _wait_until(backend, 16.0)
    end_before = backend.clock()
    run = windows.end_window("run")
    end_after = backend.clock()
    assert not windows.timeline.running  # the last window closed: the timeline stopped
    windows.close()

    ticks = windows.ticks(run)
    # An edge read now takes a sample of its own; the end's follows the counters, and is the window's too.
    assert ticks[0].forced and ticks[-1].forced and ticks[-1] is run.edge_samples[-1]
    assert ticks[-1].t_s > run.end.clock_s
    assert all(run.start.clock_s <= tk.t_s <= run.end.clock_s for tk in ticks[:-1])
    assert len(ticks) == len(windows.timeline.snapshot())  # the timeline ran only while "run" was open
    inner_ticks = windows.ticks(inner)
    assert set(map(id, inner_ticks)) < set(map(id, ticks))
    assert all(inner.start.clock_s <= tk.t_s <= inner.end.clock_s for tk in inner_ticks[:-1])
    start, end = run.readings(devices)
    energy, _ = window_energy(devices, start, end, ticks, run.start.clock_s, run.end.clock_s, None)
    assert energy.method == "counter"
    # The counters cover a span the clock reads around each edge bound, whatever a loaded host delays.
    low_j, high_j = counter_energy_bounds(500.0, (end_before - start_after, end_after - start_before))
    assert low_j <= energy.gpu_energy_raw_j <= high_j
    assert start_before <= run.start.clock_s <= start_after and end_before <= run.end.clock_s <= end_after
    assert run.end.wall_s > run.start.wall_s


def test_a_deferred_end_edge_keeps_the_drain_out_of_the_window():
    """Serving reads its end edge in the event loop and closes the window after the drain."""
    backend, windows = _windows()
    _wait_until(backend, 6.0)
    windows.begin_window("steady_state", windows.read_edge(deferred=True))
    _wait_until(backend, 10.0)
    end = windows.read_edge(deferred=True)
    _wait_until(backend, 14.0)   # the drain: the timeline still samples
    window = windows.end_window("steady_state", end)
    windows.close()
    ticks = windows.ticks(window)
    assert window.end is end and window.duration_s == pytest.approx(end.clock_s - window.start.clock_s)
    assert ticks and not any(tk.forced for tk in ticks)  # no synchronous sample beside a deferred edge
    assert max(tk.t_s for tk in ticks) <= end.clock_s
    assert max(tk.t_s for tk in windows.timeline.snapshot()) > end.clock_s + 2.0  # the drain was sampled


def test_a_placed_window_has_no_counters_and_integrates_the_timeline():
    """A phase: a window placed inside the run window after the fact."""
    backend, windows = _windows()
    devices = backend.devices()
    _wait_until(backend, 6.0)
    windows.begin_window("run")
    _wait_until(backend, 12.0)
    run = windows.end_window("run")
    placed = windows.placed("prefill", run.start.clock_s + 1.0, run.start.clock_s + 3.0)
    windows.close()
    start, end = placed.readings(devices)
    assert all(r.energy_mj is None and "placed" in r.unavailable_reason for r in start + end)
    energy, _ = window_energy(devices, start, end, windows.ticks(run), placed.start.clock_s, placed.end.clock_s, None)
    assert energy.method == "integrated_instant_power"
    assert energy.gpu_energy_raw_j == pytest.approx(500.0 * 2.0, rel=0.03)


def test_cpu_zones_are_read_at_the_edges_like_gpu_counters_and_wraps_between_edges_count(tmp_path):
    zone_dir = tmp_path / "intel-rapl:0"
    zone_dir.mkdir()
    (zone_dir / "name").write_text("package-0\n")
    (zone_dir / "max_energy_range_uj").write_text("1000000\n")
    energy_file = zone_dir / "energy_uj"
    energy_file.write_text("900000\n")
    zones = open_rapl(tmp_path)
    backend, windows = _windows(zones=zones)
    _wait_until(backend, 6.0)
    window = windows.begin_window("run")
    energy_file.write_text("950000\n")
    zones[0].read_energy()                # a sampler tick between the edges
    energy_file.write_text("100000\n")    # wrapped past max_energy_range_uj
    window = windows.end_window("run")
    windows.close()
    start, end = window.readings(zones)
    cpu = cpu_energy(zones, start, end, window.duration_s)
    assert cpu.method == "rapl" and cpu.package_energy_j == pytest.approx(0.2)  # 50 000 + 150 000 uJ
    assert set(window.start.readings) == {*(d.uuid for d in backend.devices()), "package-0"}


def test_a_window_name_opens_once_and_closes_once():
    backend, windows = _windows()
    windows.begin_window("run")
    with pytest.raises(ValueError, match="already open"):
        windows.begin_window("run")
    windows.end_window("run")
    with pytest.raises(ValueError, match="not open"):
        windows.end_window("run")
    windows.close()


# Reads of another object's private state, each a third-party object with no public way to the value.
THIRD_PARTY_PRIVATE = {
    "__main__.py": {"os._exit"}, "worker.py": {"os._exit"},
    "engines/llama_cpp.py": {"llm._input_ids", "llm._model"},
    "serving/http_stream.py": {"conn._begin"},
    "serving/llama_cpp_server.py": {"llama_cpp.Llama._create_completion"},
}


def test_no_harness_module_reads_another_objects_private_state():
    """`LiveEdges` read `session._wall0`; the session filtered `self._sampler.ticks` under the sampler's
    lock. Private state is read only by its own class (`self._x`) or, for a third-party object, listed above."""
    found: dict[str, set[str]] = {}
    for path in sorted(HARNESS.rglob("*.py")):
        rel = path.relative_to(HARNESS).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                base = ast.unparse(node.value)
                if base not in ("self", "cls"):
                    found.setdefault(rel, set()).add(f"{base}.{node.attr}")
    assert found == THIRD_PARTY_PRIVATE
