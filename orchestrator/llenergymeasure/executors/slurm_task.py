"""One Slurm array task: run the local harness on one run directory, record how it ended.

`python -m llenergymeasure.executors.slurm_task TASKS.json INDEX` (the batch script llem wrote calls
this). It writes only inside its run directory: `slurm-task.json` when it starts (which job,
node and GPUs Slurm gave it) and `exit.json` when the harness process has ended (the same
ExitInfo the local runner hands the study loop). The collector (`slurm_collect.py`) turns those
files into the manifest entry with the same `collect_outcome` as on one host.

GPUs: Slurm sets CUDA_VISIBLE_DEVICES for the task; the spec's gpu_ids stay None, so the local
runner does not override it and the harness measures exactly the GPUs Slurm made visible.
scancel, preemption and the time limit send SIGTERM: it reaches the harness as an interrupt
(error.json written, process group killed after a grace), and exit.json says `interrupted`.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from dataclasses import asdict
from pathlib import Path

TASK_FILE = "slurm-task.json"
EXIT_FILE = "exit.json"
SLURM_ENV = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURMD_NODENAME", "SLURM_JOB_GPUS",
             "SLURM_STEP_GPUS", "CUDA_VISIBLE_DEVICES", "SLURM_JOB_PARTITION")


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def run_task(tasks_file: Path, task_index: int) -> int:
    from ..domain import RUN_SPEC_FILE, RunSpec
    from ..domain.io import write_text_atomic
    from ..runners.base import ExitInfo, RunRequest
    from ..runners.local import LocalRunner
    from ..study.manifest import utc_now

    payload = json.loads(Path(tasks_file).read_text(encoding="utf-8"))
    task = payload["runs"][task_index]
    run_dir = Path(payload["study_dir"]) / task["run_dir"]
    started_at, started = utc_now(), time.monotonic()
    slurm = {key: os.environ[key] for key in SLURM_ENV if key in os.environ}
    write_text_atomic(run_dir / TASK_FILE, json.dumps({"started_at": started_at, "host": socket.gethostname(),
                                                       "pid": os.getpid(), "env": slurm}, indent=2) + "\n")
    spec = RunSpec.model_validate_json((run_dir / RUN_SPEC_FILE).read_bytes())
    request = RunRequest(run_dir=run_dir, spec=spec, timeout_s=task["timeout_s"],
                         silence_timeout_s=task.get("silence_timeout_s"))
    signal.signal(signal.SIGTERM, _interrupt)
    interrupted = False
    try:
        token_file = payload.get("token_file")  # the hub token, never in the job's environment
        env = {"HF_TOKEN_PATH": token_file} if token_file and os.path.isfile(token_file) else {}
        # One experiment per task: a pre-imported worker would import just as often and add a process.
        exit_info = LocalRunner(env=env, worker=False).execute(request)
    except KeyboardInterrupt:  # the local runner has already stopped the harness group
        exit_info, interrupted = ExitInfo(exit_code=None, detail="SIGTERM from Slurm (scancel, preemption or "
                                                                 "the time limit)"), True
    record = {"exit": asdict(exit_info), "interrupted": interrupted, "started_at": started_at,
              "finished_at": utc_now(), "duration_s": round(time.monotonic() - started, 3)}
    write_text_atomic(run_dir / EXIT_FILE, json.dumps(record, indent=2) + "\n")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m llenergymeasure.executors.slurm_task TASKS.json ARRAY_INDEX", file=sys.stderr)
        return 2
    return run_task(Path(argv[0]), int(argv[1]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
