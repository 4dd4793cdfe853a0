"""When a serving window measured nothing: the rule, the dry-run's warning, and a load the server did not serve."""
from __future__ import annotations

import pytest

from llenergymeasure.domain import ServingConfig
from llenergymeasure.domain.serving import unmeasured_window_reason
from tests.helpers import run_llem


@pytest.mark.parametrize("duration_s, completed, tokens, concurrency, expect", [
    (0.007, 0, 0, None, "shorter than one sampling period"),   # request_rate 1000, 8 requests
    (0.5, 1, 8, 4, "fewer than the 4"),                       # concurrency 4, 5 requests
    (0.5, 1, 8, 1, "fewer than the 2"),
    (0.5, 3, 0, 1, "no output token"),
    (0.5, 4, 32, 4, None),
    (0.1, 2, 16, 1, None),
])
def test_a_window_needs_a_sampling_period_and_enough_completions(duration_s, completed, tokens, concurrency, expect):
    reason = unmeasured_window_reason(duration_s, completed, tokens, True, concurrency, 0.1)
    assert (reason is None) if expect is None else (expect in reason)


def test_dry_run_warns_when_the_settings_cannot_give_a_window():
    assert "at most 1 completion" in ServingConfig(concurrency=4, n_requests=5).window_warning(0.1)
    assert ServingConfig(concurrency=4, n_requests=8).window_warning(0.1) is None
    assert "about 7 ms" in ServingConfig(request_rate=1000.0, n_requests=8).window_warning(0.1)
    assert ServingConfig(request_rate=10.0, n_requests=32).window_warning(0.1) is None


def test_llem_run_dry_run_prints_the_window_warning(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text("name: s\nbase: {model: m, engine: llama_cpp, mode: serving,\n"
                    "  serving: {concurrency: 4, n_requests: 5}}\n")
    proc = run_llem("run", str(path), "--dry-run")
    assert "WARNING: serving.n_requests 5 with concurrency 4" in proc.stdout, proc.stdout + proc.stderr


def test_max_error_share_is_a_share():
    assert ServingConfig(max_error_share=0.0).max_error_share == 0.0
    with pytest.raises(ValueError):
        ServingConfig(max_error_share=1.5)


def _load(tmp_path, n_ok: int, n_failed: int, alive: bool = True, max_error_share: float = 0.1):
    from types import SimpleNamespace

    from llem_harness.serving.loadgen import RequestTrace

    traces = [RequestTrace(index=i, prompt_index=i, send_s=float(i), token_times_s=[i + 0.5], status=200,
                           done_s=i + 0.5, finish_reason="length") for i in range(n_ok)]
    traces += [RequestTrace(index=n_ok + i, prompt_index=0, send_s=float(n_ok + i), error="ConnectError: refused")
               for i in range(n_failed)]
    cfg = ServingConfig(concurrency=1, n_requests=n_ok + n_failed, max_error_share=max_error_share)
    return SimpleNamespace(traces=traces, run_dir=tmp_path, cfg=cfg,
                           server=SimpleNamespace(alive=lambda: alive, log_tail=lambda: "server log"))


def test_an_error_share_above_the_limit_fails_the_run(tmp_path):
    from llem_harness.serving.load import ServingLoad
    from llem_harness.serving.process import ServerFailed

    ServingLoad.refuse_unserved_load(_load(tmp_path, 9, 1), 0.0, 10.0)  # 10 %: at the limit, kept
    with pytest.raises(ServerFailed, match=r"2 of 10 requests failed \(more than serving.max_error_share 0.1\)"):
        ServingLoad.refuse_unserved_load(_load(tmp_path, 8, 2), 0.0, 10.0)
    assert (tmp_path / "requests.jsonl").read_text().count("\n") == 10  # kept for the post-mortem
    with pytest.raises(ServerFailed, match="the server exited during the load"):
        ServingLoad.refuse_unserved_load(_load(tmp_path, 10, 0, alive=False), 0.0, 10.0)
