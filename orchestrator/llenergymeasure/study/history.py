"""Run durations measured on this host, kept so that `--dry-run` estimates from what it saw.

Why: an estimate from assumed constants (decode step, load speed) was off by an order of magnitude
on a loaded CPU host. Every completed run appends one line to a small JSON-lines file (per user;
`$LLEM_HISTORY`, default `~/.cache/llenergymeasure/run-history.jsonl`): host, engine, runner,
model, workload and the measured durations (the run's wall time as the orchestrator saw it, the
harness's model load and measured window). The file keeps the last `KEEP` lines. A dry run
matches each experiment against the lines of *this* host (a shared home directory serves several
hosts) and says which match it used:

  1. the same configuration (engine, runner, model, mode, batch size, prompts, lengths): median
     wall time of those runs;
  2. the same engine, runner and model: median overhead (wall − window) plus the window scaled by
     the tokens to generate, at the nearest measured batch size;
  3. the same engine and runner, another model: median overhead plus the crude window estimate;
  4. nothing measured here yet: the crude constants of `domain.estimates` (labelled as such).
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


def record_runs(outcomes: list, path: Path | None = None) -> int:
    """Append one line per completed run of `outcomes` [(ManifestEntry, RunOutcome | None)]; never raises
    (a history that cannot be written must not fail a study). Returns the lines written."""
    try:
        lines = []
        host = socket.gethostname()
        for entry, outcome in outcomes:
            result = getattr(outcome, "result", None)
            if entry.status != "completed" or result is None or not entry.duration_s:
                continue
            lines.append(json.dumps({
                "host": host, "recorded_unix_s": round(time.time(), 1), "runner": entry.runner,
                **_workload(result.config), "wall_s": entry.duration_s, "window_s": result.window_s,
                "model_load_s": result.model_load_s, "harness_wall_s": result.harness_wall_s,
                "output_tokens": result.output_tokens_total}, separators=(",", ":")))
        if not lines:
            return 0
        path = path or history_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        old = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
        kept = (old + lines)[-KEEP:]
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        tmp.write_text("\n".join(kept) + "\n", encoding="utf-8")
        tmp.replace(path)
        return len(lines)
    except Exception:  # noqa: BLE001 - best effort by design (read-only home, full disk...)
        return 0


def load_history(path: Path | None = None, host: str | None = None) -> list[dict]:
    """This host's records (malformed lines skipped)."""
    path = path or history_path()
    host = host or socket.gethostname()
    records = []
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("host") == host and isinstance(record.get("wall_s"), (int, float)):
            records.append(record)
    return records


def estimate_wall_s(config: Any, runner: str | None, history: list[dict], crude_s: float,
                    crude_window_s: float) -> tuple[float, str]:
    """(seconds for one run of `config`, where the figure comes from); see the module docstring."""
    want = _workload(config)
    same_engine = [r for r in history if r.get("engine") == config.engine and (runner is None or r.get("runner") == runner)]
    exact = [r for r in same_engine if all(r.get(k) == v for k, v in want.items())]
    if exact:
        return statistics.median(r["wall_s"] for r in exact), f"median of {len(exact)} runs of this configuration here"
    same_model = [r for r in same_engine if r.get("model") == config.model and r.get("mode") == config.mode
                  and r.get("output_tokens") and r.get("window_s")]
    if same_model:
        nearest = min(abs(r["batch_size"] - config.batch_size) for r in same_model)
        near = [r for r in same_model if abs(r["batch_size"] - config.batch_size) == nearest]
        overhead = statistics.median(r["wall_s"] - r["window_s"] for r in near)
        per_token = statistics.median(r["window_s"] / r["output_tokens"] for r in near)
        tokens = config.n_prompts * config.max_output_tokens
        return (max(overhead, 0.0) + per_token * tokens,
                f"scaled from {len(near)} runs of this model here at batch size {near[0]['batch_size']}")
    if same_engine:
        overhead = statistics.median(max(r["wall_s"] - (r.get("window_s") or 0.0), 0.0) for r in same_engine)
        return (overhead + crude_window_s,
                f"start-up and load from {len(same_engine)} {config.engine} runs here (other models); "
                "window from assumed constants")
    return crude_s, "assumed constants (no run of this engine measured on this host yet)"
