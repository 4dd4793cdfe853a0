"""CPU package and DRAM energy from RAPL under /sys/class/powercap (docs/methodology.md, "CPU energy").

Each zone's `energy_uj` is a counter that wraps at `max_energy_range_uj`. The meter polls (the
sampler calls `poll()` every tick, so a window spanning several wraps is still counted as long as
the counter does not wrap twice between polls) and adds `max_energy_range_uj` to a negative step.
Zones: `intel-rapl:N` is a package, `intel-rapl:N:M` a sub-zone named by its `name` file
(`dram`, `core`, `uncore`); `package_energy_j` sums `package-*` zones, `dram_energy_j` the `dram`
ones. Where the tree is absent or `energy_uj` is unreadable (root-only since Linux 5.10), the
result is `unavailable` with the reason — never a TDP guess.

`LLEM_POWERCAP_ROOT` points the meter at another directory laid out like /sys/class/powercap: the
tests use a fake tree there (RAPL hardware is not available to them), never a measurement.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from llenergymeasure.domain import CpuEnergy

DEFAULT_POWERCAP_ROOT = Path("/sys/class/powercap")
POWERCAP_ROOT_ENV = "LLEM_POWERCAP_ROOT"


@dataclass
class _Zone:
    label: str          # e.g. "package-0", "package-0/dram"
    kind: str           # "package" | "dram" | other zone name
    energy_file: Path
    max_range_uj: int
    last_uj: int = 0
    total_uj: int = 0
    wraps: int = 0


def _read_int(path: Path) -> int:
    return int(path.read_text().strip())


class RaplMeter:
    def __init__(self, root: Path | str | None = None):
        self.root = Path(root if root is not None else os.environ.get(POWERCAP_ROOT_ENV) or DEFAULT_POWERCAP_ROOT)
        self.zones: list[_Zone] = []
        self.unavailable_reason: str | None = None
        self._lock = threading.Lock()
        self._discover()

    def _discover(self) -> None:
        if not self.root.is_dir():
            self.unavailable_reason = f"RAPL unavailable: {self.root} does not exist (not Linux, or not mounted into the container)"
            return
        dirs = sorted(p for p in self.root.iterdir() if p.name.startswith("intel-rapl:"))
        if not dirs:
            self.unavailable_reason = f"RAPL unavailable: no intel-rapl zones under {self.root}"
            return
        names = {d.name: (d / "name").read_text().strip() if (d / "name").exists() else d.name for d in dirs}
        errors: list[str] = []
        for d in dirs:
            parts = d.name.split(":")
            name = names[d.name]
            if len(parts) == 2:
                label, kind = name, ("package" if name.startswith("package") else name)
            else:
                parent = names.get(":".join(parts[:2]), ":".join(parts[:2]))
                label, kind = f"{parent}/{name}", name
            try:
                zone = _Zone(label, kind, d / "energy_uj", _read_int(d / "max_energy_range_uj"))
                zone.last_uj = _read_int(zone.energy_file)
            except (OSError, ValueError) as exc:
                errors.append(f"{d.name}: {type(exc).__name__}: {exc}")
                continue
            self.zones.append(zone)
        if not self.zones:
            self.unavailable_reason = "RAPL unavailable: energy_uj unreadable (" + "; ".join(errors[:3]) + ")"

    @property
    def available(self) -> bool:
        return bool(self.zones)

    def start(self) -> None:
        """Zero the totals and take the starting reading."""
        with self._lock:
            for z in self.zones:
                z.last_uj = _read_int(z.energy_file)
                z.total_uj = 0
                z.wraps = 0

    def poll(self) -> None:
        with self._lock:
            for z in self.zones:
                try:
                    now = _read_int(z.energy_file)
                except (OSError, ValueError):
                    continue
                step = now - z.last_uj
                if step < 0:
                    step += z.max_range_uj
                    z.wraps += 1
                z.total_uj += step
                z.last_uj = now

    def stop(self, window_s: float | None = None) -> CpuEnergy:
        if not self.available:
            return CpuEnergy(method="unavailable", unavailable_reason=self.unavailable_reason, window_s=window_s)
        self.poll()
        domains = {z.label: z.total_uj / 1e6 for z in self.zones}
        package = [z.total_uj / 1e6 for z in self.zones if z.kind == "package"]
        dram = [z.total_uj / 1e6 for z in self.zones if z.kind == "dram"]
        return CpuEnergy(method="rapl", package_energy_j=sum(package) if package else None,
                         dram_energy_j=sum(dram) if dram else None, domains=domains, window_s=window_s)
