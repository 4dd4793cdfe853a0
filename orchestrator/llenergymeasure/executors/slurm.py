"""Running a study on Slurm: one job array, one array task per run; llem collects the manifest.

Why this shape: Slurm is the scheduler — llem only calls its CLI (`sbatch --array`, `squeue`,
`sacct`) and never decides where or when a run starts. Before submitting, llem writes every
run's directory and `experiment.json` into the study directory (on storage the compute nodes
share). Array task *i* runs the local harness on run directory *i* through
`executors/slurm_task.py` and writes only that directory. `llem status` (or `--wait`) reads the run
directories and Slurm's view of the tasks and updates `manifest.json` from one process under the
study lock, so the manifest keeps exactly one writer, as on one host.

Files under `STUDY_DIR/slurm/`: `submit-<k>.sh` (the batch script, re-submittable by hand),
`tasks-<k>.json` (array index -> run directory and timeouts), `logs/<job>_<task>.out`.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..domain.text_checks import CONTROL_CHARS
from ..errors import ConfigError

SLURM_DIR = "slurm"
SECRETS_DIR = "secrets"  # under SLURM_DIR: the hub token for the tasks, mode 0600, removed when collected
SECRET_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
TASK_MARGIN_S = 300  # Slurm's time limit = the longest run's own timeout + this margin
# Slurm task states -> how the run ended when the task left the queue without recording an outcome.
SLURM_INTERRUPTED = ("CANCELLED", "PREEMPTED", "NODE_FAIL", "BOOT_FAIL", "DEADLINE", "REQUEUED")
SLURM_RUNNING = ("RUNNING", "COMPLETING", "CONFIGURING", "STAGE_OUT", "SIGNALING", "RESIZING")
LIVE = ("submitted", "running")  # manifest statuses of runs still in Slurm: only the collector changes them
# Partition, account and time limit as Slurm names them; anything else is refused, not escaped.
SAFE_SBATCH_WORD = re.compile(r"^[A-Za-z0-9_.,:+@=-]+$")
# Characters written as they are in an `#SBATCH` value; any other is backslash-escaped (sbatch's own
# quoting: a backslash makes the next character literal, so a space or `#` cannot end the value).
_SBATCH_PLAIN = re.compile(r"[A-Za-z0-9_./:%=,+@-]")


@dataclass
class SlurmOptions:
    """What `--slurm-*` flags say; None = Slurm's (or the site's) default."""

    partition: str | None = None
    gpus_per_task: int | None = None  # None = execution.gpus_per_run, else the largest tensor-parallel size
    time_limit: str | None = None     # Slurm's --time syntax; None = longest run timeout + margin
    account: str | None = None
    array_limit: int | None = None    # at most this many tasks at once (`--array=...%N`)
    sbatch_args: list[str] = field(default_factory=list)

    def to_record(self) -> dict:
        """The flags given (recorded with each submission, reused by `--resume`)."""
        return {k: v for k, v in self.__dict__.items() if v not in (None, [])}

    def check(self) -> "SlurmOptions":
        """ConfigError (exit 2) naming the flag whose value cannot be written safely into the batch script or
        sbatch's command line: a newline would end an `#SBATCH` line and make the rest a command."""
        for flag, value in (("--slurm-partition", self.partition), ("--slurm-account", self.account),
                            ("--slurm-time", self.time_limit)):
            if value is not None and not SAFE_SBATCH_WORD.match(value):
                raise ConfigError(f"{flag} {value!r} is not a Slurm name: use letters, digits and _ . , : + @ = - "
                                  "only (no spaces, quotes or control characters)")
        for arg in self.sbatch_args:
            if CONTROL_CHARS.search(arg):
                raise ConfigError(f"--slurm-sbatch-arg {arg!r} contains a control character (newline, tab, escape); "
                                  "remove it")
        return self

    def merged_over(self, previous: dict) -> "SlurmOptions":
        """A resume resubmits with the previous submission's flags, except those given again."""
        given = self.to_record()
        return SlurmOptions(**{**{k: v for k, v in previous.items() if k in self.__dict__}, **given})


def job_name(study_id: str) -> str:
    """The array job's name: how `squeue --name` finds this study's tasks."""
    return f"llem-{study_id}"[:120]


def local_plan(engines: set[str]):
    """Every engine runs with the local harness inside its Slurm task (no container tool yet)."""
    from ..runners.resolve import RunnerPlan

    return RunnerPlan(runners={e: "local" for e in engines}, sources={e: "--executor slurm" for e in engines})


def require_slurm() -> None:
    """ConfigError (exit 2) when this host cannot talk to Slurm."""
    missing = [tool for tool in ("sbatch", "squeue") if shutil.which(tool) is None]
    if missing:
        raise ConfigError(f"--executor slurm needs Slurm's {' and '.join(missing)} on PATH (run llem on a "
                          "login node of the cluster), or use --executor local")


def batch_script(study_dir: Path, job_name: str, n_tasks: int, tasks_file: Path, options: SlurmOptions,
                 gpus_per_task: int, time_limit: str, python: str | None = None) -> str:
    """The sbatch script (a pure function of its inputs, so it is tested without Slurm).

    GPU runs ask for `--gpus-per-task`; a CPU-only submission asks for `--exclusive` instead, so
    two runs never share a node's cores and skew each other's timing and energy.
    """
    options.check()
    if not SAFE_SBATCH_WORD.match(time_limit):
        raise ConfigError(f"--slurm-time {time_limit!r} is not Slurm's time syntax (e.g. 90, 1:30:00, 2-00:00:00)")
    array = f"0-{n_tasks - 1}" + (f"%{options.array_limit}" if options.array_limit else "")
    logs = _sbatch_value(str(study_dir / SLURM_DIR / "logs"), "the study directory", no_percent=True)
    lines = ["#!/bin/bash", f"#SBATCH --job-name={_sbatch_value(job_name, 'the study name')}",
             f"#SBATCH --array={array}", f"#SBATCH --output={logs}/%A_%a.out", "#SBATCH --ntasks=1",
             f"#SBATCH --time={time_limit}"]
    if options.partition:
        lines.append(f"#SBATCH --partition={options.partition}")
    if options.account:
        lines.append(f"#SBATCH --account={options.account}")
    lines.append(f"#SBATCH --gpus-per-task={gpus_per_task}" if gpus_per_task > 0 else "#SBATCH --exclusive")
    lines += ["# One llem run per array task: the local harness on one run directory (executors/slurm_task.py).",
              f"exec {_quote(python or sys.executable)} -m llenergymeasure.executors.slurm_task "
              f"{_quote(str(tasks_file))} \"$SLURM_ARRAY_TASK_ID\"", ""]
    return "\n".join(lines)


def _quote(text: str) -> str:
    import shlex

    if CONTROL_CHARS.search(text):  # shlex would quote a newline, but no path of ours should carry one
        raise ConfigError(f"{text!r} contains a control character; it cannot go into the Slurm batch script")
    return shlex.quote(text)


def _sbatch_value(text: str, what: str, no_percent: bool = False) -> str:
    """`text` as one `#SBATCH` value: refused when it holds a control character (a newline would end the
    line and make the rest a command) or, for a file name, a `%` (a Slurm file name pattern); every
    character outside a plain set is backslash-escaped."""
    if CONTROL_CHARS.search(text):
        raise ConfigError(f"{what} {text!r} contains a control character (newline, tab, escape); it cannot be "
                          "written into the Slurm batch script: rename it (results_dir / --output)")
    if no_percent and "%" in text:
        raise ConfigError(f"{what} {text!r} contains '%', which Slurm reads as a file name pattern; choose a "
                          "results_dir without it")
    return "".join(ch if _SBATCH_PLAIN.match(ch) else "\\" + ch for ch in text)


def time_limit_for(timeouts_s: list[float]) -> str:
    """Slurm minutes for the longest run (its own timeout fires first; the margin covers start-up)."""
    return str(math.ceil((max(timeouts_s) + TASK_MARGIN_S) / 60))


def sbatch(script: Path, extra_args: list[str]) -> str:
    """Submit; returns the array job id. sbatch's refusal (bad partition, account…) is exit 2.

    sbatch exports its environment to the job (`--export=ALL`), and slurmctld stores it in its
    state directory: tokens are removed from it here and reach the tasks as a 0600 file instead
    (`write_secret_file`)."""
    cmd = ["sbatch", "--parsable", *extra_args, str(script)]
    env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    except subprocess.TimeoutExpired:
        raise ConfigError("sbatch did not answer within 120 s; is slurmctld reachable? (`sinfo`)") from None
    if done.returncode != 0:
        reason = (done.stderr or done.stdout).strip().splitlines()
        raise ConfigError(f"sbatch refused the study: {reason[-1] if reason else f'exit {done.returncode}'} "
                          "(check --slurm-partition, --slurm-account, --slurm-gpus-per-task, --slurm-sbatch-arg)")
    return done.stdout.strip().split(";")[0]


def queue_states(job_name: str, job_ids: list[str]) -> dict[str, str]:
    """'JOB_TASK' -> state for every task of ours Slurm still lists (`squeue -r`, one line per task)."""
    cmd = ["squeue", "-h", "-r", "--name", job_name, "-o", "%i %T"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise ConfigError(f"squeue failed: {(done.stderr or '').strip()[:300]}; is slurmctld reachable? (`sinfo`)")
    states = {}
    for line in done.stdout.splitlines():
        task, _, state = line.strip().partition(" ")
        if task.split("_")[0] in job_ids:
            states[task] = state
    return states


def accounting_states(job_ids: list[str]) -> dict[str, str]:
    """'JOB_TASK' -> final state from `sacct`, or {} where accounting is not configured."""
    if not job_ids or shutil.which("sacct") is None:
        return {}
    cmd = ["sacct", "-n", "-P", "-X", "-j", ",".join(job_ids), "-o", "JobID,State"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return {}
    if done.returncode != 0:
        return {}
    states = {}
    for line in done.stdout.splitlines():
        task, _, state = line.partition("|")
        if state:
            states[task.strip()] = state.split()[0]  # "CANCELLED by 0" -> CANCELLED
    return states


def write_secret_file(study_dir: Path) -> str | None:
    """The hub token as STUDY_DIR/slurm/secrets/hf_token (dir 0700, file 0600) for the tasks, which
    run on nodes that share the study directory; None without a token. Never in the job's
    environment or script, which Slurm keeps in its state directory."""
    token = next((os.environ[k] for k in SECRET_ENV if os.environ.get(k)), None)
    if token is None:
        return None
    folder = study_dir / SLURM_DIR / SECRETS_DIR
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    path = folder / "hf_token"
    from ..domain.io import create_exclusive

    try:
        os.unlink(path)  # a resubmission writes it anew: exclusively, never through a link
    except FileNotFoundError:
        pass
    fd = create_exclusive(path, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token)
    return str(path)


def remove_secret_file(study_dir: Path) -> None:
    """Called when nothing of the study is left in Slurm: no task needs the token any more."""
    shutil.rmtree(study_dir / SLURM_DIR / SECRETS_DIR, ignore_errors=True)


def write_tasks_file(path: Path, study_dir: Path, runs: list[dict], token_file: str | None = None) -> None:
    from ..domain.io import write_text_atomic

    payload = {"study_dir": str(study_dir), "runs": runs, "token_file": token_file}
    write_text_atomic(path, json.dumps(payload, indent=1) + "\n")
