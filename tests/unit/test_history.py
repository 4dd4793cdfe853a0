"""The per-host duration history behind --dry-run's estimate: bounded, per host, tolerant."""
from __future__ import annotations

import json
import socket
from types import SimpleNamespace

from llenergymeasure.domain import ExperimentConfig
from llenergymeasure.study import history
from llenergymeasure.study.history import estimate_wall_s, load_history, record_runs


def _outcome(config, wall_s=20.0, window_s=5.0, tokens=128, warmup_s=3.0, warmup_batches=6, baseline_s=0.0):
    entry = SimpleNamespace(status="completed", duration_s=wall_s, runner="local")
    result = SimpleNamespace(config=config, window_s=window_s, model_load_s=1.0, harness_wall_s=wall_s - 2,
                             output_tokens_total=tokens, loaded_idle=None, thermal=None,
                             baseline=SimpleNamespace(duration_s=baseline_s, fresh=True) if baseline_s else None,
                             warmup=SimpleNamespace(duration_s=warmup_s, iterations=warmup_batches))
    return entry, SimpleNamespace(result=result)


CRUDE = {"estimated_wall_time_s": 999.0, "baseline_s": 0.0, "warmup_batches": 0, "measured_batches": 1,
         "batch_s": 99.0}


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
    seconds, source, _ = estimate_wall_s(measured, "local", runs, CRUDE)
    assert seconds == 25.0 and source.startswith("median of 2 runs of this configuration")
    bigger = ExperimentConfig(model="m", batch_size=4, n_prompts=16, max_output_tokens=16)
    seconds, source, parts = estimate_wall_s(bigger, "local", runs, CRUDE)
    # start-up: median(wall - window - warm-up) = 17; warm-up: the 6 batches run here × a batch's time
    # (5 s / 128 tokens × 4 × 16); window: 5 s / 128 tokens × 256
    batch_s = 5.0 / 128 * 64
    assert parts == {"start-up": 17.0, "baseline": 0.0, "warm-up": 6 * batch_s, "warm-up batches": 6,
                     "window": 5.0 / 128 * 256}
    assert seconds == 17.0 + 6 * batch_s + 10.0 and source.startswith("scaled from 2 runs of this model")
    other = ExperimentConfig(model="other", batch_size=4)
    seconds, source, parts = estimate_wall_s(other, "local", runs, CRUDE)
    assert parts["start-up"] == 17.0 and parts["window"] == 99.0 and "other models" in source
    seconds, source, _ = estimate_wall_s(other, "docker", runs, CRUDE)
    assert source == "assumed constants (no run of this engine measured on this host yet)"


def test_other_measurement_settings_are_not_the_same_configuration(tmp_path):
    """A run with another warm-up or baseline takes another time: it is scaled, never matched as equal."""
    path = tmp_path / "h.jsonl"
    measured = ExperimentConfig(model="m", batch_size=4, n_prompts=8, max_output_tokens=16)
    record_runs([_outcome(measured, wall_s=20.0, warmup_batches=6)], path)
    longer = measured.model_copy(update={"measurement": measured.measurement.model_copy(
        update={"warmup": measured.measurement.warmup.model_copy(update={"min_batches": 20, "max_batches": 40})})})
    seconds, source, parts = estimate_wall_s(longer, "local", load_history(path), CRUDE)
    # no run with these warm-up settings here: to max_batches (40 × 2.5 s), bounded by 60 s + one batch
    assert source.startswith("scaled") and parts["warm-up batches"] == 40 and parts["warm-up"] == 60.0 + 2.5
    assert seconds == (20.0 - 5.0 - 3.0) + 62.5 + 5.0  # start-up as measured, warm-up, window


def test_warm_up_without_history_runs_to_its_bound_in_batches_or_time():
    """Nothing measured: a warm-up is assumed to run to max_batches, and no longer than max_duration_s."""
    config = ExperimentConfig(model="m")
    w = config.measurement.warmup
    _, _, parts = estimate_wall_s(config, "local", [], {**CRUDE, "batch_s": 0.1})
    assert parts["warm-up batches"] == w.max_batches and parts["warm-up"] == w.max_batches * 0.1
    _, _, parts = estimate_wall_s(config, "local", [], CRUDE)  # 30 batches of 99 s: the 60 s bound + one batch
    assert parts["warm-up"] == w.max_duration_s + 99.0


def test_a_study_records_its_own_overhead_apart_from_runs_and_waits(tmp_path):
    path = tmp_path / "h.jsonl"
    config = ExperimentConfig(model="m")
    assert history.study_overhead_s(path)[1].startswith("assumed")
    record_runs([_outcome(config, wall_s=20.0), _outcome(config, wall_s=30.0)], path, study_wall_s=60.0,
                waited_s=4.0)
    assert len(load_history(path)) == 2  # the study line is not a run
    assert history.study_overhead_s(path) == (6.0, "median of 1 studies here")
