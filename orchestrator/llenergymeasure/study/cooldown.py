"""Cool down between experiments: wait until the GPUs are back near their idle temperature.

Why: leakage power rises with temperature, so back-to-back runs read higher (docs/methodology.md,
"Environment, temperature and cool-down"); a fixed sleep is either too short or wasteful. We poll the assigned GPUs' temperature until
every one is within `delta_c` of its idle temperature, capped at `max_wait_s`.

Host side: pynvml is imported lazily, and the harness is never imported. With
`LLEM_NVML_REPLAY=trace.jsonl` the temperatures come from that trace, played from its start in
real time (x `LLEM_NVML_REPLAY_SPEED`) — a deliberately tiny, self-contained reader of the trace
format documented in tests/fixtures/traces/README.md.
"""
from __future__ import annotations

import bisect
import json
import os
import time
from typing import Callable

POLL_S = 1.0


def _replay_reader(path: str, gpu_ids: list[str] | None) -> Callable[[], dict[str, float]]:
    with open(path) as fh:
        header = json.loads(fh.readline())
        rows = [json.loads(line) for line in fh if line.strip()]
    speed = float(os.environ.get("LLEM_NVML_REPLAY_SPEED", "1.0") or 1.0)
    gpus = [g for g in header["gpus"] if not gpu_ids or str(g["index"]) in gpu_ids or g["uuid"] in gpu_ids]
    series: dict[int, list[tuple[float, float]]] = {}
    for row in rows:
        if row.get("temperature_c") is not None:
            series.setdefault(int(row["gpu"]), []).append((float(row["t_s"]), float(row["temperature_c"])))
    for values in series.values():
        values.sort()
    t_first = min((v[0][0] for v in series.values() if v), default=0.0)
    opened = time.monotonic()

    def read() -> dict[str, float]:
        t = t_first + (time.monotonic() - opened) * speed
        out = {}
        for g in gpus:
            values = series.get(int(g["index"]), [])
            if values:
                i = max(bisect.bisect_right([v[0] for v in values], t) - 1, 0)
                out[g["uuid"]] = values[i][1]
        return out

    return read


def _nvml_reader(gpu_ids: list[str] | None) -> Callable[[], dict[str, float]] | None:
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - no NVML: temperatures cannot be read
        return None
    handles = []
    for i in range(pynvml.nvmlDeviceGetCount()):
        h = pynvml.nvmlDeviceGetHandleByIndex(i)
        uuid = pynvml.nvmlDeviceGetUUID(h)
        uuid = uuid.decode() if isinstance(uuid, bytes) else str(uuid)
        if not gpu_ids or str(i) in gpu_ids or uuid in gpu_ids:
            handles.append((uuid, h))

    def read() -> dict[str, float]:
        return {uuid: float(pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU)) for uuid, h in handles}

    read.close = pynvml.nvmlShutdown  # type: ignore[attr-defined]
    return read


def wait_for_cooldown(gpu_ids: list[str] | None, idle_temperature_c: float | dict[str, float] | None,
                      delta_c: float = 3.0, max_wait_s: float = 120.0,
                      poll_s: float = POLL_S) -> tuple[float, bool | None]:
    """Block until every assigned GPU is within `delta_c` °C of its idle temperature.

    `gpu_ids`: host NVML indices or UUIDs (None = all). `idle_temperature_c`: one value for all
    GPUs or UUID -> °C (e.g. BaselineResult.idle_temperature_per_gpu_c). Returns (waited_s,
    reached): reached is None when temperatures cannot be read or no idle temperature is known
    (then nothing is waited), False when the cap was hit.
    """
    if idle_temperature_c is None or idle_temperature_c == {}:
        return 0.0, None
    ids = [str(g) for g in gpu_ids] if gpu_ids else None
    trace = os.environ.get("LLEM_NVML_REPLAY")
    read = _replay_reader(trace, ids) if trace else _nvml_reader(ids)
    if read is None:
        return 0.0, None
    speed = float(os.environ.get("LLEM_NVML_REPLAY_SPEED", "1.0") or 1.0) if trace else 1.0
    try:
        return _poll(read, idle_temperature_c, delta_c, max_wait_s, poll_s / speed)
    finally:
        getattr(read, "close", lambda: None)()


def _poll(read: Callable[[], dict[str, float]], idle_temperature_c: float | dict[str, float], delta_c: float,
          max_wait_s: float, poll_s: float) -> tuple[float, bool | None]:
    start = time.monotonic()
    while True:
        temps = read()
        if not temps:
            return time.monotonic() - start, None
        target = (idle_temperature_c if isinstance(idle_temperature_c, dict)
                  else {uuid: float(idle_temperature_c) for uuid in temps})
        known = {u: t for u, t in temps.items() if u in target}
        if not known:
            return time.monotonic() - start, None
        if all(t <= target[u] + delta_c for u, t in known.items()):
            return time.monotonic() - start, True
        waited = time.monotonic() - start
        if waited >= max_wait_s:
            return waited, False
        time.sleep(min(poll_s, max(0.0, max_wait_s - waited)))
