"""Shared-host cases of the fault campaign: nobody else writes into a study, no study value becomes a
command, every result proves which entry it belongs to (bench/fault_campaign.py runs them).

Each case drives the real CLI on the tiny model through a `Campaign` (its helpers and tally) and
records what held. Cases that need a second user (another user plants a link, another user writes
into a root study) create a throwaway user with `useradd` and act as it with `runuser`; without
root they are recorded as skipped, with the reason.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

VICTIM_TEXT = "root:secret-hash:19000:0:99999:7:::\n"
OSC_TITLE = "\x1b]0;pwned\x07"  # retitles a terminal
FORMULA = "=cmd|' /C calc'!A0"


def run_trust_cases(campaign) -> None:
    with _other_user(campaign) as (user, shared):
        planted_lock_links(campaign, user, shared)
        study_dir = one_real_study(campaign, shared)
        if study_dir is not None:
            another_user_cannot_write_into_a_study(campaign, user, study_dir)
            csv_formula_cells(campaign, study_dir)
            results_identity(campaign, study_dir)
    values_never_become_commands(campaign)
    names_reach_the_terminal_escaped(campaign)


class _other_user:
    """A throwaway local user for two-user cases (None when not root or `useradd` is missing), and a
    folder that user can reach: its own under the system temp directory (mode 711), since the
    campaign's work directory may sit in a private one (pytest keeps its root at 700)."""

    def __init__(self, campaign):
        self.campaign, self.name, self.shared = campaign, None, None

    def __enter__(self) -> tuple[str | None, Path]:
        import tempfile

        self.shared = Path(tempfile.mkdtemp(prefix="llem-campaign-trust-"))
        self.shared.chmod(0o711)
        if os.geteuid() != 0 or shutil.which("useradd") is None or shutil.which("runuser") is None:
            return None, self.shared
        name = f"llemc{os.getpid() % 100000}"
        made = subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                              capture_output=True, text=True)
        if made.returncode != 0:
            self.campaign.tally.problems.append(f"useradd {name}: {made.stderr.strip()[:200]}")
            return None, self.shared
        self.name = name
        return name, self.shared

    def __exit__(self, *exc) -> None:
        if self.name:
            subprocess.run(["userdel", self.name], capture_output=True)
        shutil.rmtree(self.shared, ignore_errors=True)


def _as(user: str, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", user, "--", *argv], capture_output=True, text=True)


def _cli(campaign, *args: str, env: dict | None = None, cwd: Path | None = None) -> tuple[int, str]:
    """The real CLI with the campaign's environment (plus `env`), from `cwd`; output checked for tracebacks."""
    import sys

    proc = subprocess.run([sys.executable, "-c", "from llenergymeasure.cli.main import main; main()", *args],
                          env={**campaign.env, **(env or {})}, cwd=cwd, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    campaign._no_traceback(" ".join(args[:2]), out)
    return proc.returncode, out


def _skip(campaign, case: str, why: str) -> None:
    campaign.tally.faults[case] = f"skipped: {why}"


# -- 1. files llem writes as root -----------------------------------------------------------------------
def planted_lock_links(campaign, user: str | None, shared: Path) -> None:
    """A lock file planted as a link to a 0600 root file, in a lock directory of llem's user and in one
    another user made: llem refuses (exit 2 naming LLEM_LOCK_DIR or the lock file) and the file is intact."""
    folder = shared / "locks"
    folder.mkdir(mode=0o711)
    victim = folder / "shadow"
    victim.write_text(VICTIM_TEXT)
    victim.chmod(0o600)
    path, _ = campaign._study("trust-lock")

    own = folder / "own"
    own.mkdir(mode=0o700)
    (own / "device-cpu.lock").symlink_to(victim)
    code, out = _cli(campaign, "run", str(path), env={"LLEM_LOCK_DIR": str(own)})
    ok = code == 2 and "device-cpu.lock" in out and victim.read_text() == VICTIM_TEXT
    campaign._record("shared host: lock file planted as a link", ok, f"exit {code}, target "
                     f"{'intact' if victim.read_text() == VICTIM_TEXT else 'OVERWRITTEN'}")

    shared = folder / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    code, out = _cli(campaign, "run", str(path), env={"LLEM_LOCK_DIR": str(shared)})
    campaign._record("shared host: lock directory others can write", code == 2 and "chmod go-w" in out,
                     f"exit {code}")

    if user is None:
        _skip(campaign, "shared host: another user's lock directory with a planted link", "needs root")
        return
    import pwd

    theirs = folder / "theirs"  # as if that user had made the lock directory first
    theirs.mkdir(mode=0o755)
    os.chown(theirs, pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid)
    planted = _as(user, "ln", "-s", str(victim), str(theirs / "device-cpu.lock"))
    if planted.returncode:
        campaign._record("shared host: another user's lock directory with a planted link", False,
                         f"could not set up: {planted.stderr}")
        return
    code, out = _cli(campaign, "run", str(path), env={"LLEM_LOCK_DIR": str(theirs)})
    ok = code == 2 and "not to you" in out and victim.read_text() == VICTIM_TEXT
    campaign._record("shared host: another user's lock directory with a planted link", ok,
                     f"exit {code}, target {'intact' if victim.read_text() == VICTIM_TEXT else 'OVERWRITTEN'}")


def one_real_study(campaign, shared: Path) -> Path | None:
    """One configuration, two cycles, a formula for an experiment name: the study the next cases attack
    (its results directory where the other user can reach it)."""
    path, results = campaign._study("trust", base={"name": FORMULA}, execution={"n_cycles": 2},
                                    results=shared / "results")
    code, out = _cli(campaign, "run", str(path))
    study_dir, manifest = campaign._manifest(results)
    if code != 0 or manifest is None:
        campaign._record("shared host: the study under attack completes", False, f"exit {code}: {out[-300:]}")
        return None
    return study_dir


def another_user_cannot_write_into_a_study(campaign, user: str | None, study_dir: Path) -> None:
    run_dirs = sorted((study_dir / "runs").iterdir())
    modes = {oct(d.stat().st_mode & 0o777) for d in [study_dir, study_dir / "runs", *run_dirs]}
    open_to_others = [d.name for d in run_dirs if d.stat().st_mode & 0o022]
    campaign._record("shared host: run directories owner-only write", not open_to_others, f"modes {sorted(modes)}")
    if user is None:
        _skip(campaign, "shared host: another user replaces result.json", "needs root")
        return
    result = run_dirs[0] / "result.json"
    before = result.read_bytes()
    if _as(user, "test", "-r", str(result)).returncode != 0:  # else a refusal below would prove nothing
        campaign._record("shared host: another user replaces result.json", False,
                         f"setup: the other user cannot even read {result}")
        return
    tries = [_as(user, "sh", "-c", f"echo '{{}}' > {result}.new && mv -f {result}.new {result}"),
             _as(user, "touch", str(run_dirs[0] / ".result.json.1.tmp")),
             _as(user, "touch", str(study_dir / "runs" / "planted"))]
    succeeded = sum(1 for t in tries if t.returncode == 0)
    campaign._record("shared host: another user replaces result.json", succeeded == 0 and result.read_bytes() == before,
                     f"{succeeded} of {len(tries)} writes by another user succeeded")


# -- 2. no study value becomes a command ---------------------------------------------------------------
def values_never_become_commands(campaign) -> None:
    folder = campaign.workdir / "trust-values"
    folder.mkdir(parents=True)
    pwned = folder / "PWNED_SLURM"
    study = folder / "study.yaml"
    study.write_text(f'name: s\nresults_dir: "{folder}/r\\ntouch {pwned}"\nbase: {{model: {campaign.model_dir}}}\n')
    cases = {"newline in results_dir (Slurm script)": (["run", str(study), "--executor", "slurm"], "results_dir"),
             "newline in --slurm-partition": (["run", "-m", str(campaign.model_dir), "--executor", "slurm",
                                               "--slurm-partition", f"gpu\ntouch {pwned}"], "--slurm-partition"),
             "escape sequence in a model path": (["run", "-m", f"{campaign.model_dir}{OSC_TITLE}", "--dry-run"],
                                                 "model")}
    for name, (args, field) in cases.items():
        code, out = _cli(campaign, *args, cwd=folder)
        left = [p.name for p in folder.iterdir() if p.name not in ("study.yaml",)]
        ok = code == 2 and field in out and ("control character" in out or "not a Slurm name" in out) \
            and "\x1b" not in out and not left
        campaign._record(f"command: {name}", ok, f"exit {code}, {len(left)} files made" + ("" if ok else out[-200:]))


def names_reach_the_terminal_escaped(campaign) -> None:
    """A manifest whose messages carry an OSC title sequence and rich markup: `llem status` prints neither."""
    from llenergymeasure.domain import MANIFEST_FILE, ManifestEntry, StudyManifest

    folder = campaign.workdir / "trust-terminal" / "s_20240101T000000"
    (folder / "runs").mkdir(parents=True)
    entry = ManifestEntry(experiment_index=0, cycle=1, config_hash="0" * 16, status="failed",
                          config_summary=f"m{OSC_TITLE}[bold]x", error_type="OSError",
                          error_message=f"no model {OSC_TITLE}[red]x")
    manifest = StudyManifest(study_id=folder.name, study_name="s", study_dir=str(folder), status="stopped",
                             created_at="2024-01-01T00:00:00+00:00", updated_at="2024-01-01T00:00:00+00:00",
                             n_cycles=1, cycle_order="sequential", stop_reason=f"stopped {OSC_TITLE}", entries=[entry])
    (folder / MANIFEST_FILE).write_text(manifest.model_dump_json())
    code, out = _cli(campaign, "status", str(folder))
    ok = code == 0 and "\x1b" not in out and "\x07" not in out and "\\x1b]0;pwned\\x07" in out
    campaign._record("terminal: escape sequences in llem status", ok, f"exit {code}, "
                     f"{out.count(chr(27))} raw escape characters printed")


def csv_formula_cells(campaign, study_dir: Path) -> None:
    import csv

    with (study_dir / "results.csv").open(newline="") as handle:
        names = [row.get("config.name") for row in csv.DictReader(handle)]
    ok = bool(names) and all(n == "'" + FORMULA for n in names)
    campaign._record("CSV: formula in an experiment name", ok, f"cells {sorted(set(names))}")


# -- 4. every result proves it belongs to its entry ----------------------------------------------------
def results_identity(campaign, study_dir: Path) -> None:
    """Point cycle 2's entry at cycle 1's result: `llem results show` counts it once and warns, `--resume`
    reruns cycle 2; then a run directory of another study copied over a later attempt's name: a rebuilt
    manifest keeps the real result."""
    from llenergymeasure.results.load import load_study

    manifest_path = study_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    first, second = manifest["entries"]
    second_file = second["result_file"]
    second["result_file"] = first["result_file"]
    manifest_path.write_text(json.dumps(manifest))
    code, out = _cli(campaign, "results", "show", str(study_dir))
    data = load_study(study_dir)
    counted = len(data.results)
    campaign.tally.double_counted += max(0, counted - 1)
    campaign._record("identity: an entry pointed at another cycle's result", code == 0 and counted == 1
                     and first["run_id"] in out and second["run_id"] in out, f"{counted} result(s) counted from 1 file")

    code, out = _cli(campaign, "run", "--resume", str(study_dir))
    after = json.loads(manifest_path.read_text())
    files = [e["result_file"] for e in after["entries"]]
    ok = code == 0 and len(set(files)) == 2 and after["entries"][0]["run_id"] == first["run_id"] \
        and [e["status"] for e in after["entries"]] == ["completed"] * 2 and "warning" in out
    campaign._record("identity: --resume reruns it", ok, f"exit {code}, result files {len(set(files))}/2")

    # Another study's run directory, copied in under a later attempt's name (rebuild prefers later attempts).
    real = study_dir / second_file
    foreign = study_dir / "runs" / f"{Path(first['result_file']).parent.name}_r9"
    shutil.copytree(study_dir / Path(first["result_file"]).parent, foreign)
    for name in ("experiment.json", "result.json"):
        record = json.loads((foreign / name).read_text())
        record.update(study_id="other-study_20240101T000000", run_id=foreign.name)
        (foreign / name).write_text(json.dumps(record))
    before = {e["result_file"]: (study_dir / e["result_file"]).read_bytes() for e in after["entries"]}
    manifest_path.write_bytes(manifest_path.read_bytes()[:40])  # corrupt: rebuilt from runs/
    code, out = _cli(campaign, "results", "rebuild-manifest", str(study_dir))
    rebuilt = json.loads(manifest_path.read_text())
    kept = {e["result_file"] for e in rebuilt["entries"] if e.get("result_file")}
    lost = [f for f in before if f not in kept]
    campaign.tally.results_lost += len(lost)
    campaign._record("identity: a foreign run directory collides at rebuild-manifest",
                     code == 0 and not lost and foreign.name in out and real.is_file(),
                     f"exit {code}, {len(lost)} real results dropped")
