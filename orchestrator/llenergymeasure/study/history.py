"""Run and study durations measured on this host, kept so that `--dry-run` estimates from what it saw.

Why: an estimate from assumed constants (decode step, load speed) was off by an order of magnitude
on a loaded CPU host, and one that knew only each run's window missed where a study's time really
goes (engine import, load, warm-up, baseline, the orchestrator). Every completed run appends one
line to a small JSON-lines file (per user; `$LLEM_HISTORY`, default
`~/.cache/llenergymeasure/run-history.jsonl`): host, engine, runner, model, workload, measurement
settings and the measured durations (the run's wall time as the orchestrator saw it, and inside it
the harness's window, warm-up, baselines, import and load). Every study appends one line more: its
own overhead (pre-flight, manifest, outputs: its wall time minus its runs and deliberate waits).
The file keeps the last `KEEP` lines. A dry run matches each experiment against the lines of
*this* host (a shared home directory serves several hosts) and says which match it used:

  1. the same configuration (engine, runner, model, mode, batch size, prompts, lengths, warm-up and
     baseline settings): median wall time of those runs;
  2. the same engine, runner and model: a sum of parts — start-up (process, import, load, harness
     bookkeeping: wall − window − warm-up − baselines), baselines, warm-up batches × batch time, and
     the window scaled by the tokens to generate, at the nearest measured batch size;
  3. the same engine and runner, another model: start-up and baselines from those runs, warm-up and
     window from the crude constants of `domain.estimates`;
  4. nothing measured here yet: the crude constants (labelled as such).
Warm-up batches: the median that runs with the same warm-up settings ran here, else `max_batches`
(a warm-up that does not settle runs to its bound), capped by `max_duration_s`.
"""
from __future__ import annotations

import json
import os
import socket
import statistics
import time
from pathlib import Path
from typing import Any

KEEP = 2000
HISTORY_ENV = "LLEM_HISTORY"
ASSUMED_STUDY_OVERHEAD_S = 5.0  # pre-flight, manifest and outputs of a study, until one was measured here


def history_path() -> Path:
    if os.environ.get(HISTORY_ENV):
        return Path(os.environ[HISTORY_ENV]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "llenergymeasure" / "run-history.jsonl"


def _workload(config: Any) -> dict:
    serving = config.serving if config.mode == "serving" else None
    return {"engine": config.engine, "model": config.model, "mode": config.mode, "batch_size": config.batch_size,
            "n_prompts": config.n_prompts, "max_input_tokens": config.max_input_tokens,
            "max_output_tokens": config.max_output_tokens,
            "n_requests": serving.n_requests if serving is not None else None}


def _measurement(config: Any) -> dict:
    """The measurement settings that change a run's wall time (warm-up and baseline)."""
    m = config.measurement
    return {"warmup": m.warmup.model_dump(mode="json"),
            "baseline": {"enabled": m.baseline.enabled, "duration_s": m.baseline.duration_s}}


def _run_record(host: str, entry: Any, result: Any) -> dict:
    baseline, loaded = result.baseline, getattr(result, "loaded_idle", None)
    warmup = result.warmup
    return {"host": host, "recorded_unix_s": round(time.time(), 1), "runner": entry.runner,
            **_workload(result.config), "measurement": _measurement(result.config),
            "wall_s": entry.duration_s, "window_s": result.window_s, "model_load_s": result.model_load_s,
            "engine_import_s": getattr(result, "engine_import_s", None), "harness_wall_s": result.harness_wall_s,
            "output_tokens": result.output_tokens_total,
            "warmup_s": warmup.duration_s if warmup is not None else 0.0,
            "warmup_batches": warmup.iterations if warmup is not None else 0,
            "baseline_s": (baseline.duration_s if baseline is not None and baseline.fresh else 0.0)
            + (loaded.duration_s if loaded is not None else 0.0),
            "cooldown_wait_s": getattr(getattr(result, "thermal", None), "cooldown_wait_s", None)}


def record_runs(outcomes: list, path: Path | None = None, study_wall_s: float | None = None,
                waited_s: float = 0.0) -> int:
    """Append one line per completed run of `outcomes` [(ManifestEntry, RunOutcome | None)] and, given
    the study's wall time, one line with its overhead; never raises (a history that cannot be
    written must not fail a study). Returns the run lines written."""
    try:
        lines = []
        host = socket.gethostname()
        for entry, outcome in outcomes:
            result = getattr(outcome, "result", None)
            if entry.status != "completed" or result is None or not entry.duration_s:
                continue
            lines.append(json.dumps(_run_record(host, entry, result), separators=(",", ":")))
        n_runs = len(lines)
        if not lines:
            return 0
        if study_wall_s is not None:
            runs_s = sum(entry.duration_s or 0.0 for entry, _ in outcomes)
            lines.append(json.dumps({"host": host, "recorded_unix_s": round(time.time(), 1), "kind": "study",
                                     "overhead_s": round(max(study_wall_s - runs_s - waited_s, 0.0), 3),
                                     "runs": len(outcomes)}, separators=(",", ":")))
        path = path or history_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        old = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
        kept = (old + lines)[-KEEP:]
        from ..domain.io import write_text_atomic

        write_text_atomic(path, "\n".join(kept) + "\n", fsync=False)  # exclusive temp file, no link followed
        return n_runs
    except Exception:  # noqa: BLE001 - best effort by design (read-only home, full disk...)
        return 0


def _records(path: Path | None, host: str | None) -> list[dict]:
    path = path or history_path()
    host = host or socket.gethostname()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return []
    records = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("host") == host:
            records.append(record)
    return records


def load_history(path: Path | None = None, host: str | None = None) -> list[dict]:
    """This host's run records (malformed lines skipped)."""
    return [r for r in _records(path, host) if isinstance(r.get("wall_s"), (int, float))]


def study_overhead_s(path: Path | None = None, host: str | None = None) -> tuple[float, str]:
    """(seconds a study spends outside its runs and waits, where the figure comes from)."""
    measured = [r["overhead_s"] for r in _records(path, host)
                if r.get("kind") == "study" and isinstance(r.get("overhead_s"), (int, float))]
    if measured:
        return statistics.median(measured), f"median of {len(measured)} studies here"
    return ASSUMED_STUDY_OVERHEAD_S, f"assumed {ASSUMED_STUDY_OVERHEAD_S:g} s (no study measured here yet)"


def _median(records: list[dict], value) -> float | None:
    values = [value(r) for r in records]
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _startup_s(r: dict) -> float:
    """What a run spends outside its window, warm-up and baselines: process, import, load, bookkeeping."""
    return max(r["wall_s"] - (r.get("window_s") or 0.0) - (r.get("warmup_s") or 0.0) - (r.get("baseline_s") or 0.0),
               0.0)


def _warmup_s(config: Any, basis: list[dict], batch_s: float, measured: Any = ()) -> tuple[float, float]:
    """(seconds, batches) of warm-up: batches as measured here with the same settings, else to the bound.

    `measured`: that median, already computed for `basis` and these settings (a planner's memo)."""
    w = config.measurement.warmup
    if not w.enabled:
        return 0.0, 0.0
    if measured == ():
        measured = _warmup_batches_measured(w, basis)
    batches = measured or w.max_batches
    batches = max(min(batches, w.max_batches), min(max(w.min_batches, w.window), w.max_batches))
    seconds = batches * batch_s
    if w.max_duration_s is not None:
        seconds = min(seconds, w.max_duration_s + batch_s)
    return seconds, batches


def _warmup_batches_measured(w: Any, basis: list[dict]) -> float | None:
    settings = w.model_dump(mode="json")
    return _median([r for r in basis if (r.get("measurement") or {}).get("warmup") == settings],
                   lambda r: r.get("warmup_batches"))


def _memo(memo: dict, key: tuple, compute):
    if key not in memo:
        memo[key] = compute()
    return memo[key]


def _exact_index(same_engine: list[dict]) -> dict[tuple, list[dict]]:
    """Records by their workload (the keys of _workload, in its order): one lookup per configuration."""
    index: dict[tuple, list[dict]] = {}
    for r in same_engine:
        try:
            index.setdefault(tuple(r.get(k) for k in _WORKLOAD_KEYS), []).append(r)
        except TypeError:  # an unhashable value (a malformed record) never equals a configuration's
            continue
    return index


_WORKLOAD_KEYS = ("engine", "model", "mode", "batch_size", "n_prompts", "max_input_tokens", "max_output_tokens",
                  "n_requests")


def estimate_wall_s(config: Any, runner: str | None, history: list[dict],
                    crude: dict, memo: dict | None = None) -> tuple[float, str, dict[str, float]]:
    """(seconds for one run of `config`, where the figure comes from, its parts); see the module docstring.

    `crude` is `domain.estimates.estimate_run_wall_time_s(config)`: the figures used where nothing was
    measured (its process start is `estimated_wall_time_s` minus the parts it lists)."""
    memo = {} if memo is None else memo  # `memo`: one dict for many configs of one history (a dry-run's)
    m = config.measurement
    settings = _memo(memo, ("measurement", id(m)), lambda: (m, _measurement(config)))[1]  # m kept: id unique
    want = _workload(config)
    engine_key = ("engine", config.engine, runner)
    same_engine = _memo(memo, engine_key, lambda: [
        r for r in history if r.get("engine") == config.engine and (runner is None or r.get("runner") == runner)])
    by_workload = _memo(memo, ("exact", *engine_key), lambda: _exact_index(same_engine))
    exact = [r for r in by_workload.get(tuple(want[k] for k in _WORKLOAD_KEYS), ())
             if r.get("measurement") == settings]
    if exact:
        seconds = statistics.median(r["wall_s"] for r in exact)
        return seconds, f"median of {len(exact)} runs of this configuration here", {"run": seconds}
    tokens = config.n_prompts * config.max_output_tokens
    model_key = (*engine_key, config.model, config.mode)
    same_model = _memo(memo, ("model", *model_key), lambda: [
        r for r in same_engine if r.get("model") == config.model and r.get("mode") == config.mode
        and r.get("output_tokens") and r.get("window_s")])
    basis_key = engine_key
    if same_model:
        basis_key = (*model_key, config.batch_size)

        def nearest_basis() -> tuple[list[dict], float]:
            nearest = min(abs(r["batch_size"] - config.batch_size) for r in same_model)
            basis = [r for r in same_model if abs(r["batch_size"] - config.batch_size) == nearest]
            return basis, statistics.median(r["window_s"] / r["output_tokens"] for r in basis)

        basis, per_token = _memo(memo, ("basis", *basis_key), nearest_basis)
        window_s, batch_s = per_token * tokens, per_token * config.batch_size * config.max_output_tokens
        source = f"scaled from {len(basis)} runs of this model here at batch size {basis[0]['batch_size']}"
    elif same_engine:
        basis = same_engine
        window_s, batch_s = crude["measured_batches"] * crude["batch_s"], crude["batch_s"]
        source = (f"start-up and load from {len(basis)} {config.engine} runs here (other models); "
                  "warm-up and window from assumed constants")
    else:
        basis = []
        window_s, batch_s = crude["measured_batches"] * crude["batch_s"], crude["batch_s"]
        source = "assumed constants (no run of this engine measured on this host yet)"
    crude_startup_s = crude["estimated_wall_time_s"] - crude["baseline_s"] - (
        crude["warmup_batches"] + crude["measured_batches"]) * crude["batch_s"]
    startup_s = _memo(memo, ("startup", *basis_key), lambda: _median(basis, _startup_s)) if basis else crude_startup_s
    baseline_s = 0.0
    if config.measurement.baseline.enabled:
        measured = _memo(memo, ("baseline", *basis_key), lambda: _median(basis, lambda r: r.get("baseline_s")))
        baseline_s = measured if measured is not None else 2 * config.measurement.baseline.duration_s
    warmup_s, warmup_batches = _warmup_s(config, basis, batch_s, _memo(
        memo, ("warmup", id(m), *basis_key), lambda: _warmup_batches_measured(m.warmup, basis)))
    parts = {"start-up": startup_s, "baseline": baseline_s, "warm-up": warmup_s, "warm-up batches": warmup_batches,
             "window": window_s}
    return startup_s + baseline_s + warmup_s + window_s, source, parts


def cooldown_s(history: list[dict], cooldown_max_s: float) -> tuple[float, str]:
    """Cool-down wait per run: the median measured here, else the cap."""
    measured = _median(history, lambda r: r.get("cooldown_wait_s"))
    if measured is not None:
        return measured, "median measured here"
    return cooldown_max_s, "its cap, nothing measured here"
