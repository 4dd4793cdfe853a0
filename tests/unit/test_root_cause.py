"""A run's error carries the engine's root-cause line, not a wrapper's "see root cause above".

The log lines are as vLLM 0.33's CPU build prints them when gpu_memory_utilization asks for more
host memory than is free (the engine core process writes them to the run's output, runner.log);
tests/integration/test_vllm_root_cause.py produces them for real where vLLM is installed."""
from __future__ import annotations

from llenergymeasure.domain import ERROR_FILE, HarnessError
from llenergymeasure.runners.base import ExitInfo, collect_outcome

WRAPPER = "Engine core initialization failed. See root cause above. Failed core proc(s): {}"
RUNNER_LOG = """\
{"event": "phase", "name": "load"}
(EngineCore_DP0 pid=4242) ERROR 12-07 01:02:03 [core.py:708] EngineCore failed to start.
(EngineCore_DP0 pid=4242) ERROR 12-07 01:02:03 [core.py:708] Traceback (most recent call last):
(EngineCore_DP0 pid=4242) ERROR 12-07 01:02:03 [core.py:708]   File "vllm/v1/worker/cpu_worker.py", line 80, in init_device
(EngineCore_DP0 pid=4242) ERROR 12-07 01:02:03 [core.py:708] ValueError: Free memory on device (9.1/15.6 GiB) on startup is less than desired GPU memory utilization (0.92, 14.35 GiB). Decrease GPU memory utilization or reduce GPU memory used by other processes.
RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}
"""


def _failed_run(tmp_path, message: str, log: str | None):
    (tmp_path / ERROR_FILE).write_text(HarnessError(type="RuntimeError", message=message, phase="load")
                                       .model_dump_json())
    if log is not None:
        (tmp_path / "runner.log").write_text(log)
    return collect_outcome(tmp_path, ExitInfo(exit_code=1))


def test_the_root_cause_line_leads_the_runs_error(tmp_path):
    outcome = _failed_run(tmp_path, WRAPPER, RUNNER_LOG)
    assert outcome.status == "failed"
    assert outcome.error_message.startswith("ValueError: Free memory on device (9.1/15.6 GiB) on startup is less "
                                            "than desired GPU memory utilization (0.92, 14.35 GiB).")
    assert "the engine reported: Engine core initialization failed" in outcome.error_message


def test_a_message_that_says_everything_is_left_as_it_is(tmp_path):
    outcome = _failed_run(tmp_path, "CUDA out of memory. Tried to allocate 2.00 GiB", RUNNER_LOG)
    assert outcome.error_message == "CUDA out of memory. Tried to allocate 2.00 GiB"


def test_without_a_cause_in_the_logs_the_wrapper_stays(tmp_path):
    outcome = _failed_run(tmp_path, WRAPPER, "RuntimeError: " + WRAPPER + "\n")
    assert outcome.error_message == WRAPPER
    (tmp_path / "no-log").mkdir()
    assert _failed_run(tmp_path / "no-log", WRAPPER, None).error_message == WRAPPER
