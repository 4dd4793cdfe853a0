"""Whether the kernel's OOM killer ended a process: counters read before and after a run.

Why: a harness killed by SIGKILL that llem did not send may be the OOM killer's work — or a
user's `kill -9`, a watchdog, a job scheduler. Calling every such kill `OOMKilled` sends people
to shrink batches for nothing. The kernel counts OOM kills: per cgroup (v2 `memory.events`,
v1 `memory.oom_control`, field `oom_kill`) and host-wide (`/proc/vmstat` `oom_kill`). A run is
reported OOMKilled only when one of them rose while it ran. Linux only; elsewhere no evidence.
"""
from __future__ import annotations

from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _field(path: Path, name: str) -> int | None:
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == name and value.strip().isdigit():
                return int(value)
    except OSError:
        pass
    return None


def _cgroup_files(pid: int | str) -> list[Path]:
    """The OOM-counter files of the memory cgroup `pid` is in (v2 and v1 layouts)."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return []
    files = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        relative = path.lstrip("/")
        if controllers == "":
            files += [CGROUP_ROOT / relative / "memory.events", CGROUP_ROOT / "memory.events"]
        elif "memory" in controllers.split(","):
            base = CGROUP_ROOT / "memory"
            files += [base / relative / "memory.oom_control", base / "memory.oom_control"]
    return list(dict.fromkeys(f for f in files if f.is_file()))


def snapshot(pid: int | str = "self") -> dict[str, int]:
    """{counter file: oom_kill count} for the cgroup of `pid` and the host."""
    counts = {}
    for path in _cgroup_files(pid) + [Path("/proc/vmstat")]:
        value = _field(path, "oom_kill")
        if value is not None:
            counts[str(path)] = value
    return counts


def oom_evidence(before: dict[str, int], after: dict[str, int]) -> str | None:
    """A sentence naming the counter that rose, or None when no OOM kill was recorded."""
    for path, count in after.items():
        if path in before and count > before[path]:
            where = "on this host" if path == "/proc/vmstat" else "in the run's memory cgroup"
            return f"the kernel recorded {count - before[path]} OOM kill(s) {where} during the run ({path})"
    return None
