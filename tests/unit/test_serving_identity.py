"""The server measured is the server llem started: an impostor on the port is refused, a port already in
use is refused before the server starts, and a real child (or its child) holding the port is accepted.
Real processes and real sockets throughout (Linux /proc)."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("httpx")

from llenergymeasure.domain import ExperimentConfig, RunSpec  # noqa: E402
from llem_harness.serving import listener  # noqa: E402
from llem_harness.serving.load import ServingLoad  # noqa: E402
from llem_harness.serving.process import ServerFailed, ServerProcess  # noqa: E402
from llem_harness.serving.servers import free_port  # noqa: E402

pytestmark = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc/net")

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def _http_server(port: int) -> list[str]:
    return [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]


@pytest.fixture
def impostor():
    """Another local process answering 200 on every GET (any path), as a fake OpenAI server would."""
    port = free_port()
    proc = subprocess.Popen(_http_server(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while listener.listening_inodes(port) == set() and time.monotonic() < deadline:
        time.sleep(0.05)
    yield port
    proc.kill()
    proc.wait()


def test_a_200_from_a_process_llem_did_not_start_is_refused(impostor, tmp_path):
    server = ServerProcess(SLEEPER, f"http://127.0.0.1:{impostor}", "/", tmp_path)
    server.start()
    try:
        with pytest.raises(ServerFailed, match=f"another process listens on port {impostor}"):
            server.wait_ready(timeout_s=10, poll_s=0.1)
    finally:
        server.stop(grace_s=2)


@pytest.mark.parametrize("shell", [False, True], ids=["child", "grandchild"])
def test_the_server_llem_started_is_accepted_when_it_or_its_child_holds_the_port(tmp_path, shell):
    port = free_port()
    argv = _http_server(port)
    if shell:  # `; true` keeps the shell: the listener is the server's child, in its session
        argv = ["sh", "-c", " ".join(argv) + "; true"]
    server = ServerProcess(argv, f"http://127.0.0.1:{port}", "/", tmp_path)
    server.start()
    try:
        assert server.wait_ready(timeout_s=20, poll_s=0.1) >= 0
        assert listener.foreign_listener(port, server.pid()) is None
    finally:
        server.stop(grace_s=2)


def test_the_kernel_tables_name_a_listener_and_its_owner():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        import os

        inodes = listener.listening_inodes(port)
        assert len(inodes) == 1
        assert inodes <= listener.socket_inodes({os.getpid()})
        assert listener.port_in_use(port)
    assert listener.listening_inodes(port) == set() and listener.port_in_use(port) is None


def _serving_spec(model_dir: Path, port: int) -> RunSpec:
    (model_dir / "model.gguf").write_bytes(b"")
    config = ExperimentConfig(model=str(model_dir), engine="llama_cpp", mode="serving",
                              serving={"n_requests": 4, "port": port})
    return RunSpec(study_id="s", run_id="r", experiment_index=0, cycle=1, config=config,
                   config_hash=config.config_hash())


def test_a_configured_port_already_in_use_is_refused_before_the_server_starts(impostor, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    load = ServingLoad(_serving_spec(tmp_path, impostor), run_dir, emit=lambda *a, **k: None)
    try:
        with pytest.raises(ServerFailed, match=f"serving.port {impostor} is already in use"):
            load.load()
        assert not load.server.alive() and load.server.pid() is None  # never started
    finally:
        load.server.stop(grace_s=2)


def test_a_server_llem_started_that_listens_beyond_loopback_is_refused(tmp_path):
    port = free_port()
    argv = [sys.executable, "-m", "http.server", str(port), "--bind", "0.0.0.0"]
    server = ServerProcess(argv, f"http://127.0.0.1:{port}", "/", tmp_path)
    server.start()
    try:
        with pytest.raises(ServerFailed, match="beyond the loopback interface"):
            server.wait_ready(timeout_s=20, poll_s=0.1)
    finally:
        server.stop(grace_s=2)


@pytest.mark.parametrize("address, loopback", [("0100007F", True), ("0101007F", True), ("00000000", False),
                                               ("0A00000A", False), ("00000000000000000000000001000000", True),
                                               ("0000000000000000FFFF00000100007F", True),
                                               ("00000000000000000000000000000000", False)])
def test_loopback_addresses_as_the_kernel_writes_them(address, loopback):
    assert listener.is_loopback(address) is loopback
