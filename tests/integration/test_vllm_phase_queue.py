"""Phase energy under continuous batching, with vLLM for real (its CPU build): more prompts than
`max_num_seqs`, so half of them wait in vLLM's queue while the first half decodes.

The GPU power timeline is a replayed synthetic trace (this machine has no GPU); the schedule, the
queue and every request time are vLLM's own. Before, prefill ran from each request's submission, so
the queued half was "in prefill" for the whole first wave.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from llenergymeasure.domain import ExperimentResult, StudyManifest
from tests.helpers import REPO_ROOT
from tests.vllm_support import CPU_ENGINE, run_llem_with, vllm_python, write_study

pytestmark = pytest.mark.slow
TRACE = REPO_ROOT / "tests" / "fixtures" / "traces" / "ci_idle_load.jsonl"


@pytest.fixture(scope="module")
def queued_run(tiny_model_dir, tmp_path_factory):
    python = vllm_python()
    tmp = tmp_path_factory.mktemp("vllm-queue")
    assert CPU_ENGINE["max_num_seqs"] == 4
    study = write_study(tmp / "vllm-queue.yaml", tiny_model_dir, tmp / "results",
                        base={"n_prompts": 8, "batch_size": 8, "max_output_tokens": 32,
                              "decoding": {"ignore_eos": True}},
                        runners={"vllm": "local"})
    proc = run_llem_with(python, "run", str(study), env={"LLEM_NVML_REPLAY": str(TRACE)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    study_dir = next((tmp / "results").iterdir())
    manifest = StudyManifest.model_validate_json((study_dir / "manifest.json").read_text())
    assert [e.status for e in manifest.entries] == ["completed"]
    return ExperimentResult.model_validate_json(next(Path(study_dir, "runs").glob("*/result.json")).read_text())


def test_queued_requests_are_not_in_prefill_while_they_wait(queued_run):
    r = queued_run
    assert r.n_requests == 8 and r.effective["max_num_seqs"] == 4
    assert all(q.queue_s is not None and q.queue_s >= 0 for q in r.requests)
    # The second wave waited for the first to finish its 32 tokens: longer than its own prefill took.
    waited = [q for q in r.requests if q.queue_s > (q.ttft_s - q.queue_s)]
    assert len(waited) >= 4, [(q.queue_s, q.ttft_s) for q in r.requests]
    phase = r.phase_energy
    assert phase.method == "timeline_integration", phase.unavailable_reason
    assert phase.prefill_start == "first_scheduled" and phase.queue_time_s > 0
    # Prefill from submission would cover the window up to the last first token (the largest TTFT).
    assert phase.prefill_time_s < 0.9 * max(q.ttft_s for q in r.requests)
    assert phase.prefill_time_s <= sum(q.ttft_s - q.queue_s for q in r.requests) + 1e-3
    assert phase.prefill_energy_j + phase.decode_energy_j <= r.energy.gpu_energy_raw_j * (1 + 1e-9)
