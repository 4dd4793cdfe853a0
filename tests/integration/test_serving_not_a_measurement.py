"""Serving runs that measured nothing are not published as measurements.

Real: the harness (`process_entry.main`, in this process so the server command can be swapped), the load
generator, HTTP streaming and the steady-state window, against a real OpenAI-compatible streaming
server process: bench/loadgen_stub_server.py (no model; every token a few milliseconds apart) in
place of an engine's server, which this machine may not have. The server is killed mid-load for
real; the too-short windows are the settings an adversarial campaign found.
"""
from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import pytest

from llenergymeasure.domain import (ERROR_FILE, RESULT_FILE, RUN_SPEC_FILE, ExperimentConfig, ExperimentResult,
                                    HarnessError, RunSpec)
from tests.helpers import REPO_ROOT, small_measurement

pytest.importorskip("httpx")
pytestmark = pytest.mark.slow
STUB = REPO_ROOT / "bench" / "loadgen_stub_server.py"


def _run(tmp_path: Path, model: str, serving: dict, kill_server_after_s: float | None = None,
         itl_s: float = 0.002, max_output_tokens: int = 8):
    from llem_harness import process_entry
    from llem_harness.serving import load as serving_load
    from llem_harness.serving.process import ServerProcess
    from llem_harness.serving.servers import ServerSpec

    cfg = ExperimentConfig(model=model, engine="llama_cpp", mode="serving", max_input_tokens=16,
                           max_output_tokens=max_output_tokens, n_prompts=serving["n_requests"],
                           measurement=small_measurement(), serving=serving)
    run_dir = tmp_path / "runs" / "001_c1_stub"
    run_dir.mkdir(parents=True)
    spec = RunSpec(study_id="stub-test", run_id=run_dir.name, experiment_index=0, cycle=1, config=cfg,
                   config_hash=cfg.config_hash())
    (run_dir / RUN_SPEC_FILE).write_text(spec.model_dump_json())

    def stub_spec(config, port, files_dir=None):
        return ServerSpec(argv=[sys.executable, str(STUB), "--port", str(port)], verified=False,
                          extra_body={"stub_itl_s": itl_s})

    servers: list[ServerProcess] = []
    original_start = ServerProcess.start

    def start_and_keep(self):
        servers.append(self)
        return original_start(self)

    original_run = serving_load.ServingLoad.run_measured

    def run_and_kill(self, session):  # the engine's server killed a moment into the measured load
        if kill_server_after_s is not None:
            threading.Timer(kill_server_after_s, lambda: servers[0]._proc.kill()).start()
        return original_run(self, session)

    mp = pytest.MonkeyPatch()
    mp.delenv("LLEM_NVML_REPLAY", raising=False)
    mp.setattr(serving_load, "server_spec", stub_spec)
    mp.setattr(ServerProcess, "start", start_and_keep)
    mp.setattr(serving_load.ServingLoad, "run_measured", run_and_kill)
    try:
        code = process_entry.main([str(run_dir)])
    finally:
        mp.undo()
        for server in servers:
            server.stop()
    return code, run_dir


def test_a_server_killed_mid_load_fails_the_run(tmp_path, tiny_model_dir):
    code, run_dir = _run(tmp_path, str(tiny_model_dir), {"n_requests": 400, "concurrency": 4},
                         kill_server_after_s=1.0, itl_s=0.01)
    assert code == 1 and not (run_dir / RESULT_FILE).exists()
    error = HarnessError.model_validate_json((run_dir / ERROR_FILE).read_text())
    assert error.stage == "measuring" and "the server exited during the load" in error.message
    requests = [json.loads(line) for line in (run_dir / "requests.jsonl").read_text().splitlines()]
    assert any(r["status"] == 200 for r in requests) and any(r["error"] for r in requests)


@pytest.mark.parametrize("serving", [
    {"n_requests": 5, "concurrency": 4},        # one completion in a window of milliseconds
    {"n_requests": 8, "request_rate": 1000.0},  # a window of a few ms, between sends
], ids=["closed-loop-one-completion", "open-loop-7ms"])
def test_a_window_too_short_to_measure_publishes_null_not_a_rate(tmp_path, tiny_model_dir, serving):
    code, run_dir = _run(tmp_path, str(tiny_model_dir), serving)
    assert code == 0
    result = ExperimentResult.model_validate_json((run_dir / RESULT_FILE).read_text())
    window = result.serving.window
    assert window.unmeasured_reason, window
    assert result.metrics.output_tokens_per_s is None and result.metrics.requests_per_s is None
    assert result.metrics.energy_per_output_token_j is None and result.metrics.energy_per_request_j is None
    assert result.serving.energy_per_output_token_window_j is None
    assert any(window.unmeasured_reason in w for w in result.measurement_warnings)
    assert result.serving.n_ok == serving["n_requests"]  # the requests themselves were served


def test_a_window_long_enough_is_published(tmp_path, tiny_model_dir):
    code, run_dir = _run(tmp_path, str(tiny_model_dir), {"n_requests": 16, "concurrency": 2}, itl_s=0.01)
    assert code == 0
    result = ExperimentResult.model_validate_json((run_dir / RESULT_FILE).read_text())
    assert result.serving.window.unmeasured_reason is None
    assert result.metrics.output_tokens_per_s > 0 and result.metrics.requests_per_s > 0
    # One token per streamed chunk, proven by the server's usage: the gaps are inter-token latencies.
    assert result.serving.itl_definition.startswith("inter-token") and result.metrics.itl_s.n > 0


def test_cpu_energy_per_token_has_the_gpu_figures_denominator(tmp_path, tiny_model_dir, monkeypatch):
    """Serving RAPL energy is the window's: per token of the window, as GPU J/token (was: per token of the run)."""
    from tests.integration.test_energy_window_run import FakeRapl

    rapl = FakeRapl(tmp_path / "powercap")
    monkeypatch.setenv("LLEM_POWERCAP_ROOT", str(tmp_path / "powercap"))
    try:
        code, run_dir = _run(tmp_path, str(tiny_model_dir), {"n_requests": 16, "concurrency": 2}, itl_s=0.01)
    finally:
        rapl.close()
    assert code == 0
    result = ExperimentResult.model_validate_json((run_dir / RESULT_FILE).read_text())
    cpu, window = result.cpu_energy, result.serving.window
    assert cpu.package_energy_j > 0 and 0 < window.output_tokens < result.output_tokens_total
    assert cpu.package_energy_per_output_token_j == pytest.approx(cpu.package_energy_j / window.output_tokens)


def test_streaming_off_counts_the_tokens_of_requests_completed_in_the_window(tmp_path, tiny_model_dir):
    """No token times: never 0 tok/s and 0 % of tokens, but the requests completed inside the window, said so."""
    code, run_dir = _run(tmp_path, str(tiny_model_dir), {"n_requests": 16, "concurrency": 2, "streaming": False},
                         itl_s=0.01)
    assert code == 0
    result = ExperimentResult.model_validate_json((run_dir / RESULT_FILE).read_text())
    window, metrics = result.serving.window, result.metrics
    assert window.unmeasured_reason is None and "completed inside the window" in window.output_tokens_basis
    assert window.output_tokens == 8 * window.requests_completed > 0 and window.output_token_share > 0
    assert metrics.output_tokens_per_s == pytest.approx(window.output_tokens / window.duration_s)
    assert metrics.ttft_s.n == 0 and metrics.itl_s.n == 0  # not measured without streaming: null
    assert result.serving.itl_unavailable_reason.startswith("streaming off")
    requests = [json.loads(line) for line in (run_dir / "requests.jsonl").read_text().splitlines()]
    assert sum(r["output_tokens_in_window"] for r in requests) == window.output_tokens
