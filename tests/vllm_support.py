"""Where the vLLM tests find vLLM: its CPU build in its own environment (scripts/setup-vllm.sh makes
.venv-vllm; LLEM_VLLM_PYTHON names another interpreter). Without it the vLLM tests skip and say why,
unless LLEM_REQUIRE_VLLM=1 (CI), where that is a failure."""
from __future__ import annotations

import os
import subprocess
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO_ROOT, small_measurement

REQUIRED = os.environ.get("LLEM_REQUIRE_VLLM") == "1"
# Small on a shared CPU. gpu_memory_utilization is the share of host memory the engine process may
# hold, KV cache included (vLLM's default, 0.92, refuses on a shared machine; 0.02 leaves no KV room).
# enforce_eager: no torch.compile (saves ~25 s per load here, and needs no C++ compiler in the image).
CPU_ENGINE = {"gpu_memory_utilization": 0.05, "max_num_seqs": 4, "enforce_eager": True}


@lru_cache(maxsize=1)
def _probe() -> tuple[str | None, str]:
    python = os.environ.get("LLEM_VLLM_PYTHON") or str(REPO_ROOT / ".venv-vllm" / "bin" / "python")
    if not Path(python).exists():
        return None, f"no vLLM environment at {python} (run scripts/setup-vllm.sh)"
    probe = subprocess.run([python, "-c", "import vllm, llem_harness; print(vllm.__version__)"],
                           capture_output=True, text=True, timeout=300)
    if probe.returncode != 0:
        return None, f"{python} cannot import vllm: {probe.stderr.strip()[-500:]}"
    return python, probe.stdout.strip()


def vllm_python() -> str:
    """The interpreter with vLLM's CPU build, or skip (fail under LLEM_REQUIRE_VLLM=1)."""
    python, why = _probe()
    if python is None:
        if REQUIRED:
            pytest.fail(f"LLEM_REQUIRE_VLLM=1 but {why}")
        pytest.skip(why)
    return python


def run_llem_with(python: str, *args: str, timeout: float = 1200, env: dict | None = None):
    """The real CLI, run by the vLLM environment's interpreter (its local runner uses that interpreter)."""
    code = "from llenergymeasure.cli.main import main; main()"
    return subprocess.run([python, "-c", code, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, cwd=REPO_ROOT)


def write_study(path: Path, model_dir: Path, results: Path, base: dict | None = None, sweep: dict | None = None,
                **top) -> Path:
    data = {"name": path.stem, "results_dir": str(results),
            "base": {"model": str(model_dir), "engine": "vllm", "dataset": "synthetic", "n_prompts": 4,
                     "batch_size": 4, "max_input_tokens": 32, "max_output_tokens": 8, "vllm": dict(CPU_ENGINE),
                     "measurement": small_measurement(), **(base or {})},
            "execution": {"n_cycles": 1}, **top}
    if sweep:
        data["sweep"] = sweep
    path.write_text(yaml.safe_dump(data))
    return path


WHEELHOUSE = REPO_ROOT / ".wheels-vllm"  # scripts/setup-vllm.sh's wheelhouse


@contextmanager
def serve_wheelhouse(directory: Path):
    """The wheelhouse as a find-links page on 127.0.0.1 (image builds use the host network), so the
    image installs the wheels setup-vllm.sh already fetched instead of downloading them again."""
    import functools
    import http.server
    import threading

    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _quiet_handler():
    import http.server

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:  # pip fetches ~150 files: no log line for each
            pass

    return Handler


_QuietHandler = _quiet_handler()
