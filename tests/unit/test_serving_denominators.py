"""One denominator per serving figure: goodput counts failed requests, ITL says whether it is per token."""
from __future__ import annotations

import pytest

from llem_harness.serving.loadgen import RequestTrace
from llem_harness.serving.report import goodput, itl_fields, itl_split, serving_metrics, to_records, window_figures
from llenergymeasure.domain import EnergyResult, ServingConfig


def _ok(i, times, tokens):
    return RequestTrace(index=i, prompt_index=i, send_s=float(i), token_times_s=times, chunk_times_s=times,
                        status=200, done_s=times[-1], usage={"completion_tokens": tokens, "prompt_tokens": 4},
                        finish_reason="length")


def _failed(i):
    return RequestTrace(index=i, prompt_index=i, send_s=float(i), error="ReadError: server gone")


def test_goodput_share_counts_failed_requests_as_not_good():
    traces = [_ok(0, [0.1, 0.2], 2), _ok(1, [1.1, 1.2], 2), _failed(2), _failed(3)]
    records, _ = to_records(traces, [4] * 4, max_output_tokens=8)
    cfg = ServingConfig(concurrency=1, n_requests=4, slo={"e2e_s": 10.0})
    _rate, share, _ = goodput(records, cfg, run_s=4.0, n_sent=len(traces))
    assert share == 0.5  # two fast successes out of four sent, not 2/2 = 1.0


def test_itl_is_inter_token_only_where_each_chunk_is_one_token():
    per_token = [_ok(0, [0.1, 0.2, 0.3], 3), _ok(1, [1.1, 1.2], 2)]
    packed = [_ok(0, [0.1, 0.2, 0.3], 6), _ok(1, [1.1, 1.2], 4)]  # a server that packs two tokens per chunk
    mixed = [_ok(0, [0.1, 0.2, 0.3], 6), _ok(1, [1.1, 1.2], 2)]
    assert itl_split(per_token)[0] == pytest.approx([0.1, 0.1, 0.1])
    assert itl_split(packed)[0] == [] and itl_split(mixed)[0] == pytest.approx([0.1])

    records, _ = to_records(packed, [4, 4], max_output_tokens=8)
    metrics = serving_metrics(records, itl_split(packed)[0], window_figures(packed, 0.0, 2.0, "test"), EnergyResult())
    fields = itl_fields(packed)
    assert metrics.itl_s.n == 0  # null: these gaps are not inter-token latencies
    assert fields["itl_definition"] == "inter-chunk" and fields["inter_chunk_latency_s"].n == 3
    assert "not inter-token" in fields["itl_unavailable_reason"]
    assert itl_fields(per_token)["itl_definition"].startswith("inter-token:")
    assert itl_fields(mixed)["itl_definition"].startswith("inter-token, over the 1 of 2")


def test_streaming_off_window_tokens_are_those_of_requests_completed_inside():
    plain = [RequestTrace(index=i, prompt_index=i, send_s=float(i), status=200, done_s=i + 0.9,
                          usage={"completion_tokens": 5, "prompt_tokens": 4}) for i in range(4)]
    window = window_figures(plain, 1.0, 3.0, "test")
    assert window.requests_completed == 2 and window.output_tokens == 10  # requests 1 and 2
    assert window.output_token_share == pytest.approx(0.5) and "completed inside" in window.output_tokens_basis
    energy = EnergyResult(method="counter", gpu_energy_raw_j=20.0)
    records, itl = to_records(plain, [4] * 4, max_output_tokens=8)
    metrics = serving_metrics(records, itl, window, energy)
    assert metrics.energy_per_output_token_j == pytest.approx(2.0) and metrics.output_tokens_per_s == 5.0


def test_the_end_of_run_table_shows_the_tokens_its_rate_divides_by(capsys):
    """385 tokens of the run beside a rate of the window (522 tok/s over 0.706 s) read as a contradiction."""
    from types import SimpleNamespace

    from llenergymeasure.cli.progress import print_summary_table
    from llenergymeasure.domain import ServingResult, ServingWindow
    from tests.unit.results_factory import make_result

    result = make_result(1, 1, window_s=0.706, energy_j=None, output_tokens=8, n_requests=48)  # 384 tokens in the run
    window = ServingWindow(definition="t", start_s=0.1, end_s=0.806, duration_s=0.706, run_s=1.0,
                           steady_state_share=0.706, output_tokens=369, requests_completed=46)
    result.serving = ServingResult(load="concurrency", server_command_verified=True, server_log_file="s",
                                   requests_file="r", n_sent=48, n_ok=48, n_errors=0, output_tokens_source="usage",
                                   window=window, energy_attribution="a")
    result.metrics.output_tokens_per_s = 369 / 0.706
    study = SimpleNamespace(study_name="s", summary=SimpleNamespace(completed=1, failed=0, skipped=0),
                            experiments=[result], configurations=[], study_dir="/tmp/s")
    print_summary_table(study)
    row = next(line for line in capsys.readouterr().out.splitlines() if "0.706" in line)
    cells = [c.strip() for c in row.strip("│ ").split("│")]
    assert "369" in cells and "384" not in cells and "522.7" in cells  # window tokens beside the window's rate
