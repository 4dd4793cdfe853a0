"""Contention: foreign GPU processes sampled over the window (NVML replay) and host CPU time (/proc)."""
from __future__ import annotations

import os
import subprocess
import sys
import time


from _measurement_helpers import measure, replay_session
from llem_harness.measurement.contention import ContentionMonitor, tree_cpu_s
from llem_harness.measurement.devices.replay import write_trace
from tests.foreign_load import cpu_s, start_foreign_spinner, stop

UUID = "GPU-c0c0c0c0-0000-4000-8000-000000000000"
FOREIGN = {"pid": 4242, "type": "compute", "used_memory_mb": 2048.0}
DESKTOP = {"pid": 77, "type": "graphics", "used_memory_mb": 12.0}


def _trace(path, processes_at):
    """1 GPU at 200 W for 20 s; `processes_at(t)` is the process list in force from sample t on."""
    rows = []
    for i in range(200):
        t = i * 0.1
        rows.append({"t_s": round(t, 3), "gpu": 0, "energy_mj": 1_000_000 + int(t * 200_000),
                     "power_instant_w": 200.0, "temperature_c": 50.0, "processes": processes_at(t)})
    write_trace(path, {"source": "synthetic", "loop": False,
                       "gpus": [{"index": 0, "uuid": UUID, "name": "Synthetic GPU (no real device)"}]}, rows)
    return path.name


def _session(monkeypatch, tmp_path, processes_at):
    name = _trace(tmp_path / "procs.jsonl", processes_at)
    monkeypatch.setattr("_measurement_helpers.TRACES", tmp_path)
    return replay_session(monkeypatch, tmp_path, name)


def test_foreign_compute_process_that_appears_during_the_window_marks_the_run(monkeypatch, tmp_path):
    session, events = _session(monkeypatch, tmp_path, lambda t: [DESKTOP] + ([FOREIGN] if 6.0 <= t < 9.0 else []))
    session.gpu_environment()  # t = 0: only the desktop process
    window = measure(session, 2.0, 12.0)
    session.close()
    c = window.contention
    # About once per device second plus both edges (fewer when this host is too busy to keep up).
    assert c.gpu_process_samples >= 3
    by_pid = {p["pid"]: p for p in c.gpu_foreign_processes}
    assert set(by_pid) == {77, 4242}
    assert by_pid[4242]["type"] == "compute" and by_pid[4242]["used_memory_mb"] == 2048.0
    # Present only mid-window (6-9 s): neither edge sees it, only the reads in between.
    assert by_pid[4242]["gpu_uuid"] == UUID and 1 <= by_pid[4242]["samples_seen"] <= 4
    assert c.significant is True and "pid 4242 on GPU 0" in c.reasons[0]
    assert not any("pid 77" in r for r in c.reasons)  # a desktop's graphics process is recorded, not judged
    assert any(w.startswith("contention: foreign compute processes") for w in window.warnings)
    assert any(name == "warning" and "pid 4242" in f["message"] for name, f in events)


def test_a_graphics_process_alone_is_recorded_but_not_significant(monkeypatch, tmp_path):
    session, _ = _session(monkeypatch, tmp_path, lambda t: [DESKTOP])
    window = measure(session, 2.0, 5.0)
    session.close()
    assert [p["pid"] for p in window.contention.gpu_foreign_processes] == [77]
    assert not any("foreign compute" in r for r in window.contention.reasons)


def test_processes_that_appeared_while_loading_are_ours_in_a_pid_namespace(monkeypatch, tmp_path):
    # NVML inside a container reports host PIDs: ours (here 900001) never matches os.getpid().
    ours = {"pid": 900001, "type": "compute", "used_memory_mb": 900.0}
    session, _ = _session(monkeypatch, tmp_path, lambda t: [] if t < 3.0 else [ours])
    session.gpu_environment()  # before the load: no process
    while session.backend.clock() < 4.0:
        time.sleep(0.005)
    session.measure_loaded_idle()  # baseline disabled: returns None, still learns the PIDs
    window = measure(session, 5.0, 8.0)
    session.close()
    assert window.contention.gpu_foreign_processes == []
    assert any("appeared while the model loaded" in w for w in window.warnings)


def test_a_visible_process_that_appeared_while_loading_stays_foreign(monkeypatch, tmp_path):
    # On the host (no PID namespace) a new PID that exists here and is not our descendant is foreign.
    spinner = start_foreign_spinner(20)
    try:
        other = {"pid": spinner, "type": "compute", "used_memory_mb": 900.0}
        session, _ = _session(monkeypatch, tmp_path, lambda t: [] if t < 3.0 else [other])
        session.gpu_environment()
        while session.backend.clock() < 4.0:
            time.sleep(0.005)
        session.measure_loaded_idle()
        window = measure(session, 5.0, 8.0)
        session.close()
    finally:
        stop(spinner)
    assert [p["pid"] for p in window.contention.gpu_foreign_processes] == [spinner]
    assert window.contention.significant is True


def test_host_cpu_time_separates_this_process_tree_from_other_processes():
    """Real processes: a child's CPU time is ours; a process started elsewhere is foreign."""
    monitor = ContentionMonitor([], time.monotonic)
    foreign_pid = start_foreign_spinner(30)
    try:
        time.sleep(0.3)
        _, tree = tree_cpu_s()
        assert foreign_pid not in tree and os.getpid() in tree
        monitor.start()
        # The spinner's CPU time is read inside the monitor's span (after its start, before its stop):
        # read outside, a loaded host that preempts this process at the span's edges would hand the
        # spinner CPU time that the monitor rightly does not see.
        foreign_before = cpu_s(foreign_pid)
        # Ours: a descendant that burns 0.6 s of CPU (CPU time, not wall time: this host may be busy),
        # plus the 2 clock ticks /proc may truncate from its user and system times.
        burn_s = 0.6 + 2 / os.sysconf("SC_CLK_TCK")
        subprocess.run([sys.executable, "-c", f"import time\nwhile time.process_time() < {burn_s}: pass\n"],
                       check=True)
        foreign_used = cpu_s(foreign_pid) - foreign_before
        result, warnings = monitor.stop()
    finally:
        stop(foreign_pid)
    assert result.host_cpu_unavailable_reason is None
    assert result.host_cpu_own_s >= 0.6  # the reaped child's CPU time (cutime) is counted as ours
    assert foreign_used > 0.2
    # Foreign = everything else on the host: at least the spinner (tick rounding: 2 ticks per read).
    assert result.host_cpu_foreign_s >= foreign_used - 0.05
    assert result.host_cpu_foreign_cores is not None and result.host_cpu_count == os.cpu_count()
    assert result.thresholds["host_cpu_foreign_cores"] == 0.5
    assert result.significant == (result.host_cpu_foreign_cores >= 0.5)
    assert any("CPU cores busy" in w for w in warnings) == result.significant


class _GpuProcessList:
    """The process list of a GPU this machine does not have (only what ContentionMonitor reads)."""

    index, uuid = 0, UUID

    def __init__(self):
        self.pids: list[int] = []

    def processes(self) -> list[dict]:
        return [{"pid": pid, "type": "compute", "used_memory_mb": 100.0} for pid in self.pids]


def test_a_process_the_run_starts_during_the_window_is_its_own():
    gpu = _GpuProcessList()
    monitor = ContentionMonitor([gpu], time.monotonic)
    monitor.start()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])  # e.g. an engine worker
    try:
        gpu.pids = [child.pid]
        monitor._read_gpus()  # what the sampler thread's poll does
        result, _ = monitor.stop()
    finally:
        child.kill()
        child.wait()
    assert result.gpu_foreign_processes == [] and result.significant is (result.host_cpu_foreign_cores >= 0.5)


def test_serving_contention_is_read_at_the_end_edge_not_after_the_drain(monkeypatch, tmp_path):
    """A foreign process that starts in the drain (after the end edge) is outside the window."""
    from _measurement_helpers import wait_until
    from llem_harness.serving.window import LiveEdges

    session, _ = _session(monkeypatch, tmp_path, lambda t: [FOREIGN] if t >= 13.0 else [])
    live = LiveEdges(session)
    wait_until(session, 4.0)
    live.on_edge("start")
    wait_until(session, 10.0)
    live.on_edge("end")
    wait_until(session, 18.0)  # the drain: the sampler thread still polls; the foreign process is there now
    window = live.finish()
    session.close()
    assert window.contention.gpu_foreign_processes == [] and window.contention.gpu_process_samples >= 2
    assert not any("foreign compute" in r for r in window.contention.reasons)


def _fake_proc(root, busy_ticks: int, own_ticks: int):
    """/proc as ContentionMonitor reads it: the host's busy ticks and this process's own CPU ticks."""
    pid = os.getpid()
    (root / str(pid) / "task" / str(pid)).mkdir(parents=True, exist_ok=True)
    (root / str(pid) / "task" / str(pid) / "children").write_text("")
    (root / "stat").write_text(f"cpu  {busy_ticks} 0 0 1000 0 0 0 0 0 0\n")
    (root / str(pid) / "stat").write_text(f"{pid} (python) R 1 1 1 0 -1 0 0 0 0 0 {own_ticks} 0 0 0 20 0\n")


def test_foreign_cpu_time_is_taken_over_the_window_not_over_the_drain(tmp_path):
    """The end edge's /proc readings: CPU load in the drain neither marks the window nor dilutes it."""
    tick = os.sysconf("SC_CLK_TCK")
    _fake_proc(tmp_path, 0, 0)
    monitor = ContentionMonitor([], time.monotonic, proc=tmp_path)
    t0 = time.monotonic()
    monitor.start()
    time.sleep(0.1)
    _fake_proc(tmp_path, 3 * tick, tick)   # window: 3 s busy, 1 s of it ours
    monitor.mark_end()
    window_s = time.monotonic() - t0
    _fake_proc(tmp_path, 500 * tick, tick)  # the drain: someone else's load
    time.sleep(1.0)
    result, _ = monitor.stop()
    assert result.host_cpu_own_s == 1.0 and result.host_cpu_foreign_s == 2.0
    assert result.host_cpu_foreign_cores >= 2.0 / window_s  # over the window's length, not the drain's
    assert result.significant is True
