"""Fault campaign: crash, hang, kill, interrupt and starve real `llem` studies, then count what was lost.

Runs the real CLI (local runner; `--docker` adds kill -9 points with the Docker runner) on the tiny
model and prints one table: kill -9 points tried, faults injected, bad inputs tried, and the four
figures that must be zero — results lost, reruns of completed runs, orphan processes/containers
left, secrets leaked. A short version runs in the test suite (tests/integration/test_fault_campaign.py).

    python bench/fault_campaign.py                     # full: 24 kill points, 1,000 bad inputs
    python bench/fault_campaign.py --kill-points 3 --bad-inputs 200 --docker
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "bench"))
from fault_campaign_shared import LONG, SECRET, SMALL, _started_harness_pids  # noqa: E402 - bench/ on sys.path above


@dataclass
class Tally:
    kill_points: int = 0
    kill_before_study_dir: int = 0
    faults: dict[str, str] = field(default_factory=dict)   # fault -> what the manifest recorded
    bad_inputs: int = 0
    bad_input_problems: list = field(default_factory=list)
    results_lost: int = 0
    completed_rerun: int = 0
    orphans_left: list = field(default_factory=list)
    secrets_leaked: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    double_counted: int = 0        # results counted that no completed manifest entry names
    overlapping: list = field(default_factory=list)  # a measurement that ran alongside another one
    tracebacks: list = field(default_factory=list)   # llem printed a traceback (never without --verbose)


class Campaign:
    def __init__(self, model_dir: Path, workdir: Path, seed: int = 0, docker: bool = False):
        self.model_dir, self.workdir, self.rng, self.docker = Path(model_dir), Path(workdir), random.Random(seed), docker
        self.tally = Tally()
        self.env = {**os.environ, "HF_TOKEN": SECRET, "LLEM_LOCK_DIR": str(self.workdir / "locks")}
        self.n = 0

    # -- helpers -----------------------------------------------------------------------------------
    def _study(self, name: str, base: dict | None = None, execution: dict | None = None, sweep=None,
               results: Path | None = None) -> tuple[Path, Path]:
        self.n += 1
        folder = self.workdir / f"{self.n:03d}-{name}"
        folder.mkdir(parents=True)
        results = results or folder / "results"
        data = {"name": name, "results_dir": str(results),
                "base": {"model": str(self.model_dir), "n_prompts": 4, "max_output_tokens": 8,
                         "measurement": SMALL, **(base or {})},
                "execution": {"n_cycles": 1, **(execution or {})}}
        if sweep:
            data["sweep"] = sweep
        path = folder / "study.yaml"
        import yaml

        path.write_text(yaml.safe_dump(data))
        return path, results

    def _start(self, *args: str, preexec=None) -> subprocess.Popen:
        entry = "main_docker" if self.docker and "--docker" in args else "main"
        args = tuple(a for a in args if a != "--docker")
        return subprocess.Popen([sys.executable, "-c", f"from llenergymeasure.cli.main import {entry}; {entry}()",
                                 *args], env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True, preexec_fn=preexec)

    def _run(self, *args: str, timeout: float = 600) -> tuple[int, str]:
        proc = self._start(*args)
        out, _ = proc.communicate(timeout=timeout)
        self._no_traceback(" ".join(args[:2]), out)
        return proc.returncode, out

    def _no_traceback(self, context: str, out: str | None) -> None:
        if out and "Traceback (most recent call last)" in out:
            self.tally.tracebacks.append(f"{context}: {out[-300:]}")

    @staticmethod
    def _manifest(results: Path) -> tuple[Path | None, dict | None]:
        for path in sorted(results.glob("*/manifest.json")):
            try:
                return path.parent, json.loads(path.read_text())
            except ValueError:
                return path.parent, None
        return None, None

    def _wait(self, results: Path, predicate, timeout_s: float = 120) -> dict | None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            _, manifest = self._manifest(results)
            if manifest and predicate(manifest):
                return manifest
            time.sleep(0.1)
        return None

    def _record(self, fault: str, ok: bool, seen: str) -> None:
        self.tally.faults[fault] = seen
        if not ok:
            self.tally.problems.append(f"{fault}: {seen}")

    def _check_orphans(self, context: str) -> None:
        from llenergymeasure.runners.local_orphans import find_orphans

        time.sleep(0.3)
        for pid, owner in find_orphans():
            self.tally.orphans_left.append(f"{context}: harness pid {pid} (llem {owner} gone)")
        if self.docker:
            import docker

            client = docker.from_env()
            for c in client.containers.list(all=True, filters={"label": "llem.orchestrator_pid"}):
                pid = int(c.labels.get("llem.orchestrator_pid", "0"))
                if not Path(f"/proc/{pid}").exists() and not c.name.startswith("llem-kept-"):
                    self.tally.orphans_left.append(f"{context}: container {c.name}")
            client.close()

    # -- kill -9 -------------------------------------------------------------------------------------
    def kill9_points(self, n: int) -> None:
        for i in range(n):
            docker = self.docker and i % 4 == 3  # every fourth point through the Docker runner
            path, results = self._study(f"kill{i}", sweep={"batch_size": [1, 2]}, execution={"n_cycles": 2})
            proc = self._start("run", str(path), *(["--docker"] if docker else []))
            time.sleep(self.rng.uniform(0.2, 14.0))
            os.kill(proc.pid, signal.SIGKILL)  # the orchestrator only: its harness/container live on
            proc.communicate()
            self.tally.kill_points += 1
            study_dir, manifest = self._manifest(results)
            if study_dir is None or manifest is None:
                self.tally.kill_before_study_dir += 1
                self._check_orphans(f"kill {i} (before manifest)")
                continue
            before = {e["experiment_index"] * 10 + e["cycle"]: (e["run_id"], _sha(study_dir / e["result_file"]))
                      for e in manifest["entries"] if e["status"] == "completed"}
            code, out = self._run("run", "--resume", str(study_dir), *(["--docker"] if docker else []))
            _, after = self._manifest(results)
            if code != 0 or after is None or after["status"] != "completed":
                self.tally.problems.append(f"kill {i}: resume exit {code}: {out[-400:]}")
                continue
            now = {e["experiment_index"] * 10 + e["cycle"]: e for e in after["entries"]}
            for key, (run_id, digest) in before.items():
                entry = now.get(key)
                if entry is None or entry["run_id"] != run_id:
                    self.tally.completed_rerun += 1
                elif _sha(study_dir / entry["result_file"]) != digest:
                    self.tally.results_lost += 1
            self._check_orphans(f"kill {i}")

    # -- single faults -------------------------------------------------------------------------------
    def faults(self) -> None:
        path, results = self._study("timeout", base=LONG, execution={"timeout_s": 3})
        self._run("run", str(path))
        entry = self._manifest(results)[1]["entries"][0]
        self._record("timeout", entry.get("error_type") == "timeout", entry.get("error_type"))

        base = {"n_prompts": 16, "batch_size": 16, "max_output_tokens": 4096, "decoding": {"ignore_eos": True},
                "measurement": {"warmup": {"enabled": False}, "baseline": {"duration_s": 0.5}}}
        path, results = self._study("silence", base=base, execution={"silence_timeout_s": 1})
        self._run("run", str(path))
        entry = self._manifest(results)[1]["entries"][0]
        self._record("silence", entry.get("error_type") == "silent", entry.get("error_type"))

        path, results = self._study("harness-kill", base=LONG)
        proc = self._start("run", str(path))
        if self._wait(results, lambda m: m["entries"][0]["status"] == "running"):
            time.sleep(1.5)
            harness = _started_harness_pids(results)
            for pid in harness:
                os.kill(pid, signal.SIGKILL)
        self._no_traceback("harness kill", proc.communicate(timeout=300)[0])
        entry = self._manifest(results)[1]["entries"][0]
        # Not the OOM killer (the kernel's counters say so): a kill of unknown origin, not OOMKilled.
        self._record("kill -9 of the harness", entry.get("error_type") == "Killed", entry.get("error_type"))

        (self.workdir / "no-such-model").mkdir()  # exists (a missing path is refused before starting): no model
        path, results = self._study("engine-error", base={"model": str(self.workdir / "no-such-model")})
        code, _ = self._run("run", str(path))
        entry = self._manifest(results)[1]["entries"][0]
        self._record("engine error", entry["status"] == "failed" and code == 1, f"{entry.get('error_type')} (exit {code})")

        for presses in (1, 2):
            path, results = self._study(f"sigint{presses}", base=LONG, execution={"n_cycles": 2})
            proc = self._start("run", str(path))
            self._wait(results, lambda m: m["entries"][0]["status"] == "running")
            time.sleep(1.5)
            started = time.monotonic()
            for _ in range(presses):
                os.killpg(proc.pid, signal.SIGINT)
                time.sleep(0.2)
            self._no_traceback(f"SIGINT x{presses}", proc.communicate(timeout=120)[0])
            took = time.monotonic() - started
            manifest = self._manifest(results)[1]
            ok = proc.returncode == 130 and manifest["status"] == "interrupted"
            self._record(f"SIGINT x{presses}", ok, f"exit {proc.returncode}, manifest {manifest['status']}, "
                                                   f"stopped in {took:.1f} s")
            self._check_orphans(f"SIGINT x{presses}")
        self.disk_full()

    def disk_full(self) -> None:
        mount = self.workdir / "small-disk"
        mount.mkdir(parents=True)
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(mount)],
                          capture_output=True).returncode != 0:
            self._record("disk full", True, "skipped: mounting a small tmpfs needs root")
            return
        try:
            path, _ = self._study("disk-preflight", results=mount / "results")
            code, out = self._run("run", str(path))
            ok = code == 2 and str(mount) in out and not (mount / "results").exists()
            self._record("disk full (before start)", ok, f"exit {code}: {out.strip().splitlines()[-1][:120]}")
        finally:
            subprocess.run(["umount", str(mount)], capture_output=True)
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=260m", "tmpfs", str(mount)],
                          capture_output=True).returncode != 0:
            return
        try:
            path, results = self._study("disk-mid", sweep={"batch_size": [1, 2, 4]}, results=mount / "results",
                                        execution={"experiment_gap_s": 2})
            proc = self._start("run", str(path))
            first = self._wait(results, lambda m: m["entries"][0]["status"] == "completed")
            filler = mount / "filler"
            if first:
                with open(filler, "wb") as handle:  # fill the disk during the gap before run 2
                    try:
                        while True:
                            handle.write(b"\0" * (1 << 20))
                    except OSError:
                        pass
            proc.communicate(timeout=300)
            study_dir, manifest = self._manifest(results)
            kinds = [e.get("error_type") for e in manifest["entries"][1:]]
            kept = manifest["entries"][0]["status"] == "completed" and \
                (study_dir / manifest["entries"][0]["result_file"]).is_file()
            recorded = "StorageError" in kinds and all(e["status"] in ("completed", "failed")
                                                      for e in manifest["entries"])
            self._record("disk full (mid-study)", bool(first) and kept and recorded,
                         f"first run kept: {kept}; later runs: {kinds} (None = completed in space freed later)")
            filler.unlink(missing_ok=True)
        finally:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)

    # -- bad inputs ----------------------------------------------------------------------------------
    def bad_inputs(self, n: int) -> None:
        from tests.bad_inputs import check_bad_input, generate

        folder = self.workdir / "bad-inputs"
        folder.mkdir()
        for kind, data in generate(seed=self.rng.randrange(1 << 30), n=n, model=str(self.model_dir)):
            self.tally.bad_inputs += 1
            self.tally.bad_input_problems += [(kind, p) for p in check_bad_input(data, folder)]

    def secrets(self) -> None:
        """The token in any file of the campaign, or in a token directory no live llem owns."""
        from llenergymeasure.runners.watchdog import secrets_root

        for path in list(self.workdir.rglob("*")) + list(secrets_root().glob("llem-secrets-*/*")):
            try:
                if path.is_file() and SECRET.encode() in path.read_bytes():
                    self.tally.secrets_leaked.append(str(path))
            except OSError:
                pass


# -- hostile input and recovery ----------------------------------------------------------------------
INPUT_CASES = {  # name -> (study YAML with MODEL/DATA placeholders, extra CLI flags, words the refusal must contain)
    "grid of 10^7 points": ("name: g\nbase: {model: MODEL}\nsweep: {batch_size: &v [1,2,3,4,5,6,7,8,9,10], "
                            "n_prompts: *v, max_output_tokens: *v, max_input_tokens: *v, random_seed: *v, "
                            "decoding.top_k: *v, measurement.warmup.max_batches: *v}\n", (), ("10,000,000",)),
    "recursive alias": ("name: r\nbase: &b {model: MODEL, x: *b}\n", (), ("recursive",)),
    "duplicate key": ("name: d\nbase:\n  model: MODEL\n  batch_size: 1\n  batch_size: 2\n", (), ("given twice",)),
    "gap .inf": ("name: i\nbase: {model: MODEL}\nexecution: {experiment_gap_s: .inf}\n", (), ("experiment_gap_s",)),
    "cool-down .inf": ("name: i\nbase: {model: MODEL}\nexecution: {cooldown_max_s: .inf}\n", (), ("cooldown_max_s",)),
    "random_seed 1e33": ("name: s\nbase: {model: MODEL, random_seed: 1e33}\n", (), ("random_seed",)),
    "shm_size notasize": ("name: m\nbase: {model: MODEL}\ndocker: {shm_size: notasize}\n", (), ("shm_size",)),
    "--cycles 0": ("name: c\nbase: {model: MODEL}\n", ("--cycles", "0"), ("--cycles",)),
    "name of 300 characters": ("name: " + "n" * 300 + "\nbase: {model: MODEL}\n", (), ("name",)),
    "missing local model": ("name: l\nbase: {model: ./no/such/model}\n", (),
                            ("model:", "not an existing local directory")),
    "0-byte dataset": ("name: e\nbase: {model: MODEL, dataset: DATA}\n", (), ("dataset.path", "empty")),
    "all configurations invalid (--dry-run)": ("name: v\nbase: {model: MODEL}\nsweep: {batch_size: [0, -1]}\n",
                                               ("--dry-run",), ("configuration #1", "configuration #2")),
}


def input_cases(campaign: Campaign) -> None:
    """Hostile study files and flags (each refused with exit 2, the field named, no traceback, no study
    directory), an uncreatable lock directory, then recovery: a resume from another working directory,
    a corrupt manifest rebuilt from runs/, unreadable runs warned about, no disk reserve left."""
    folder = campaign.workdir / "input-cases"
    folder.mkdir(parents=True)
    empty = folder / "empty.jsonl"
    empty.write_bytes(b"")
    cases = {name: (text.replace("MODEL", str(campaign.model_dir)).replace("DATA", str(empty)), flags, words)
             for name, (text, flags, words) in INPUT_CASES.items()}
    cases["LLEM_LOCK_DIR uncreatable"] = (f"name: k\nbase: {{model: {campaign.model_dir}}}\n", (), ("LLEM_LOCK_DIR",))
    for name, (text, flags, words) in cases.items():
        path = folder / "study.yaml"
        path.write_text(text)
        env = {**campaign.env, "LLEM_LOCK_DIR": str(empty / "locks")} if "LLEM_LOCK_DIR" in name else campaign.env
        started = time.monotonic()
        code, out = _cli(["run", str(path), *flags], folder, env)
        took = time.monotonic() - started
        left = list((folder / "results").glob("*")) if (folder / "results").is_dir() else []
        ok = code == 2 and "Traceback" not in out and all(w in out for w in words) and not left and took < 60
        campaign.tally.bad_inputs += 1
        campaign._record(f"input: {name}", ok, f"exit {code} in {took:.1f} s" + ("" if ok else f": {out[-300:]}"))
    _recovery_cases(campaign)


def _cli(args: list[str], cwd: Path, env: dict) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-c", "from llenergymeasure.cli.main import main; main()", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stdout + proc.stderr


def _recovery_cases(campaign: Campaign) -> None:
    start = campaign.workdir / "recovery-start"
    (start / "models").mkdir(parents=True)
    (start / "models" / "tiny").symlink_to(campaign.model_dir)
    path, results = campaign._study("recovery", base={"model": "models/tiny"}, sweep={"batch_size": [1, 2]})
    code, out = _cli(["run", str(path)], start, campaign.env)
    study_dir, manifest = campaign._manifest(results)
    if code != 0 or manifest is None:
        campaign._record("recovery: first start", False, f"exit {code}: {out[-300:]}")
        return
    campaign._record("recovery: disk reserve removed at the end", not (study_dir / ".manifest-reserve").exists(),
                     "absent" if not (study_dir / ".manifest-reserve").exists() else "left behind")
    before = {e["run_id"]: _sha(study_dir / e["result_file"]) for e in manifest["entries"]}
    elsewhere = campaign.workdir / "recovery-elsewhere"
    elsewhere.mkdir()
    code, out = _cli(["run", "--resume", str(study_dir)], elsewhere, campaign.env)
    campaign._record("recovery: resume from another directory", code == 0, f"exit {code}")

    (study_dir / "manifest.json").write_bytes((study_dir / "manifest.json").read_bytes()[:50])
    code, out = _cli(["results", "rebuild-manifest", str(study_dir)], elsewhere, campaign.env)
    shown, shown_out = _cli(["results", "show", str(study_dir)], elsewhere, campaign.env)
    resumed, _ = _cli(["run", "--resume", str(study_dir)], elsewhere, campaign.env)
    _, after = campaign._manifest(results)
    now = {e["run_id"]: _sha(study_dir / e["result_file"]) for e in (after or {}).get("entries", [])
           if e.get("result_file")}
    campaign.tally.results_lost += sum(1 for run_id, digest in before.items() if now.get(run_id) != digest)
    campaign.tally.completed_rerun += sum(1 for run_id in now if run_id not in before)
    campaign._record("recovery: corrupt manifest rebuilt", (code, shown, resumed) == (0, 0, 0) and now == before,
                     f"rebuild exit {code}, show exit {shown}, resume exit {resumed}, {len(now)}/{len(before)} results")

    broken = study_dir / manifest["entries"][1]["result_file"]
    broken.write_text("{not json")
    warned = []
    for args in (["export", str(study_dir), "--format", "csv"], ["plot", str(study_dir)]):
        _, out = _cli(["results", *args], elsewhere, campaign.env)
        warned.append(broken.parent.name in out and "warning" in out)
    campaign._record("recovery: export/plot warn about an unreadable run", all(warned), f"warned: {warned}")


def _sha(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def print_table(t: Tally) -> None:
    rows = [("kill -9 points tried", t.kill_points, f"(of which {t.kill_before_study_dir} before the manifest existed)"),
            ("faults injected", len(t.faults), ""),
            ("bad inputs tried", t.bad_inputs, f"{len(t.bad_input_problems)} misbehaved"),
            ("results lost", t.results_lost, "target 0"),
            ("reruns of completed runs", t.completed_rerun, "target 0"),
            ("double-counted results", t.double_counted, "target 0"),
            ("overlapping measurements", len(t.overlapping), "target 0"),
            ("orphan containers/processes left", len(t.orphans_left), "target 0"),
            ("secrets on disk", len(t.secrets_leaked), "target 0"),
            ("tracebacks", len(t.tracebacks), "target 0")]
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>6}  {note}")
    for fault, seen in t.faults.items():
        print(f"  case: {fault} → {seen}")
    for problem in t.problems + t.orphans_left + t.secrets_leaked + t.overlapping + t.tracebacks \
            + t.bad_input_problems[:10]:
        print(f"  problem: {problem}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kill-points", type=int, default=24)
    parser.add_argument("--bad-inputs", type=int, default=1000)
    parser.add_argument("--docker", action="store_true", help="also kill -9 studies on the Docker runner")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from fault_campaign_identity import run_identity_cases  # bench/ is on sys.path (above)
    from fault_campaign_reader import run_reader_cases  # the serving reader: one bad response, one failed request
    from fault_campaign_runtime import run_runtime_cases
    from fault_campaign_trust import run_trust_cases  # shared hosts: another user, values, identity
    from llenergymeasure.models import make_tiny_model

    with tempfile.TemporaryDirectory(prefix="llem-campaign-") as tmp:
        model = make_tiny_model(Path(tmp) / "tiny-llm")
        campaign = Campaign(model, Path(tmp) / "work", seed=args.seed, docker=args.docker)
        campaign.kill9_points(args.kill_points)
        campaign.faults()
        run_runtime_cases(campaign)
        run_identity_cases(campaign)
        run_reader_cases(campaign)
        campaign.bad_inputs(args.bad_inputs)
        input_cases(campaign)
        run_trust_cases(campaign)
        campaign.secrets()
        print_table(campaign.tally)
        t = campaign.tally
        failed = t.results_lost or t.completed_rerun or t.orphans_left or t.secrets_leaked or t.problems \
            or t.bad_input_problems or t.double_counted or t.overlapping or t.tracebacks
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
