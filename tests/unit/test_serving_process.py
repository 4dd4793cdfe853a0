"""Server lifecycle with real child processes, and the per-engine server command registry."""
from __future__ import annotations

import sys

import pytest

pytest.importorskip("httpx")

from llenergymeasure.domain import ExperimentConfig  # noqa: E402
from llem_harness.serving.process import ServerFailed, ServerProcess  # noqa: E402
from llem_harness.serving.servers import free_port, server_spec  # noqa: E402


def test_a_server_that_never_answers_times_out_with_its_log(tmp_path):
    argv = [sys.executable, "-c", "import time; print('loading forever', flush=True); time.sleep(60)"]
    server = ServerProcess(argv, f"http://127.0.0.1:{free_port()}", "/v1/models", tmp_path)
    server.start()
    try:
        with pytest.raises(ServerFailed, match="not ready after 1 s") as info:
            server.wait_ready(timeout_s=1.0, poll_s=0.1)
        assert "loading forever" in str(info.value)
    finally:
        server.stop(grace_s=2)
    assert not server.alive()


def test_a_server_that_exits_reports_its_exit_code(tmp_path):
    argv = [sys.executable, "-c", "import sys; print('bad model file'); sys.exit(3)"]
    server = ServerProcess(argv, f"http://127.0.0.1:{free_port()}", "/v1/models", tmp_path)
    server.start()
    with pytest.raises(ServerFailed, match="exited with code 3") as info:
        server.wait_ready(timeout_s=30, poll_s=0.1)
    assert "bad model file" in str(info.value)
    assert "bad model file" in (tmp_path / "server.log").read_text()
    server.stop()


def test_a_missing_server_executable_is_a_server_failure(tmp_path):
    server = ServerProcess(["/nonexistent/llem-server"], "http://127.0.0.1:1", "/v1/models", tmp_path)
    with pytest.raises(ServerFailed, match="cannot start server"):
        server.start()
    server.stop()


@pytest.mark.parametrize("engine, head, flags", [  # vLLM's (verified) command: tests/unit/test_vllm_adapter.py
    ("tensorrt_llm", ["trtllm-serve", "org/model"], ["--served_model_name", "--backend", "--port"]),
])
def test_gpu_engine_server_commands_follow_their_documented_clis_and_say_unverified(engine, head, flags):
    cfg = ExperimentConfig(model="org/model", engine=engine, mode="serving",
                           serving={"n_requests": 4, "server_args": ["--max-num-seqs", "8"]})
    spec = server_spec(cfg, 9000)
    assert spec.argv[:len(head)] == head and not spec.verified
    assert all(flag in spec.argv for flag in flags) and spec.argv[-2:] == ["--max-num-seqs", "8"]
    assert spec.argv[spec.argv.index("--port") + 1] == "9000"


def test_llama_cpp_server_keeps_concurrent_streams_alive(tmp_path):
    (tmp_path / "model.gguf").write_bytes(b"")
    cfg = ExperimentConfig(model=str(tmp_path), engine="llama_cpp", mode="serving", serving={"n_requests": 4})
    spec = server_spec(cfg, 9000)
    assert spec.verified and spec.argv[spec.argv.index("--model") + 1] == str(tmp_path / "model.gguf")
    # llama-cpp-python aborts a stream when another request arrives unless told not to.
    assert spec.argv[spec.argv.index("--interrupt_requests") + 1] == "False"


def test_llama_cpp_typed_options_reach_the_server_command(tmp_path):
    (tmp_path / "model.gguf").write_bytes(b"")
    cfg = ExperimentConfig(model=str(tmp_path), engine="llama_cpp", mode="serving", serving={"n_requests": 4},
                           llama_cpp={"n_ctx": 1024, "n_threads": 2, "type_k": "q8_0"})
    argv = server_spec(cfg, 9000).argv
    value = {argv[i]: argv[i + 1] for i in range(len(argv) - 1) if argv[i].startswith("--")}
    assert value["--n_ctx"] == "1024" and value["--n_threads"] == value["--n_threads_batch"] == "2"
    assert value["--type_k"] == "8"  # ggml_type enum: the server takes the integer


def test_the_server_runs_in_its_own_group_within_the_harness_session_and_stops_as_a_group(tmp_path):
    """A session of its own would be a scheduling autogroup of its own (process.py): the server shares
    the load generator's session, and stopping it still ends every process it spawned."""
    import os
    import time

    pid_file = tmp_path / "grandchild.pid"
    code = ("import subprocess, sys, time; "
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            f"open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(60)")
    server = ServerProcess([sys.executable, "-c", code], f"http://127.0.0.1:{free_port()}", "/v1/models", tmp_path)
    server.start()
    try:
        pid = server._proc.pid
        assert os.getsid(pid) == os.getsid(0) and os.getpgid(pid) == pid != os.getpgid(0)
        info = server.start_info
        assert info["same_session_as_load_generator"] is True and info["own_process_group"] is True
        if info["kernel_autogroup_enabled"]:
            assert info["same_autogroup_as_load_generator"] is True
        deadline = time.monotonic() + 30
        while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        grandchild = int(pid_file.read_text())
        assert os.getpgid(grandchild) == pid
    finally:
        server.stop(grace_s=5)
    assert not server.alive()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            break
        with open(f"/proc/{grandchild}/stat") as fh:  # a zombie awaiting its reaper is gone too
            if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                break
        time.sleep(0.05)
    else:
        raise AssertionError(f"the server's child {grandchild} outlived stop()")
