"""Real studies of the real tiny model through the local runner (real harness, real transformers)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from llenergymeasure import run_study
from llenergymeasure.domain import ExperimentResult, StudyConfig, StudyManifest
from tests.helpers import expected_stages, harness_stages, quickstart_data, run_llem, small_measurement

pytestmark = pytest.mark.slow
# Minutes of CPU work for the tiny model: a run that is certainly still going when we stop it.
LONG_WORKLOAD = {"n_prompts": 500, "max_output_tokens": 256, "decoding": {"ignore_eos": True},
                 "measurement": {"warmup": {"enabled": False}}}


def _quickstart(tiny_model_dir: Path, results_dir: Path, **execution) -> StudyConfig:
    return StudyConfig.model_validate(quickstart_data(tiny_model_dir, results_dir, **execution))


@pytest.fixture(scope="module")
def quickstart_result(tiny_model_dir, tmp_path_factory):
    return run_study(_quickstart(tiny_model_dir, tmp_path_factory.mktemp("results")))


def test_quickstart_completes_every_run(quickstart_result):
    result = quickstart_result
    study_dir = Path(result.study_dir)
    manifest = StudyManifest.model_validate_json((study_dir / "manifest.json").read_text())
    assert manifest.status == "completed"
    assert [e.status for e in manifest.entries] == ["completed"] * 4
    assert manifest.counters.completed == 4 and manifest.counters.total == 4
    assert [(e.experiment_index, e.cycle) for e in manifest.entries] == [(0, 1), (1, 1), (0, 2), (1, 2)]
    assert result.summary.completed == 4 and len(result.experiments) == 4
    assert len(result.result_files) == 4


def test_every_result_is_readable_with_real_counts_and_timings(quickstart_result):
    study_dir = Path(quickstart_result.study_dir)
    for rel in quickstart_result.result_files:
        run_dir = (study_dir / rel).parent
        assert run_dir.parent.name == "runs"
        result = ExperimentResult.model_validate_json((study_dir / rel).read_text())
        assert (run_dir / "experiment.json").is_file() and (run_dir / "harness.log").is_file()
        assert result.n_requests == 8 == len(result.requests)
        assert result.input_tokens_total == sum(r.input_tokens for r in result.requests)
        assert result.output_tokens_total == sum(r.output_tokens for r in result.requests)
        assert all(1 <= r.output_tokens <= 16 for r in result.requests)
        assert all(r.input_tokens <= 32 for r in result.requests)
        assert result.window_s > 0 and result.model_load_s > 0
        assert all(0 < r.ttft_s <= r.e2e_latency_s for r in result.requests)
        assert result.effective["device"] == "cpu" and result.effective["dtype"] == "float32"
        assert result.environment.torch_version and result.environment.transformers_version
        # No GPU here: energy is null with a reason, never a guess.
        assert result.energy.gpu_energy_raw_j is None and result.energy.unavailable_reason
        assert result.metrics.energy_per_output_token_j is None


def test_run_directories_follow_the_contract(quickstart_result):
    names = sorted(p.name for p in (Path(quickstart_result.study_dir) / "runs").iterdir())
    assert names[0].startswith("001_c1_transformers-tiny-llm-bs1-auto_")
    assert all(len(n.rsplit("_", 1)[1]) == 8 for n in names)


def test_run_directories_are_writable_by_their_owner_only(quickstart_result):
    """Another user on the host must not replace a result.json or plant the harness's files."""
    run_dirs = list((Path(quickstart_result.study_dir) / "runs").iterdir())
    assert run_dirs and all(d.stat().st_mode & 0o022 == 0 for d in run_dirs), [oct(d.stat().st_mode) for d in run_dirs]


def test_offline_runs_the_same_skeleton_as_serving(quickstart_result):
    """The run skeleton's stages, in its order, with the model load as the load step."""
    for run_dir in (Path(quickstart_result.study_dir) / "runs").iterdir():
        assert harness_stages(run_dir) == expected_stages("loading")


def test_single_experiment_from_flags_without_yaml(tiny_model_dir, tmp_path):
    proc = run_llem("run", "--model", str(tiny_model_dir), "-n", "4", "--max-output-tokens", "4",
                    "-o", str(tmp_path), "--quiet")
    assert proc.returncode == 0, proc.stderr
    study_dir = Path(proc.stdout.strip().splitlines()[-1])
    manifest = json.loads((study_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["counters"]["completed"] == 1
    result = json.loads((study_dir / manifest["entries"][0]["result_file"]).read_text())
    assert result["n_requests"] == 4


def test_failing_experiment_is_recorded_and_the_study_goes_on(tiny_model_dir, tmp_path):
    (tmp_path / "no-such-model").mkdir()  # exists (so the run starts) but holds no model: the harness fails
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"question number {i} about energy"}) + "\n" for i in range(3)))
    study = StudyConfig.model_validate({
        "name": "mixed", "results_dir": str(tmp_path / "results"),
        "base": {"n_prompts": 2, "max_output_tokens": 4, "measurement": small_measurement()},
        "experiments": [{"model": str(tmp_path / "no-such-model")}, {"model": str(tiny_model_dir)},
                        {"model": str(tiny_model_dir), "dataset": str(prompts)}],
        "execution": {"experiment_gap_s": 1.0},
    })
    result = run_study(study)
    manifest = json.loads((Path(result.study_dir) / "manifest.json").read_text())
    statuses = [(e["status"], e.get("error_type")) for e in manifest["entries"]]
    assert statuses[1:] == [("completed", None), ("completed", None)]
    assert result.summary.completed == 2 and result.summary.failed == 1 and result.status == "completed"
    jsonl_result = result.experiments[1]
    assert jsonl_result.config.dataset.source == "jsonl" and jsonl_result.n_requests == 2
    # The configured gap separates consecutive runs.
    from datetime import datetime
    ends = [datetime.fromisoformat(e["finished_at"]) for e in manifest["entries"]]
    starts = [datetime.fromisoformat(e["started_at"]) for e in manifest["entries"] if "started_at" in e]
    assert (starts[-1] - ends[1]).total_seconds() >= 1.0
    assert statuses[0][0] == "failed" and statuses[0][1] in ("OSError", "ValueError", "HFValidationError",
                                                         "RepositoryNotFoundError")
    failed_dir = Path(result.study_dir) / "runs" / manifest["entries"][0]["run_id"]
    error = json.loads((failed_dir / "error.json").read_text())
    assert error["type"] == statuses[0][1] and error["traceback"] and error["stage"] == "loading"


def test_results_dir_that_cannot_be_created_exits_2_naming_the_path(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    proc = run_llem("run", "-m", "m", "-o", str(blocker / "results"))
    assert proc.returncode == 2
    assert f"results directory {blocker / 'results'} cannot be created" in proc.stderr
    assert "Traceback" not in proc.stderr and not (blocker.parent / "results").exists()


def test_wall_clock_timeout_kills_the_run(tiny_model_dir, tmp_path):
    study = StudyConfig.model_validate({
        "name": "timeout", "results_dir": str(tmp_path), "execution": {"timeout_s": 3},
        "base": LONG_WORKLOAD | {"model": str(tiny_model_dir)},
    })
    started = time.monotonic()
    result = run_study(study)
    assert time.monotonic() - started < 60
    entry = json.loads((Path(result.study_dir) / "manifest.json").read_text())["entries"][0]
    assert entry["status"] == "failed" and entry["error_type"] == "timeout"
    assert "wall-clock timeout" in entry["error_message"]


def test_sigint_marks_the_manifest_interrupted_and_leaves_no_process(tiny_model_dir, tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({
        "name": "sigint", "results_dir": str(tmp_path / "results"),
        "base": LONG_WORKLOAD | {"model": str(tiny_model_dir)},
        "execution": {"n_cycles": 3}}))
    proc = subprocess.Popen([sys.executable, "-c", "from llenergymeasure.cli.main import main; main()", "run",
                             str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    study_dir = _wait_for_running_entry(tmp_path / "results")
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group
    proc.communicate(timeout=60)
    assert proc.returncode == 130
    manifest = json.loads((study_dir / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    assert manifest["entries"][0]["status"] == "interrupted"
    assert [e["status"] for e in manifest["entries"][1:]] == ["pending", "pending"]
    leftovers = subprocess.run(["pgrep", "-f", f"llem_harness {study_dir}"], capture_output=True, text=True)
    assert leftovers.stdout.strip() == ""


def _wait_for_running_entry(results_dir: Path, timeout_s: float = 60) -> Path:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for manifest in results_dir.glob("*/manifest.json"):
            try:
                data = json.loads(manifest.read_text())
            except ValueError:
                continue
            if data["entries"] and data["entries"][0]["status"] == "running":
                time.sleep(2.0)  # let the harness start its work
                return manifest.parent
        time.sleep(0.2)
    raise AssertionError("the study never started a run")


def test_a_closed_stdout_does_not_stop_the_study(tiny_model_dir, tmp_path):
    """`llem run study.yaml | head -1`: the reader leaves after one line; every run is still measured,
    one note on stderr says why the progress stopped, and nothing prints a traceback."""
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(quickstart_data(tiny_model_dir, tmp_path / "results")))
    proc = subprocess.Popen([sys.executable, "-c", "from llenergymeasure.cli.main import main; main()", "run",
                             str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()
    proc.stdout.close()  # what `head -1` does once it has its line
    stderr = proc.stderr.read()
    assert proc.wait(timeout=600) == 0, stderr
    assert first.startswith("Study directory: ")
    manifest = json.loads((Path(first.split(": ", 1)[1].strip()) / "manifest.json").read_text())
    assert manifest["status"] == "completed" and len(manifest["entries"]) == 4
    assert all(e["status"] == "completed" for e in manifest["entries"])
    assert "standard output failed" in stderr and "Traceback" not in stderr and "Exception ignored" not in stderr

    show = subprocess.Popen([sys.executable, "-c", "from llenergymeasure.cli.main import main; main()", "results",
                             "show", str(Path(first.split(": ", 1)[1].strip()))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    show.stdout.close()  # gone before the first line: `llem results show | head -0`
    assert show.wait(timeout=120) == 1  # click's code for a closed pipe, quietly
    assert show.stderr.read() == ""
