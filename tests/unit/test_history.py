"""The per-host duration history behind --dry-run's estimate: bounded, per host, tolerant."""
from __future__ import annotations

import json
import socket
from types import SimpleNamespace

from llenergymeasure.domain import ExperimentConfig
from llenergymeasure.study import history
from llenergymeasure.study.history import estimate_wall_s, load_history, record_runs


def _outcome(config, wall_s=20.0, window_s=5.0, tokens=128):
    entry = SimpleNamespace(status="completed", duration_s=wall_s, runner="local")
    result = SimpleNamespace(config=config, window_s=window_s, model_load_s=1.0, harness_wall_s=wall_s - 2,
                             output_tokens_total=tokens)
    return entry, SimpleNamespace(result=result)


def test_only_completed_runs_are_recorded_and_the_file_stays_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(history, "KEEP", 3)
    path = tmp_path / "h.jsonl"
    config = ExperimentConfig(model="m")
    failed = (SimpleNamespace(status="failed", duration_s=3.0, runner="local"), None)
    assert record_runs([failed, _outcome(config)], path) == 1
    for _ in range(4):
        record_runs([_outcome(config)], path)
    assert len(path.read_text().splitlines()) == 3


def test_other_hosts_and_malformed_lines_are_ignored(tmp_path):
    path = tmp_path / "h.jsonl"
    here = {"host": socket.gethostname(), "wall_s": 1.0}
    path.write_text("\n".join([json.dumps(here), "{not json", json.dumps({**here, "host": "elsewhere"}), "[]"]))
    assert load_history(path) == [here]


def test_a_history_that_cannot_be_written_never_fails_the_study(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert record_runs([_outcome(ExperimentConfig(model="m"))], blocker / "sub" / "h.jsonl") == 0


def test_estimate_prefers_the_same_configuration_then_the_same_model_then_the_engine(tmp_path):
    path = tmp_path / "h.jsonl"
    measured = ExperimentConfig(model="m", batch_size=4, n_prompts=8, max_output_tokens=16)
    record_runs([_outcome(measured, wall_s=20.0), _outcome(measured, wall_s=30.0)], path)
    runs = load_history(path)
    seconds, source = estimate_wall_s(measured, "local", runs, 999.0, 99.0)
    assert seconds == 25.0 and source.startswith("median of 2 runs of this configuration")
    bigger = ExperimentConfig(model="m", batch_size=4, n_prompts=16, max_output_tokens=16)
    seconds, source = estimate_wall_s(bigger, "local", runs, 999.0, 99.0)
    assert seconds == 20.0 + 5.0 / 128 * 256 and source.startswith("scaled from 2 runs of this model")
    other = ExperimentConfig(model="other", batch_size=4)
    seconds, source = estimate_wall_s(other, "local", runs, 999.0, 99.0)
    assert seconds == 20.0 + 99.0 and "other models" in source
    assert estimate_wall_s(other, "docker", runs, 999.0, 99.0) == (
        999.0, "assumed constants (no run of this engine measured on this host yet)")
