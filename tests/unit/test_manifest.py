"""Manifest transitions, counters and atomic writes."""
from __future__ import annotations

import json
import threading

from llenergymeasure.domain import ManifestEntry, StudyManifest
from llenergymeasure.study.manifest import ManifestWriter, new_manifest


def _writer(tmp_path, n=4) -> ManifestWriter:
    entries = [ManifestEntry(experiment_index=i, cycle=1, config_summary=f"exp {i}") for i in range(n)]
    writer = ManifestWriter(new_manifest("sid", "study", tmp_path, 1, "interleaved", entries), tmp_path / "manifest.json")
    writer.write()
    return writer


def _read(tmp_path) -> dict:
    return json.loads((tmp_path / "manifest.json").read_text())


def test_transitions_update_entries_and_counters(tmp_path):
    writer = _writer(tmp_path)
    writer.update(0, status="running", run_id="001_c1_x")
    assert _read(tmp_path)["counters"] == {"total": 4, "pending": 3, "submitted": 0, "running": 1, "completed": 0,
                                            "failed": 0, "skipped": 0, "interrupted": 0}
    writer.update(0, status="completed", result_file="runs/001_c1_x/result.json")
    writer.update(1, status="failed", error_type="timeout", error_message="wall-clock timeout")
    writer.set_status("completed")
    data = _read(tmp_path)
    assert data["status"] == "completed"
    assert data["counters"]["completed"] == 1 and data["counters"]["failed"] == 1 and data["counters"]["pending"] == 2
    assert data["entries"][1]["error_type"] == "timeout"
    assert data["entries"][0]["result_file"] == "runs/001_c1_x/result.json"
    # The cached rendering is exactly what the model would serialise: it round-trips.
    assert StudyManifest.model_validate(data).entries[0].status == "completed"


def test_file_is_pretty_json(tmp_path):
    _writer(tmp_path, n=1)
    text = (tmp_path / "manifest.json").read_text()
    assert text.startswith("{\n  \"schema_version\"") and "\n    {\"experiment_index\":0,\"cycle\":1" in text


def test_a_reader_never_sees_a_partial_file(tmp_path):
    writer = _writer(tmp_path, n=2000)
    stop = threading.Event()
    errors: list[str] = []
    reads = [0]

    def reader():
        while not stop.is_set():
            try:
                json.loads((tmp_path / "manifest.json").read_text())
                reads[0] += 1
            except ValueError as exc:
                errors.append(str(exc))

    thread = threading.Thread(target=reader)
    thread.start()
    for i in range(150):
        writer.update(i, status="running")
        writer.update(i, status="completed")
    stop.set()
    thread.join()
    assert reads[0] > 0
    assert errors == []


def test_failed_write_is_a_warning_not_a_crash(tmp_path, caplog):
    writer = _writer(tmp_path, n=1)
    writer.path = tmp_path / "missing-dir" / "manifest.json"
    writer.update(0, status="running")  # must not raise
    assert writer.write_failures == 1
    assert "the study goes on" in caplog.text
    writer.path = tmp_path / "manifest.json"
    writer.update(0, status="completed")
    assert _read(tmp_path)["entries"][0]["status"] == "completed"


def test_update_many_applies_every_transition_in_one_write(tmp_path):
    writer = _writer(tmp_path)
    writes, write = [], writer.write
    writer.write = lambda fsync=False: writes.append(fsync) or write(fsync)
    writer.update_many({i: {"status": "submitted", "slurm_job_id": f"7_{i}"} for i in range(3)})
    data = _read(tmp_path)
    assert data["counters"]["submitted"] == 3 and data["counters"]["pending"] == 1
    assert [e.get("slurm_job_id") for e in data["entries"]] == ["7_0", "7_1", "7_2", None]
    assert len(writes) == 1
    writer.update_many({})  # nothing to apply: nothing rewritten
    assert len(writes) == 1
