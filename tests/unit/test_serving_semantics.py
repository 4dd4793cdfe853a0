"""Serving figures as `vllm bench serve` users read them: tokens not chunks, goodput, arrivals, timeouts."""
from __future__ import annotations

import statistics

import pytest
from pydantic import ValidationError

from llem_harness.serving.arrivals import poisson_send_offsets_s, send_offsets_s
from llem_harness.serving.loadgen import RequestTrace
from llem_harness.serving.report import goodput, to_records, tokens_in_window, window_figures
from llenergymeasure.domain import ExperimentConfig, RequestRecord, RunSpec, ServingConfig
from llenergymeasure.study.study_run import default_timeout_s


def _trace(i, send, times, usage=None, prompt=0, done=None):
    return RequestTrace(index=i, prompt_index=prompt, send_s=send, token_times_s=times, status=200,
                        done_s=done if done is not None else (times[-1] if times else send + 1), usage=usage,
                        finish_reason="length")


def test_window_counts_tokens_not_chunks():
    # A server that packs two tokens per chunk: 3 chunks, 6 tokens by usage.
    tr = _trace(0, 0.0, [1.0, 2.0, 3.0], usage={"completion_tokens": 6, "prompt_tokens": 4})
    assert tokens_in_window(tr, 1.5, 3.5) == pytest.approx(4.0)
    w = window_figures([tr], 1.5, 3.5, "test")
    assert w.output_tokens == 4 and w.output_token_share == pytest.approx(4 / 6) and w.request_share == 1.0


def test_records_flag_overlong_outputs_label_repeats_and_keep_cached_counts():
    traces = [_trace(0, 0.0, [0.5, 0.6], usage={"completion_tokens": 34, "prompt_tokens": 8,
                                                "prompt_tokens_details": {"cached_tokens": 5}}),
              _trace(1, 0.1, [0.7, 0.8], prompt=0), _trace(2, 0.2, [0.9, 1.0], prompt=1)]
    records, itl = to_records(traces, [8, 8], max_output_tokens=32)
    assert [r.exceeds_max_output_tokens for r in records] == [True, False, False]
    assert [r.prompt_repeat for r in records] == [0, 1, 0]
    assert records[0].cached_prompt_tokens == 5 and records[1].cached_prompt_tokens is None
    assert records[1].ttft_s == pytest.approx(0.6) and itl == pytest.approx([0.1, 0.1, 0.1])


def _rec(ttft, tpot, e2e):
    return RequestRecord(index=0, batch_index=0, input_tokens=1, output_tokens=1 if tpot is None else 4,
                         ttft_s=ttft, tpot_s=tpot, e2e_latency_s=e2e)


def test_goodput_a_request_without_tpot_does_not_pass_a_tpot_slo():
    cfg = ServingConfig(concurrency=1, n_requests=4, slo={"tpot_s": 0.001})
    rate, share, reason = goodput([_rec(0.1, None, 0.6), _rec(0.1, 0.6, 2.0)], cfg, run_s=2.0)
    assert share == 0.0 and rate == 0.0 and reason is None


def test_goodput_e2e_slo_and_its_denominator():
    cfg = ServingConfig(concurrency=1, n_requests=4, streaming=False, slo={"e2e_s": 1.0})
    rate, share, _ = goodput([_rec(None, None, 0.5), _rec(None, None, 1.5)], cfg, run_s=4.0)
    assert share == 0.5 and rate == pytest.approx(1 / 4.0)


def test_an_slo_that_needs_streaming_is_refused_without_it():
    with pytest.raises(ValidationError, match="slo.ttft_s.*streaming"):
        ServingConfig(concurrency=1, n_requests=4, streaming=False, slo={"ttft_s": 1.0})


def test_the_cli_refuses_an_slo_it_cannot_evaluate_with_exit_2(tmp_path):
    from tests.helpers import run_llem

    (tmp_path / "model.gguf").write_bytes(b"")
    study = tmp_path / "study.yaml"
    study.write_text(f"name: slo\nresults_dir: {tmp_path / 'results'}\nbase:\n  model: {tmp_path}\n"
                     "  engine: llama_cpp\n  mode: serving\n"
                     "  serving: {n_requests: 4, streaming: false, slo: {tpot_s: 0.1}}\n")
    proc = run_llem("run", str(study), timeout=120)
    assert proc.returncode == 2 and "serving.slo.tpot_s cannot be evaluated without streaming" in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


def test_gamma_arrivals_keep_the_rate_and_change_the_burstiness():
    poisson = send_offsets_s(3000, 5.0, 7)
    assert poisson == poisson_send_offsets_s(3000, 5.0, 7)  # burstiness 1 = the Poisson schedule
    for burstiness in (0.25, 4.0):
        a = send_offsets_s(3000, 5.0, 7, burstiness)
        assert a == send_offsets_s(3000, 5.0, 7, burstiness) and a[0] == 0.0
        gaps = [b - x for x, b in zip(a, a[1:])]
        assert statistics.mean(gaps) == pytest.approx(0.2, rel=0.1)
        # gamma of shape k: CV = 1/sqrt(k)
        assert statistics.stdev(gaps) / statistics.mean(gaps) == pytest.approx(burstiness ** -0.5, rel=0.15)
    with pytest.raises(ValidationError, match="burstiness"):
        ServingConfig(concurrency=2, n_requests=4, burstiness=0.5)


def _spec(**serving) -> RunSpec:
    cfg = ExperimentConfig(model="m", engine="llama_cpp", mode="serving", serving=serving)
    return RunSpec(run_id="r", study_id="s", experiment_index=0, cycle=1, config_hash=cfg.config_hash(), config=cfg,
                   gpu_ids=None)


def test_default_timeout_follows_the_serving_settings():
    small = default_timeout_s(_spec(concurrency=1, n_requests=4))
    assert default_timeout_s(_spec(concurrency=1, n_requests=400)) > small + 300
    assert default_timeout_s(_spec(concurrency=1, n_requests=4, ready_timeout_s=3000)) > small + 2000
    capped = default_timeout_s(_spec(concurrency=1, n_requests=4000, duration_s=10))
    assert capped < default_timeout_s(_spec(concurrency=1, n_requests=4000))
    assert default_timeout_s(_spec(request_rate=0.01, n_requests=10)) > small + 900  # sends spread over 1000 s
