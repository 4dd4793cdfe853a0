"""CPU package and DRAM energy meters: RAPL zones under /sys/class/powercap (docs/methodology.md, "CPU energy").

Each zone is an `EnergyMeter` of the device layer, read like a GPU's counter: `read_energy()` gives
the millijoules the zone counted since it was opened. The hardware counter `energy_uj` wraps at
`max_energy_range_uj`; every read adds the range to a negative step, so a window spanning several
wraps is counted as long as the counter does not wrap twice between reads (the sampler thread reads
every zone on every tick). Zones: `intel-rapl:N` is a package, `intel-rapl:N:M` a sub-zone named by
its `name` file (`dram`, `core`, `uncore`). Where the tree is absent or `energy_uj` is unreadable
(root-only since Linux 5.10), `open_rapl` raises `RaplUnavailable` with the reason — never a TDP guess.

`LLEM_POWERCAP_ROOT` points at another directory laid out like /sys/class/powercap: the tests use a
fake tree there (RAPL hardware is not available to them), never a measurement.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

from llenergymeasure.domain import CpuEnergy

from . import DeviceUnavailable, EnergyReading

DEFAULT_POWERCAP_ROOT = Path("/sys/class/powercap")
POWERCAP_ROOT_ENV = "LLEM_POWERCAP_ROOT"


class RaplUnavailable(DeviceUnavailable):
    """No readable RAPL zone here; the message is the reason CPU energy is null."""


def _read_int(path: Path) -> int:
    return int(path.read_text().strip())


class RaplZone:
    """One RAPL zone as an energy meter: cumulative millijoules since it was opened, wraps added."""

    def __init__(self, label: str, kind: str, energy_file: Path, max_range_uj: int):
        self.meter_id = label       # e.g. "package-0", "package-0/dram"
        self.kind = kind            # "package" | "dram" | another zone name
        self.energy_file = energy_file
        self.max_range_uj = max_range_uj
        self.wraps = 0
        self._lock = threading.Lock()
        self._last_uj = _read_int(energy_file)
        self._total_uj = 0

    def read_energy(self) -> EnergyReading:
        with self._lock:
            try:
                now = _read_int(self.energy_file)
            except (OSError, ValueError) as exc:
                return EnergyReading(None, f"RAPL {self.meter_id}: {type(exc).__name__}: {exc}")
            step = now - self._last_uj
            if step < 0:
                step += self.max_range_uj
                self.wraps += 1
            self._total_uj += step
            self._last_uj = now
            return EnergyReading(self._total_uj / 1000.0)


def open_rapl(root: Path | str | os.PathLike | None = None) -> list[RaplZone]:
    """Every readable zone under `root` (default /sys/class/powercap, or LLEM_POWERCAP_ROOT)."""
    root = Path(root if root is not None else os.environ.get(POWERCAP_ROOT_ENV) or DEFAULT_POWERCAP_ROOT)
    if not root.is_dir():
        raise RaplUnavailable(f"RAPL unavailable: {root} does not exist (not Linux, or not mounted into the container)")
    dirs = sorted(p for p in root.iterdir() if p.name.startswith("intel-rapl:"))
    if not dirs:
        raise RaplUnavailable(f"RAPL unavailable: no intel-rapl zones under {root}")
    names = {d.name: (d / "name").read_text().strip() if (d / "name").exists() else d.name for d in dirs}
    zones: list[RaplZone] = []
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
            zones.append(RaplZone(label, kind, d / "energy_uj", _read_int(d / "max_energy_range_uj")))
        except (OSError, ValueError) as exc:
            errors.append(f"{d.name}: {type(exc).__name__}: {exc}")
    if not zones:
        raise RaplUnavailable("RAPL unavailable: energy_uj unreadable (" + "; ".join(errors[:3]) + ")")
    return zones


def cpu_energy(zones: list[RaplZone], start: list[EnergyReading], end: list[EnergyReading],
               window_s: float | None, unavailable_reason: str | None = None) -> CpuEnergy:
    """A window's CPU energy from its edges' zone readings: packages and DRAM summed apart, each zone listed."""
    if not zones:
        return CpuEnergy(method="unavailable", unavailable_reason=unavailable_reason, window_s=window_s)
    domains: dict[str, float] = {}
    for zone, a, b in zip(zones, start, end):
        if a.energy_mj is None or b.energy_mj is None:
            why = a.unavailable_reason or b.unavailable_reason
            return CpuEnergy(method="unavailable", unavailable_reason=f"RAPL read failed at a window edge ({why})",
                             window_s=window_s)
        domains[zone.meter_id] = (b.energy_mj - a.energy_mj) / 1000.0
    package = [domains[z.meter_id] for z in zones if z.kind == "package"]
    dram = [domains[z.meter_id] for z in zones if z.kind == "dram"]
    return CpuEnergy(method="rapl", package_energy_j=sum(package) if package else None,
                     dram_energy_j=sum(dram) if dram else None, domains=domains, window_s=window_s)
