"""Contention during the window: foreign processes on the measured GPUs and foreign host CPU time.

Why: a foreign process on a measured GPU adds its energy to the counter, and foreign CPU load slows
the workload (a CPU engine directly; a GPU engine's host side too). Neither shows in the energy or
throughput figures themselves, so the harness records both and marks the run (docs/energy-window.md).

GPU: each measured GPU's running-process lists (NVML compute + graphics; the replay device plays
them from the trace), read at most every GPU_POLL_INTERVAL_S of device time from the sampler
thread, plus once at each window edge. A process is this run's when its PID is in this process
tree; inside a PID namespace NVML reports host PIDs, so PIDs that appeared on the GPUs while the
model loaded and do not exist in this namespace (`learn_own_gpu_pids`) are counted as this run's
when none of our own PIDs is listed.

Host CPU: /proc/stat busy time (user, nice, system, steal) over the window, minus the CPU time of
this process tree (utime + stime + reaped children's cutime + cstime of every process descending
from this one). The difference is what other processes (and, as steal, other virtual machines)
used. Interrupt time is left out: it is not any process's, and our own I/O causes much of it.

Both are read at the window's edges, not when the window is built: serving builds its window after
the drain, and what happens in the drain is outside the window (a foreign process that starts then
must not mark a clean window; a foreign load inside it must not be diluted by the drain's length).
`mark_end()` takes the end readings (serving: on the window thread right after the end edge, off the
event loop) and closes the monitor: later polls are ignored, `stop()` only builds the result.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Callable

from llenergymeasure.domain import ContentionResult

from .devices import GpuDevice

GPU_POLL_INTERVAL_S = 1.0
FOREIGN_CPU_CORES_THRESHOLD = 0.5   # mean cores kept busy by other processes over the window
PROC = Path("/proc")


def _clock_ticks() -> int:
    try:
        return int(os.sysconf("SC_CLK_TCK"))
    except (ValueError, OSError, AttributeError):
        return 100


def host_busy_s(proc: Path = PROC) -> float:
    """All CPUs' process and steal seconds since boot (`cpu` line of /proc/stat: user nice system steal).

    guest time is already inside user; idle, iowait, irq and softirq are left out.
    """
    fields = (proc / "stat").read_text().splitlines()[0].split()
    user, nice, system, _idle, _iowait, _irq, _softirq, steal = (int(v) for v in fields[1:9])
    return (user + nice + system + steal) / _clock_ticks()


def _stat_fields(pid_dir: Path) -> list[str] | None:
    try:
        text = (pid_dir / "stat").read_text()
    except OSError:
        return None  # the process exited while we listed /proc
    return text[text.rfind(")") + 2:].split()  # after "pid (comm) ": state ppid ...


def _children(pid: int, proc: Path) -> list[int] | None:
    """Direct children of every thread of `pid` (/proc/PID/task/TID/children); None where the kernel lacks it."""
    kids: list[int] = []
    try:
        tasks = list((proc / str(pid) / "task").iterdir())
    except OSError:
        return []  # the process exited
    for task in tasks:
        try:
            kids.extend(int(k) for k in (task / "children").read_text().split())
        except FileNotFoundError:
            if not (task / "stat").exists():
                continue  # the thread exited
            return None  # no children files (CONFIG_PROC_CHILDREN off): scan instead
        except OSError:
            continue
    return kids


def _scan_children(proc: Path) -> dict[int, list[int]]:
    """Parent -> children for every process on the host (the fallback: costs a read per process)."""
    children: dict[int, list[int]] = {}
    for entry in proc.iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(entry)
            if fields is not None and len(fields) > 1:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def tree_cpu_s(root_pid: int | None = None, proc: Path = PROC) -> tuple[float, set[int]]:
    """CPU seconds of `root_pid` and all its descendants (reaped children included), and their PIDs.

    Walks the tree through the children files, so the cost grows with this run's threads, not with
    the host's processes (it runs at the window edges, inside the serving load generator's loop).
    """
    root_pid = os.getpid() if root_pid is None else root_pid
    scanned: dict[int, list[int]] | None = None
    ticks, tree, todo = 0, set(), [root_pid]
    while todo:
        pid = todo.pop()
        if pid in tree:
            continue
        fields = _stat_fields(proc / str(pid))
        if fields is None or len(fields) < 15:
            continue
        tree.add(pid)
        ticks += sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
        kids = _children(pid, proc)
        if kids is None:
            scanned = scanned if scanned is not None else _scan_children(proc)
            kids = scanned.get(pid, [])
        todo.extend(kids)
    return ticks / _clock_ticks(), tree


class ContentionMonitor:
    """Start at the window's start, `poll()` from the sampler thread, `stop()` at its end."""

    def __init__(self, devices: list[GpuDevice], clock: Callable[[], float], proc: Path = PROC):
        self.devices = devices
        self.clock = clock
        self.proc = proc
        self._lock = threading.Lock()
        self._own_gpu_pids: set[int] = set()
        self._notes: list[str] = []
        self._reset()

    def _reset(self) -> None:
        self._seen: dict[tuple[str, int], dict] = {}
        self._gpu_samples = 0
        self._gpu_error: str | None = None
        self._last_poll = float("-inf")
        self._tree: set[int] = set()
        self._busy0 = self._own0 = None
        self._wall0 = time.monotonic()
        self._cpu_error: str | None = None
        self._end: dict | None = None  # the end edge's readings (mark_end); polls after it are ignored

    def learn_own_gpu_pids(self, before_load: list[dict]) -> None:
        """After the model loaded: in a PID namespace, the GPU PIDs that appeared are this run's."""
        _, tree = self._own_tree()
        try:
            now = {int(p["pid"]) for d in self.devices for p in d.processes() if p.get("pid") is not None}
        except Exception as exc:  # noqa: BLE001 - a failed read only means nothing is learnt
            self._notes.append(f"GPU process lists unreadable after the load ({type(exc).__name__}: {exc})")
            return
        earlier = {int(p["pid"]) for p in before_load if p.get("pid") is not None}
        # A PID visible here is a process of this namespace, ours (in the tree) or not: never learnt.
        invisible = {pid for pid in now - earlier if not (self.proc / str(pid)).exists()}
        if now & tree or not invisible:
            return
        self._own_gpu_pids = invisible
        self._notes.append(f"GPU processes {sorted(self._own_gpu_pids)} appeared while the model loaded and are "
                           "not visible in this PID namespace: counted as this run's")

    def own_pids(self) -> set[int]:
        """This run's PIDs: its process tree, and the GPU PIDs learnt in a PID namespace."""
        return self._own_tree()[1] | self._own_gpu_pids

    def _own_tree(self) -> tuple[float | None, set[int]]:
        try:
            return tree_cpu_s(proc=self.proc)
        except (OSError, ValueError) as exc:
            self._cpu_error = f"process tree unreadable: {type(exc).__name__}: {exc}"
            return None, {os.getpid()}

    def start(self) -> None:
        with self._lock:
            self._reset()
            try:
                self._busy0 = host_busy_s(self.proc)
            except (OSError, ValueError, IndexError) as exc:
                self._cpu_error = f"{self.proc / 'stat'} unreadable: {type(exc).__name__}: {exc}"
            self._own0, self._tree = self._own_tree()
        self._read_gpus()

    def poll(self) -> None:
        """From the sampler thread: GPU process lists at most every GPU_POLL_INTERVAL_S (device time)."""
        if self.devices and self._end is None and self.clock() - self._last_poll >= GPU_POLL_INTERVAL_S:
            self._read_gpus()

    def _read_gpus(self) -> None:
        if not self.devices:
            return
        with self._lock:
            if self._end is not None:
                return  # after the end edge: outside the window
            self._last_poll = self.clock()
            self._gpu_samples += 1
            for dev in self.devices:
                try:
                    procs = dev.processes()
                except Exception as exc:  # noqa: BLE001 - a failed read must not stop the sampler
                    self._gpu_error = f"GPU {dev.index} process list unreadable: {type(exc).__name__}: {exc}"
                    continue
                for p in procs:
                    pid = p.get("pid")
                    if pid is None or int(pid) in self._tree or int(pid) in self._own_gpu_pids:
                        continue
                    key = (dev.uuid, int(pid))
                    entry = self._seen.setdefault(key, {
                        "pid": int(pid), "gpu_uuid": dev.uuid, "gpu_index": dev.index,
                        "type": p.get("type", "compute"), "used_memory_mb": p.get("used_memory_mb"),
                        "samples_seen": 0})
                    entry["samples_seen"] += 1
                    mem = p.get("used_memory_mb")
                    if mem is not None and (entry["used_memory_mb"] is None or mem > entry["used_memory_mb"]):
                        entry["used_memory_mb"] = mem

    def mark_end(self) -> None:
        """The end edge's readings (host CPU, this tree, the GPU process lists); idempotent."""
        if self._end is not None:
            return
        self._read_gpus()  # the last process-list read of the window
        with self._lock:
            wall_s = time.monotonic() - self._wall0
            own1, tree1 = self._own_tree()
            busy1, error = None, None
            try:
                busy1 = host_busy_s(self.proc)
            except (OSError, ValueError, IndexError) as exc:
                error = f"/proc unreadable at the window's end: {type(exc).__name__}: {exc}"
            self._end = {"wall_s": wall_s, "own_s": own1, "tree": tree1, "busy_s": busy1, "error": error}

    def stop(self) -> tuple[ContentionResult, list[str]]:
        self.mark_end()  # offline: the end edge is now; serving marked it at the edge
        end = self._end
        wall_s, own1, busy1 = end["wall_s"], end["own_s"], end["busy_s"]
        with self._lock:
            foreign_s = own_s = cores = None
            cpu_reason = self._cpu_error or end["error"]
            self._tree |= end["tree"]  # a process this run started during the window is ours, not foreign
            for key in [k for k in self._seen if k[1] in self._tree]:
                del self._seen[key]
            if cpu_reason is None and self._busy0 is not None and self._own0 is not None and own1 is not None:
                own_s = own1 - self._own0
                # Tick rounding can make the difference slightly negative on an idle host.
                foreign_s = max(0.0, busy1 - self._busy0 - own_s)
                cores = foreign_s / wall_s if wall_s > 0 else None
            cpu_reason = cpu_reason or self._cpu_error
            gpu_reason = self._gpu_error if self.devices else "no GPU measured"
            result = ContentionResult(
                gpu_foreign_processes=sorted(self._seen.values(), key=lambda e: (e["gpu_index"], e["pid"])),
                gpu_process_samples=self._gpu_samples, gpu_unavailable_reason=gpu_reason,
                host_cpu_foreign_s=foreign_s, host_cpu_own_s=own_s, host_cpu_foreign_cores=cores,
                host_cpu_count=os.cpu_count(), host_cpu_unavailable_reason=cpu_reason,
                thresholds={"host_cpu_foreign_cores": FOREIGN_CPU_CORES_THRESHOLD, "gpu_foreign_compute_processes": 1})
        return judge(result, list(self._notes))


def judge(result: ContentionResult, warnings: list[str]) -> tuple[ContentionResult, list[str]]:
    """Mark the run significant (with the reasons, also returned as warnings) past the thresholds."""
    reasons: list[str] = []
    compute = [p for p in result.gpu_foreign_processes if p.get("type", "compute") != "graphics"]
    if compute:
        pids = ", ".join(f"pid {p['pid']} on GPU {p['gpu_index']}" for p in compute)
        reasons.append(f"foreign compute processes on the measured GPUs during the window: {pids} "
                       "(their energy is inside the GPU energy)")
    cores = result.host_cpu_foreign_cores
    if cores is not None and cores >= FOREIGN_CPU_CORES_THRESHOLD:
        reasons.append(f"other processes kept {cores:.2f} CPU cores busy on average during the window "
                       f"(>= {FOREIGN_CPU_CORES_THRESHOLD:g}; {os.cpu_count()} cores): throughput and CPU "
                       "energy are not the workload's alone")
    result = result.model_copy(update={"significant": bool(reasons), "reasons": reasons})
    return result, warnings + [f"contention: {r}" for r in reasons]
