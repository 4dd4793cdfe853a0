"""One definition per metric: latency, phase energy, cache accounting, serving figures (pure functions).

Each test pins a definition that differed between engines or modes before (see docs/metrics.md).
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from _measurement_helpers import measure, replay_session
from llem_harness.measurement.phases import OVERLAP_ATTRIBUTION, phase_energy, split_phases, subtract, union
from llem_harness.offline_batches import _label_repeats, _requests_from_outputs
from llem_harness.engines.base import BatchOutput, GeneratedRequest, completion_requests
from llenergymeasure.domain import ExperimentConfig, RequestRecord, prompt_cache
from llenergymeasure.domain.latency import request_latency


# -- latency -----------------------------------------------------------------------------------

def test_one_latency_definition_from_submission():
    lat = request_latency(10.0, 4, [10.5, 10.7, 10.8, 11.1])
    assert lat.ttft_s == pytest.approx(0.5) and lat.e2e_latency_s == pytest.approx(1.1)
    assert lat.tpot_s == pytest.approx(0.6 / 3) and lat.itl_s == pytest.approx([0.2, 0.1, 0.3])
    first_last = request_latency(10.0, 4, first_token_s=10.5, last_token_s=11.1)
    assert (first_last.ttft_s, first_last.e2e_latency_s, first_last.itl_s) == (lat.ttft_s, lat.e2e_latency_s, [])
    plain = request_latency(10.0, 4, done_s=12.0)  # non-streamed response: e2e only
    assert plain.ttft_s is None and plain.tpot_s is None and plain.e2e_latency_s == pytest.approx(2.0)
    assert request_latency(10.0, 1, [10.5]).tpot_s is None


# -- phase energy ------------------------------------------------------------------------------

def _overlapping_spans(n: int = 8):
    """n requests submitted together to a continuous-batching engine: prefill 0-1 s, decode to 10 s."""
    return [s for i in range(n) for s in ((0.0, 1.0 + 0.01 * i, "prefill"), (1.0 + 0.01 * i, 10.0, "decode"))]


def test_phase_union_never_counts_concurrent_requests_twice():
    spans = _overlapping_spans()
    prefill, decode, overlap = split_phases(spans, (0.0, 10.0))
    assert union([(0, 1), (0.5, 2), (3, 4)]) == [(0, 2), (3, 4)]
    assert subtract([(0, 10)], [(1, 2), (3, 4)]) == [(0, 1), (2, 3), (4, 10)]
    assert prefill == [(0.0, 1.07)] and decode == [(1.07, 10.0)] and overlap == pytest.approx(0.07)
    power_w = 150.0
    phase = phase_energy(spans, (0.0, 10.0), [0.5 * k for k in range(21)], lambda a, b: power_w * (b - a),
                         window_energy_j=1496.0)
    # Before: 8 x (prefill + decode) = 12,000 J inside a 1,496 J window. Now the phases partition it.
    assert phase.prefill_energy_j + phase.decode_energy_j == pytest.approx(1496.0)
    assert phase.prefill_time_s + phase.decode_time_s <= 10.0 + 1e-9
    assert phase.prefill_samples == 3 and phase.decode_samples == 18 and phase.overlap_attribution == OVERLAP_ATTRIBUTION


def test_phase_intervals_outside_the_window_are_clipped():
    phase = phase_energy([(-5.0, 1.0, "prefill"), (1.0, 50.0, "decode")], (0.0, 10.0), [], lambda a, b: b - a)
    assert phase.prefill_time_s == pytest.approx(1.0) and phase.decode_time_s == pytest.approx(9.0)


def test_session_phase_energy_of_overlapping_requests_stays_inside_the_window(monkeypatch, tmp_path):
    """Through the real session on a replayed power trace (synthetic, hardware we lack)."""
    session, _ = replay_session(monkeypatch, tmp_path, "instant_only.jsonl")
    window = measure(session, 1.0, 11.0)
    w0 = window.start_unix_s
    spans = [(w0 + a / 10, w0 + b / 10, p) for a, b, p in _overlapping_spans()]
    phase = session.phase_energy(spans, window)
    session.close()
    raw = window.energy.gpu_energy_raw_j
    assert phase.method == "timeline_integration" and raw > 0
    assert phase.prefill_energy_j + phase.decode_energy_j <= raw * (1 + 1e-9)
    assert phase.prefill_time_s + phase.decode_time_s <= window.window_s + 1e-6
    assert phase.prefill_samples is not None and phase.decode_samples >= 1


def test_offline_requests_take_latency_and_phases_from_their_submission():
    batch = BatchOutput(start_s=100.0, end_s=103.0, requests=[
        GeneratedRequest(4, 3, token_times_s=[101.0, 101.5, 102.0]),            # static batch member
        GeneratedRequest(4, 40, token_times_s=[101.0] * 40),                     # over the limit
        GeneratedRequest(4, 2, start_s=100.5, first_token_s=101.0, last_token_s=102.5, cached_prompt_tokens=3)])
    records, itl, spans = _requests_from_outputs([batch], to_unix=0.0, max_output_tokens=32)
    assert [r.ttft_s for r in records] == [1.0, 1.0, 0.5]
    assert records[2].e2e_latency_s == 2.0 and records[2].cached_prompt_tokens == 3
    assert [r.exceeds_max_output_tokens for r in records] == [False, True, False]
    assert (100.5, 101.0, "prefill") in spans and (101.0, 102.5, "decode") in spans
    _label_repeats(records, ["a", "b", "a"])  # a dataset with a duplicate prompt: labelled
    assert [r.prompt_repeat for r in records] == [0, 0, 1]


def _two_waves():
    """8 prompts handed at once to an engine that runs 4 at a time (vLLM's max_num_seqs 4): the second
    wave waits in the queue 0 -> 2.6 s while the first decodes. Timings as vLLM reports them."""
    from llem_harness.engines.vllm import request_timings

    def metrics(scheduled, first, last):  # engine-core clock = arrival-relative here
        return SimpleNamespace(arrival_time=0.0, first_token_latency=first, scheduled_ts=10.0 + scheduled,
                               first_token_ts=10.0 + first, last_token_ts=10.0 + last, queued_ts=10.0)

    waves = [metrics(0.0, 0.1, 2.5)] * 4 + [metrics(2.6, 2.7, 5.2)] * 4
    return BatchOutput(start_s=0.0, end_s=5.2, requests=[
        GeneratedRequest(8, 16, **request_timings(m, to_perf=0.0)) for m in waves])


def test_prefill_starts_when_the_engine_first_scheduled_the_request():
    """Before: prefill ran from submission, so the queued wave was 'in prefill' for 2.7 s (810 J at
    300 W of a 1,560 J window); it is 0.2 s (60 J), and the 2.6 s of waiting is reported apart."""
    batch = _two_waves()
    assert batch.requests[4].scheduled_s == pytest.approx(2.6)
    records, _, spans = _requests_from_outputs([batch], to_unix=0.0, max_output_tokens=16)
    assert [r.queue_s for r in records] == pytest.approx([0.0] * 4 + [2.6] * 4)
    assert [r.ttft_s for r in records] == pytest.approx([0.1] * 4 + [2.7] * 4)  # latency still from submission
    phase = phase_energy(spans, (0.0, 5.2), [0.1 * k for k in range(53)], lambda a, b: 300.0 * (b - a),
                         window_energy_j=1560.0)
    assert phase.prefill_time_s == pytest.approx(0.2) and phase.prefill_energy_j == pytest.approx(60.0)
    assert phase.queue_time_s == pytest.approx(2.6)
    # 2.5 -> 2.6 s no request ran (the first wave done, the second not yet scheduled): in neither phase.
    assert phase.prefill_energy_j + phase.decode_energy_j == pytest.approx(1560.0 - 30.0)


def test_without_the_engines_scheduled_time_the_split_is_null_with_the_reason():
    from llem_harness.engines.vllm import request_timings
    from llem_harness.offline_batches import _phase_energy

    unscheduled = SimpleNamespace(arrival_time=0.0, first_token_latency=0.5, scheduled_ts=0.0,
                                  first_token_ts=10.5, last_token_ts=11.0)
    timings = request_timings(unscheduled, to_perf=0.0)
    assert "scheduled_s" not in timings and "scheduled_ts" in timings["schedule_unavailable_reason"]
    batch = BatchOutput(start_s=0.0, end_s=1.0, requests=[GeneratedRequest(8, 4, **timings)])
    records, _, spans = _requests_from_outputs([batch], to_unix=0.0, max_output_tokens=4)
    assert records[0].queue_s is None
    phase = _phase_energy(None, [batch], spans, None)  # never reaches the session
    assert phase.method == "unavailable" and "prefill start unknown" in phase.unavailable_reason


def test_tensorrt_llm_prefill_starts_at_its_first_scheduled_time():
    from datetime import timedelta

    from llem_harness.engines.tensorrt_llm import request_timings

    timing = SimpleNamespace(arrival_time=timedelta(seconds=1.0), first_scheduled_time=timedelta(seconds=3.0),
                             first_token_time=timedelta(seconds=3.2), last_token_time=timedelta(seconds=4.0))
    out = request_timings(SimpleNamespace(request_perf_metrics=SimpleNamespace(timing_metrics=timing)), 0.0)
    assert out["start_s"] == 1.0 and out["scheduled_s"] == 3.0 and "schedule_unavailable_reason" not in out
    del timing.first_scheduled_time
    out = request_timings(SimpleNamespace(request_perf_metrics=SimpleNamespace(timing_metrics=timing)), 0.0)
    assert "scheduled_s" not in out and "first_scheduled_time" in out["schedule_unavailable_reason"]


# -- prompt cache ------------------------------------------------------------------------------

def _record(i: int, cached: int | None, repeat: int = 0) -> RequestRecord:
    return RequestRecord(index=i, batch_index=i, input_tokens=8, output_tokens=4, cached_prompt_tokens=cached,
                         prompt_repeat=repeat)


def test_cache_hits_the_study_did_not_ask_for_are_a_warning():
    report, warnings = prompt_cache([_record(0, 0), _record(1, 6)], False, "engine")
    assert report.cached_prompt_tokens_total == 6 and report.requests_with_cached_tokens == 1
    assert any("did not ask for" in w for w in warnings)
    report, warnings = prompt_cache([_record(0, 6)], True, "engine")
    assert report.prefix_caching and not warnings
    report, warnings = prompt_cache([_record(0, None), _record(1, None, repeat=1)], False, "engine", "no counts")
    assert report.cached_prompt_tokens_total is None and report.unavailable_reason == "no counts"
    assert report.repeated_prompt_requests == 1 and any("repeat" in w for w in warnings)


def test_vllm_cached_tokens_come_from_request_output():
    out = SimpleNamespace(prompt_token_ids=[1, 2, 3], num_cached_tokens=2,
                          outputs=[SimpleNamespace(token_ids=[4, 5], finish_reason="length")])
    (req,) = completion_requests([out], lambda o, c: {})
    assert req.cached_prompt_tokens == 2 and req.input_tokens == 3


def test_prefix_caching_is_off_by_default_and_reaches_every_engine():
    from llem_harness.engines import tensorrt_llm as trt
    from llem_harness.engines import vllm

    assert vllm.engine_kwargs(ExperimentConfig(model="m", engine="vllm"))["enable_prefix_caching"] is False
    assert vllm.engine_kwargs(ExperimentConfig(model="m", engine="vllm", prefix_caching=True))["enable_prefix_caching"]
    assert trt.kv_cache_kwargs(ExperimentConfig(model="m", engine="tensorrt_llm")) == {"enable_block_reuse": False}
    with pytest.raises(ValidationError, match="prefix_caching"):
        ExperimentConfig(model="m", engine="vllm", vllm={"enable_prefix_caching": True})


def test_new_fields_at_their_defaults_keep_the_config_hashes_of_earlier_versions():
    # Hashes computed with the code before prefix_caching, burstiness and slo.e2e_s existed.
    assert ExperimentConfig(model="m").config_hash() == "a686e8fed37c4330"
    assert ExperimentConfig(model="m", engine="llama_cpp", mode="serving", serving={
        "concurrency": 2, "n_requests": 8, "slo": {"ttft_s": 1.0}}).config_hash() == "bb5ae479667f9f51"
    assert ExperimentConfig(model="m", engine="vllm", mode="serving", serving={
        "request_rate": 2.0, "n_requests": 8}).config_hash() == "757aaadb8fef0983"
    assert ExperimentConfig(model="m", prefix_caching=True).config_hash() != "a686e8fed37c4330"


def test_llama_cpp_prefix_reuse_rule():
    from llem_harness.engines.llama_cpp import longest_reused_prefix

    assert longest_reused_prefix([1, 5, 6, 7], [1, 5, 9]) == 2
    assert longest_reused_prefix([1, 5, 6], [1, 5]) == 1  # the last prompt token is recomputed
    assert longest_reused_prefix([1, 5], [1, 5]) == 2     # exact hit: nothing recomputed
    assert longest_reused_prefix([], [1, 5]) == 0


def test_server_commands_turn_prefix_caching_off(tmp_path):
    from llem_harness.serving.servers import server_spec

    vllm_cfg = ExperimentConfig(model="org/m", engine="vllm", mode="serving", serving={"n_requests": 4})
    argv = server_spec(vllm_cfg, 9000).argv
    assert "--no-enable-prefix-caching" in argv and "--enable-prompt-tokens-details" in argv
    trt_cfg = ExperimentConfig(model="org/m", engine="tensorrt_llm", mode="serving", serving={"n_requests": 4})
    spec = server_spec(trt_cfg, 9000, files_dir=tmp_path)
    options = spec.argv[spec.argv.index("--extra_llm_api_options") + 1]
    assert "enable_block_reuse: false" in spec.files[options]
    (tmp_path / "model.gguf").write_bytes(b"")
    llama = ExperimentConfig(model=str(tmp_path), engine="llama_cpp", mode="serving", serving={"n_requests": 4})
    spec = server_spec(llama, 9000)
    assert spec.argv[spec.argv.index("--llem_prefix_caching") + 1] == "False" and spec.tokenize[0] == "/extras/tokenize"


# -- serving window edges ----------------------------------------------------------------------

def test_live_edges_read_only_counters_and_keep_the_window_at_the_edges(monkeypatch, tmp_path):
    """The end edge is read during the load; the window built after the drain still ends at that edge."""
    from _measurement_helpers import wait_until
    from llem_harness.serving.window import LiveEdges

    session, _ = replay_session(monkeypatch, tmp_path, "two_gpu_counter.jsonl", save_timeseries=True)
    live = LiveEdges(session)
    clock = session.backend.clock
    wait_until(session, 6.0)
    start_before = clock()
    live.on_edge("start")
    start_after = clock()
    wait_until(session, 16.0)
    end_before = clock()
    live.on_edge("end")
    end_after = clock()
    wait_until(session, 21.0)  # the drain: samples taken now are outside the window
    window = live.finish()
    session.close()
    # Trace seconds (the replay runs 10x faster than the wall clock): about 6 -> 16, not 6 -> 21.
    # The edges are bracketed by clock reads around each call, so a loaded machine cannot fail this.
    t0 = window.window.start.clock_s
    assert window.window.name == "steady_state" and window.window.end is live.end_edge
    assert window.window_s == pytest.approx(live.end_edge.clock_s - t0)
    assert start_before <= t0 <= start_after and end_before <= live.end_edge.clock_s <= end_after
    assert end_before - start_after <= window.window_s <= end_after - start_before < 21.0 - 6.0
    # 500 W over the span the edges' counters were read over, known from the same clock reads (an edge
    # reads its counters, then its clock: a preemption between them moves window_s, not the counters).
    from _measurement_helpers import counter_energy_bounds
    low_j, high_j = counter_energy_bounds(500.0, (end_before - start_after, end_after - start_before))
    assert low_j <= window.energy.gpu_energy_raw_j <= high_j
    assert window.ticks and all(t0 <= tk.t_s <= live.end_edge.clock_s for tk in window.ticks)
    assert len(live.stalls_s) == 2 and window.timeseries_file


def test_serving_edges_hold_the_event_loop_at_most_a_millisecond(monkeypatch, tmp_path):
    """Each edge runs inside the load generator's event loop: it may read counters and hand work over,
    nothing slower (sampler start, /proc, files), with save_timeseries on. About 0.15 ms here; the
    bound is 1 ms per edge. A busy host can preempt one edge, so the best of a few windows counts:
    slow work in an edge exceeds the bound in every one."""
    from _measurement_helpers import wait_until
    from llem_harness.serving.window import LiveEdges

    worst = []
    for attempt in range(5):
        (tmp_path / str(attempt)).mkdir()
        session, _ = replay_session(monkeypatch, tmp_path / str(attempt), "two_gpu_counter.jsonl",
                                    save_timeseries=True)
        live = LiveEdges(session)
        wait_until(session, 6.0)
        live.on_edge("start")
        wait_until(session, 9.0)
        live.on_edge("end")
        window = live.finish()
        session.close()
        assert len(live.stalls_s) == 2 and window.timeseries_file
        worst.append(max(live.stalls_s))
        if worst[-1] <= 0.001:
            break
    assert min(worst) <= 0.001, f"edge stalls {worst} s: more than 1 ms of work inside the event loop"
