"""Identity and limit cases of the fault campaign: the engine measured is the one llem started, running the
code llem shipped, and every count has a bound (bench/fault_campaign.py runs them after the runtime cases).

- an impostor on `serving.port` (a local process answering `/v1/models`, tokenize and streamed completions)
  is refused, not measured as the engine — run through the real harness on a run directory;
- study values that would override llem's server command or mount over the image's installed harness, a
  count of 10^12 and a key given twice in a flow mapping: exit 2 naming the field, nothing created;
- a harness of another pid namespace carrying a dead llem's marks survives an unrelated `llem run`;
- a model path that blocks the pre-imported worker's first import fails the run within its silence limit;
- a worker killed under a running harness: the run says the worker died.

    python bench/fault_campaign_identity.py --impostor PORT    # the impostor alone (a fixture)
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

IDENTITY_INPUT_CASES = {  # name -> (study YAML with MODEL/GGUF placeholders, words the refusal must contain)
    "server_args --host 0.0.0.0": ("name: h\nbase: {model: GGUF, engine: llama_cpp, mode: serving, serving: "
                                   "{n_requests: 4, server_args: ['--host', '0.0.0.0']}}\n", ("serving.server_args",)),
    "server_args --model another": ("name: m\nbase: {model: GGUF, engine: llama_cpp, mode: serving, serving: "
                                    "{n_requests: 4, server_args: ['--model=x.gguf']}}\n", ("serving.server_args",)),
    "server_args turn prefix caching on": ("name: p\nbase: {model: GGUF, engine: vllm, mode: serving, serving: "
                                           "{n_requests: 4, server_args: ['--enable-prefix-caching']}}\n",
                                           ("serving.server_args", "prefix_caching")),
    "extra mount over the installed harness": (
        "name: x\nbase: {model: MODEL}\ndocker: {extra_mounts: ['MODEL:/usr/local/lib/python3.11/site-packages/"
        "llem_harness:ro']}\n", ("docker.extra_mounts", "/usr")),
    "extra mount over the harness's working directory": (
        "name: x\nbase: {model: MODEL}\ndocker: {extra_mounts: ['MODEL:/tmp']}\n", ("docker.extra_mounts",)),
    "dataset.input_tokens 10^12": ("name: t\nbase: {model: MODEL, dataset: {source: synthetic, "
                                   "input_tokens: 1000000000000}}\n", ("dataset.input_tokens",)),
    "serving.n_requests 10^12": ("name: n\nbase: {model: GGUF, engine: llama_cpp, mode: serving, serving: "
                                 "{n_requests: 1000000000000}}\n", ("serving.n_requests",)),
    "duplicate key in a flow mapping": ("name: d\nbase: {model: MODEL, n_prompts: 2, n_prompts: 3}\n",
                                        ("'n_prompts' is given twice",)),
}


def run_identity_cases(campaign, short: bool = False) -> None:
    input_refusals(campaign)
    impostor_on_the_serving_port(campaign)
    orphan_sweep_across_pid_namespaces(campaign)
    worker_import_that_blocks(campaign)
    worker_killed_under_a_harness(campaign)


# -- input refusals -------------------------------------------------------------------------------

def _gguf_dir(campaign) -> Path:
    folder = campaign.workdir / "identity-gguf"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.gguf").touch()  # never loaded: every case here stops before a server starts
    return folder


def _cli(args: list[str], cwd: Path, env: dict, timeout: float = 600) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-c", "from llenergymeasure.cli.main import main; main()", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr


def input_refusals(campaign) -> None:
    folder = campaign.workdir / "identity-inputs"
    folder.mkdir(parents=True)
    gguf = _gguf_dir(campaign)
    for name, (text, words) in IDENTITY_INPUT_CASES.items():
        path = folder / "study.yaml"
        path.write_text(text.replace("GGUF", str(gguf)).replace("MODEL", str(campaign.model_dir)))
        code, out = _cli(["run", str(path), "--dry-run"], folder, campaign.env)
        left = list((folder / "results").glob("*")) if (folder / "results").is_dir() else []
        ok = code == 2 and "Traceback" not in out and all(w in out for w in words) and not left
        campaign.tally.bad_inputs += 1
        campaign._record(f"identity input: {name}", ok, f"exit {code}" + ("" if ok else f": {out[-300:]}"))


# -- an impostor on the serving port --------------------------------------------------------------

class _Impostor(BaseHTTPRequestHandler):
    """Answers like an OpenAI-compatible server with constants: what must never be measured as the engine."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def _json(self, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # /v1/models, /health
        self._json({"object": "list", "data": [{"id": "llem", "object": "model"}]})

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if "tokenize" in self.path:
            self._json({"tokens": [1] * len(str(request.get("input") or request.get("prompt") or "").split()),
                        "count": 7})
            return
        n_out, usage = int(request.get("max_tokens") or 8), {"prompt_tokens": 7}
        usage.update(completion_tokens=n_out, total_tokens=7 + n_out)
        if not request.get("stream"):
            self._json({"choices": [{"index": 0, "text": " x" * n_out, "finish_reason": "length"}], "usage": usage})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        for i in range(n_out):
            chunk = {"choices": [{"index": 0, "text": " x", "finish_reason": "length" if i == n_out - 1 else None}]}
            self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            self.wfile.flush()
        self.wfile.write(b"data: " + json.dumps({"choices": [], "usage": usage}).encode() + b"\n\ndata: [DONE]\n\n")
        self.close_connection = True


def serve_impostor(port: int) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", port), _Impostor)
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def impostor_on_the_serving_port(campaign) -> None:
    """The harness on a run directory whose `serving.port` an impostor holds (86f093f: exit 0, the
    impostor's constants in every request, `server_command_verified: true`)."""
    from llenergymeasure.domain import ExperimentConfig, RunSpec

    port = _free_port()
    impostor = subprocess.Popen([sys.executable, __file__, "--impostor", str(port)], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
    run_dir = campaign.workdir / "identity-impostor" / "run"
    run_dir.mkdir(parents=True)
    try:
        impostor.stdout.readline()  # PORT n: listening
        config = ExperimentConfig(model=str(_gguf_dir(campaign)), engine="llama_cpp", mode="serving",
                                  max_output_tokens=4, n_prompts=8, measurement=_small_measurement(),
                                  serving={"n_requests": 8, "concurrency": 2, "port": port})
        spec = RunSpec(study_id="impostor", run_id="run", experiment_index=0, cycle=1, config=config,
                       config_hash=config.config_hash())
        (run_dir / "experiment.json").write_text(spec.model_dump_json())
        proc = subprocess.run([sys.executable, "-m", "llem_harness", str(run_dir)], env=campaign.env,
                              capture_output=True, text=True, timeout=300)
    finally:
        impostor.kill()
        impostor.wait()
    error = json.loads((run_dir / "error.json").read_text()) if (run_dir / "error.json").is_file() else {}
    ok = (proc.returncode != 0 and not (run_dir / "result.json").exists()
          and f"serving.port {port} is already in use" in error.get("message", ""))
    campaign._record("impostor on serving.port", ok, f"exit {proc.returncode}, "
                     + ("result.json written (the impostor was measured)" if (run_dir / "result.json").exists()
                        else f"error.json: {error.get('message', '')[:120]}"))


def _small_measurement() -> dict:
    return {"baseline": {"duration_s": 0.5}, "warmup": {"min_batches": 1, "max_batches": 2, "window": 2}}


# -- the orphan sweep across pid namespaces -------------------------------------------------------

def orphan_sweep_across_pid_namespaces(campaign) -> None:
    """A harness stand-in under `unshare -p` carries the marks of an llem whose pid is dead *here*; an
    unrelated `llem run` must leave it running (86f093f killed it as an orphan)."""
    try:
        usable = subprocess.run(["unshare", "-p", "-f", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        usable = False
    if not usable:
        campaign._record("orphan sweep across pid namespaces", True, "skipped: `unshare -p` not permitted here")
        return
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    marks = [f"LLEM_ORCHESTRATOR_PID={gone.pid}", f"LLEM_ORCHESTRATOR_HOST={socket.gethostname()}",
             "LLEM_ORCHESTRATOR_START=1", "LLEM_ORCHESTRATOR_PIDNS=pid:[1]"]
    outer = subprocess.Popen(["unshare", "-p", "-f", "env", *marks, sys.executable, "-c",
                              "import time; time.sleep(600)"], start_new_session=True)
    try:
        inner = _wait_for_marked(gone.pid)
        path, _ = campaign._study("pidns")
        code, out = campaign._run("run", str(path), timeout=300)
        alive = inner is not None and _running(inner)
        campaign._record("orphan sweep across pid namespaces", code == 0 and alive,
                         f"study exit {code}; the other namespace's harness {'still runs' if alive else 'was killed'}")
    finally:
        os.killpg(outer.pid, signal.SIGKILL)
        outer.wait()


def _wait_for_marked(owner: int, timeout_s: float = 20) -> int | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                environ = Path(f"/proc/{entry}/environ").read_bytes()
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if f"LLEM_ORCHESTRATOR_PID={owner}".encode() in environ and b"sleep(600)" in cmdline:
                return int(entry)
        time.sleep(0.05)
    return None


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


# -- the pre-imported worker ----------------------------------------------------------------------

def worker_import_that_blocks(campaign) -> None:
    """A FIFO config.json (a stalled network file system): 86f093f waited 600 s for the worker, then a
    fresh harness blocked on it too; the run's silence limit (8 s) must end it."""
    model = campaign.workdir / "identity-fifo-model"
    model.mkdir(parents=True)
    os.mkfifo(model / "config.json")
    path, results = campaign._study("fifo", base={"model": str(model)},
                                    execution={"timeout_s": 60, "silence_timeout_s": 8})
    started = time.monotonic()
    proc = campaign._start("run", str(path))
    try:
        out = proc.communicate(timeout=150)[0]
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out = proc.communicate()[0]
    took = time.monotonic() - started
    campaign._no_traceback("run (FIFO model)", out)
    _, manifest = campaign._manifest(results)
    entry = (manifest or {}).get("entries", [{}])[0]
    ok = entry.get("error_type") == "silent" and took < 120
    campaign._record("worker's first import blocks", ok, f"{entry.get('error_type')} after {took:.0f} s")


def worker_killed_under_a_harness(campaign) -> None:
    from fault_campaign_shared import LONG

    path, results = campaign._study("workerdies", base=LONG)
    proc = campaign._start("run", str(path))
    worker = None
    deadline = time.monotonic() + 240
    while worker is None and time.monotonic() < deadline and proc.poll() is None:
        for log in results.glob("*/runs/*/runner.log"):
            lines = [line for line in log.read_text().splitlines() if line.startswith("llem: harness pid ")]
            if lines and "forked from a pre-imported worker (pid " in lines[0] and '"stage"' in log.read_text():
                worker = int(lines[0].rsplit("(pid ", 1)[1].split(",")[0])
        time.sleep(0.1)
    if worker is not None:
        os.kill(worker, signal.SIGKILL)
    try:
        out = proc.communicate(timeout=120)[0]
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out = proc.communicate()[0]
    campaign._no_traceback("run (worker killed)", out)
    _, manifest = campaign._manifest(results)
    message = ((manifest or {}).get("entries", [{}])[0].get("error_message") or "")
    ok = worker is not None and f"pre-imported worker (pid {worker})" in message and "died" in message
    campaign._record("worker killed under a running harness", ok, message[:120] or "no forked harness seen")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--impostor"]:
        serve_impostor(int(sys.argv[2]))
