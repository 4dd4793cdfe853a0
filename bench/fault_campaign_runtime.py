"""Runtime cases of the fault campaign: double counting, overlapping measurements, signals from
scripts, OOM evidence, orphans after a kill -9, secrets on disk (bench/fault_campaign.py runs them).

Each case drives the real CLI on the tiny model through a `Campaign` (the helpers and the tally
live there) and records what the study directory says. `--docker` adds the Docker-runner cases.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HARNESS_GONE_WITHIN_S = 10.0  # a harness whose llem is gone must stop itself within this


def _output_within(proc: subprocess.Popen, timeout_s: float) -> str:
    """The output of an llem that was told to stop; killed (its whole group) if it has not within `timeout_s`."""
    try:
        return proc.communicate(timeout=timeout_s)[0]
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return proc.communicate()[0]


def run_runtime_cases(campaign, short: bool = False) -> None:
    double_count_after_crash(campaign, tries=2 if short else 5)
    signals_from_scripts(campaign)
    nohup_keeps_a_hang_up_ignored(campaign)
    ctrl_c_of_a_parallel_study(campaign)
    made_up_gpu_id(campaign)
    harness_stops_with_its_llem(campaign)
    leftovers_stopped_at_next_start(campaign)
    real_oom_kill(campaign)
    disk_full_during_run(campaign)
    if campaign.docker:
        docker_kill9_cleans_up(campaign)


# -- 1. a result written, the manifest not yet updated, llem killed -------------------------------------
def double_count_after_crash(campaign, tries: int) -> None:
    """kill -9 llem in the window between the harness writing result.json and the manifest recording
    it (a 5 ms watcher), resume, and count the results `llem results` reads against the manifest."""
    from llenergymeasure.results.load import load_study

    hit = 0
    for attempt in range(tries):
        path, results = campaign._study(f"double-count{attempt}", sweep={"batch_size": [1, 2]})
        proc = campaign._start("run", str(path))
        while proc.poll() is None:
            study_dir, manifest = campaign._manifest(results)
            if manifest:
                written = {p.parent.name for p in study_dir.glob("runs/*/result.json")}
                if any(e["status"] == "running" and e.get("run_id") in written for e in manifest["entries"]):
                    os.kill(proc.pid, signal.SIGKILL)
                    hit += 1
                    break
            time.sleep(0.005)
        proc.communicate()
        study_dir, _ = campaign._manifest(results)
        if study_dir is None:
            continue
        code, out = campaign._run("run", "--resume", str(study_dir))
        data = load_study(study_dir)
        completed = sum(1 for e in data.manifest.entries if e.status == "completed")
        on_disk = len(list(study_dir.glob("runs/*/result.json")))
        campaign.tally.double_counted += max(0, len(data.results) - completed)
        if code != 0 or completed != 2:
            campaign.tally.problems.append(f"double-count {attempt}: resume exit {code}, {completed} completed")
        if hit:
            campaign._record("kill -9 between result.json and the manifest", len(data.results) == completed == 2,
                             f"window hit in {attempt + 1} tries; {on_disk} result.json on disk, "
                             f"{len(data.results)} read for {completed} completed runs")
            return
    campaign._record("kill -9 between result.json and the manifest", True, f"window not hit in {tries} tries")


# -- 7. SIGINT/SIGTERM sent by a script to an llem started in the background ------------------------------
def signals_from_scripts(campaign) -> None:
    """A background job starts with SIGINT ignored: `kill -INT`, `kill -TERM` and a hang-up must still
    stop the study gracefully — exit 130, the harness writes error.json, the manifest names the signal."""
    from fault_campaign_shared import LONG

    def background_job() -> None:
        """A shell's background job: SIGINT ignored; SIGHUP at its default even where this campaign
        itself runs under nohup (that case is `nohup_keeps_a_hang_up_ignored`)."""
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGHUP: the SSH session closed
        path, results = campaign._study(f"bg-{sig.name}", base=LONG)
        proc = campaign._start("run", str(path), preexec=background_job)
        campaign._wait(results, lambda m: m["entries"][0]["status"] == "running")
        time.sleep(2.0)
        started = time.monotonic()
        os.kill(proc.pid, sig)
        out = _output_within(proc, 60.0)
        took = time.monotonic() - started
        campaign._no_traceback(f"background {sig.name}", out)
        study_dir, manifest = campaign._manifest(results)
        entry = manifest["entries"][0]
        error_json = (study_dir / "runs" / entry["run_id"] / "error.json").is_file()
        ok = proc.returncode == 130 and manifest["status"] == "interrupted" and error_json \
            and sig.name in (manifest.get("stop_reason") or "") and sig.name in (entry.get("error_message") or "")
        campaign._record(f"background {sig.name} (SIGINT inherited ignored)", ok,
                         f"exit {proc.returncode}, manifest {manifest['status']} ({manifest.get('stop_reason')}), "
                         f"error.json {'written' if error_json else 'missing'}, stopped in {took:.1f} s")
        campaign._check_orphans(f"background {sig.name}")


def nohup_keeps_a_hang_up_ignored(campaign) -> None:
    """`nohup llem run ...`: the hang-up stays ignored (the study goes on), and SIGTERM still stops it."""
    from fault_campaign_shared import LONG

    def under_nohup() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    path, results = campaign._study("nohup", base=LONG)
    proc = campaign._start("run", str(path), preexec=under_nohup)
    campaign._wait(results, lambda m: m["entries"][0]["status"] == "running")
    time.sleep(1.0)
    os.kill(proc.pid, signal.SIGHUP)
    time.sleep(3.0)
    _, manifest = campaign._manifest(results)
    went_on = proc.poll() is None and manifest["entries"][0]["status"] == "running"
    os.kill(proc.pid, signal.SIGTERM)
    out = _output_within(proc, 60.0)
    campaign._no_traceback("nohup", out)
    _, manifest = campaign._manifest(results)
    campaign._record("SIGHUP under nohup: ignored, SIGTERM still stops", went_on and proc.returncode == 130
                     and "SIGTERM" in (manifest.get("stop_reason") or ""),
                     f"{'went on' if went_on else 'stopped'} after SIGHUP; SIGTERM: exit {proc.returncode}, "
                     f"manifest {manifest['status']} ({manifest.get('stop_reason')})")
    campaign._check_orphans("nohup")


def ctrl_c_of_a_parallel_study(campaign) -> None:
    """Ctrl-C reaches only the main thread: the runs that worker threads wait on must stop too, and no
    queued run may start (else the study would go on measuring after the user stopped it)."""
    from fault_campaign_shared import LONG, _harness_pids

    path, results = campaign._study("parallel-ctrl-c", base=LONG, sweep={"batch_size": [1, 2, 4]},
                                    execution={"parallel": 2, "gpus": ["fake0", "fake1"], "allow_parallel_cpu": True})
    proc = campaign._start("run", str(path))
    campaign._wait(results, lambda m: sum(e["status"] == "running" for e in m["entries"]) == 2)
    time.sleep(1.5)
    started = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    out = _output_within(proc, 60.0)
    took = time.monotonic() - started
    campaign._no_traceback("parallel Ctrl-C", out)
    _, manifest = campaign._manifest(results)
    statuses = sorted(e["status"] for e in manifest["entries"])
    left = _harness_pids(results)
    ok = proc.returncode == 130 and manifest["status"] == "interrupted" and not left \
        and statuses == ["interrupted", "interrupted", "pending"]
    campaign._record("Ctrl-C of a parallel study", ok, f"exit {proc.returncode} in {took:.1f} s, entries {statuses}, "
                                                       f"{len(left)} harness(es) left")
    campaign._check_orphans("parallel Ctrl-C")


# -- 3. a made-up GPU id must not bypass the device lock -------------------------------------------------
def made_up_gpu_id(campaign) -> None:
    from llenergymeasure.study.locks import _FileLock

    path, results = campaign._study("fake-gpu", execution={"gpus": ["fake0"]})
    code, out = campaign._run("run", str(path))
    campaign._record("made-up GPU id", code == 2 and "execution.gpus" in out and not results.exists(),
                     f"exit {code}: {out.strip().splitlines()[-1][:100] if out.strip() else ''}")
    lock = _FileLock(campaign.workdir / "locks" / "device-cpu.lock")  # a CPU study is measuring
    lock.try_acquire("campaign: a CPU study")
    try:
        path, results = campaign._study("fake-gpu-test-switch", execution={"gpus": ["fake0"],
                                                                           "allow_parallel_cpu": True})
        code, out = campaign._run("run", str(path))
    finally:
        lock.release()
    refused = code == 2 and "cpu is in use" in out and not results.exists()
    if not refused:
        campaign.tally.overlapping.append("fake GPU id measured while a CPU study held the CPU")
    campaign._record("fake GPU id under the CPU-parallel switch, CPU busy", refused, f"exit {code}")


# -- 2. orphans: a harness whose llem is gone stops itself; the next start stops what is left ------------
def harness_stops_with_its_llem(campaign) -> None:
    from fault_campaign_shared import LONG, _started_harness_pids

    path, results = campaign._study("llem-killed", base=LONG)
    proc = campaign._start("run", str(path))
    campaign._wait(results, lambda m: m["entries"][0]["status"] == "running")
    time.sleep(1.5)
    harness = _started_harness_pids(results)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    deadline = time.monotonic() + HARNESS_GONE_WITHIN_S
    while time.monotonic() < deadline and any(_running(pid) for pid in harness):
        time.sleep(0.1)
    alive = [pid for pid in harness if _running(pid)]
    for pid in alive:
        campaign.tally.orphans_left.append(f"harness {pid} outlived its killed llem by {HARNESS_GONE_WITHIN_S:g} s")
    campaign._record("kill -9 of llem: its harness stops", bool(harness) and not alive,
                     f"{len(harness)} harness process(es), {len(alive)} alive after {HARNESS_GONE_WITHIN_S:g} s")


def _processes_running(text: str) -> bool:
    """Any process whose command line contains `text` (other than this one)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if text in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    return True
            except OSError:
                pass
    return False


def leftovers_stopped_at_next_start(campaign) -> None:
    """What no watchdog cleaned (killed with its llem): a process carrying a dead llem's marks and a
    token directory of a dead llem. The next start, local runner, must stop/remove both and say so."""
    from fault_campaign_shared import SECRET

    from llenergymeasure.runners.local_orphans import HOST_ENV, PID_ENV
    from llenergymeasure.runners.watchdog import secrets_prefix, secrets_root

    # The watchdogs of the previous cases' llem processes sweep at their exit and 2 s later, and a
    # sweep stops whatever any dead llem left: let them finish, or they would clean the plant first.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and _processes_running("llenergymeasure.runners.watchdog"):
        time.sleep(0.2)
    dead = subprocess.Popen(["true"])
    dead.wait()
    env = {**os.environ, PID_ENV: str(dead.pid), HOST_ENV: socket.gethostname()}
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], env=env,
                              start_new_session=True)
    secrets = secrets_root() / f"{secrets_prefix(dead.pid)}campaign"
    secrets.mkdir(mode=0o700)
    (secrets / "hf_token").write_text(SECRET)
    path, _ = campaign._study("next-start")
    code, out = campaign._run("run", str(path))
    try:
        orphan.wait(timeout=5)
    except subprocess.TimeoutExpired:
        orphan.kill()
        orphan.wait()
        campaign.tally.orphans_left.append("a dead llem's process survived the next start")
    said = "crashed llem left behind" in out and f"harness pid {orphan.pid}" in out
    campaign._record("next start stops a dead llem's process and token", code == 0 and said and not secrets.exists(),
                     f"exit {code}, notice {'printed' if said else 'missing'}, token dir "
                     f"{'left' if secrets.exists() else 'removed'}")


# -- 8. a real OOM kill is reported OOMKilled (the kernel's counters say so) -------------------------------
def real_oom_kill(campaign) -> None:
    group = _memory_cgroup(campaign.workdir.name, limit_mb=300)
    if group is None:
        campaign._record("OOM kill (memory cgroup limit)", True, "skipped: no writable memory cgroup (needs root)")
        return
    try:
        path, results = campaign._study("oom", base={"n_prompts": 64, "batch_size": 64, "max_input_tokens": 2048,
                                                     "max_output_tokens": 64})
        procs = group / "cgroup.procs"
        proc = campaign._start("run", str(path), preexec=lambda: procs.write_text(str(os.getpid())))
        out = proc.communicate(timeout=300)[0]
        campaign._no_traceback("oom", out)
        _, manifest = campaign._manifest(results)
        kind = manifest["entries"][0].get("error_type") if manifest else f"no manifest: {out[-200:]}"
        campaign._record("OOM kill (memory cgroup limit)", kind == "OOMKilled", str(kind))
    finally:
        try:
            group.rmdir()
        except OSError:
            pass


def _memory_cgroup(name: str, limit_mb: int) -> Path | None:
    """A child memory cgroup (v2 or v1) of this process's, with a limit; None where not allowed."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, rel = line.split(":", 2)
        if controllers == "":
            bases, limit_files = [Path("/sys/fs/cgroup") / rel.lstrip("/"), Path("/sys/fs/cgroup")], ["memory.max"]
        elif "memory" in controllers.split(","):
            root = Path("/sys/fs/cgroup/memory")
            bases, limit_files = [root / rel.lstrip("/"), root], ["memory.limit_in_bytes",
                                                                   "memory.memsw.limit_in_bytes"]
        else:
            continue
        for base in bases:
            group = base / f"llem-campaign-{name}"
            try:
                group.mkdir(exist_ok=True)
                for limit in limit_files:
                    if (group / limit).exists():
                        (group / limit).write_text(str(limit_mb << 20))
                if (group / limit_files[0]).exists():
                    return group
            except OSError:
                continue
    return None


# -- 4. the disk fills while the harness runs ---------------------------------------------------------
def disk_full_during_run(campaign) -> None:
    from fault_campaign_shared import LONG

    mount = campaign.workdir / "full-during-run"
    mount.mkdir(parents=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=260m", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        campaign._record("disk full during a run", True, "skipped: mounting a small tmpfs needs root")
        return
    try:
        base = {**LONG, "n_prompts": 60, "max_output_tokens": 64}
        path, results = campaign._study("disk-during", base=base, results=mount / "results")
        proc = campaign._start("run", str(path))
        campaign._wait(results, lambda m: m["entries"][0]["status"] == "running")
        time.sleep(1.0)
        with open(mount / "filler", "wb") as handle:
            try:
                while True:
                    handle.write(b"\0" * (1 << 20))
            except OSError:
                pass
        out = proc.communicate(timeout=300)[0]
        campaign._no_traceback("disk full during a run", out)
        study_dir, manifest = campaign._manifest(results)
        if manifest is None:
            campaign._record("disk full during a run", False, f"manifest unreadable: {out[-300:]}")
            return
        entry = manifest["entries"][0]
        temps = [p.name for p in study_dir.rglob("*.tmp")]
        ok = entry.get("error_type") == "StorageError" and not temps
        campaign._record("disk full during a run", ok, f"{entry.get('error_type')}: "
                         f"{(entry.get('error_message') or '')[:80]}; temp files left: {temps}")
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


# -- 2 + 5 with Docker: kill -9 of llem-docker ------------------------------------------------------------
def docker_kill9_cleans_up(campaign) -> None:
    """kill -9 llem-docker mid-run: its container and token go at once (watchdog). kill -9 llem-docker
    and its watchdog: the next start — local runner — stops the container before measuring."""
    import docker

    from fault_campaign_shared import LONG

    from llenergymeasure.runners.watchdog import secrets_root

    client = docker.from_env()
    try:
        for kill_watchdog in (False, True):
            path, results = campaign._study(f"docker-kill{int(kill_watchdog)}", base=LONG)
            proc = campaign._start("run", str(path), "--docker")
            campaign._wait(results, lambda m: m["entries"][0]["status"] == "running", timeout_s=300)
            time.sleep(3.0)
            watchdogs = _pgrep(f"llenergymeasure.runners.watchdog {proc.pid}")
            if kill_watchdog:
                for pid in watchdogs:
                    os.kill(pid, signal.SIGKILL)
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate()
            time.sleep(0.5 if kill_watchdog else 5.0)
            label = {"label": f"llem.orchestrator_pid={proc.pid}"}
            left = [c.name for c in client.containers.list(filters=label)]
            tokens = list(secrets_root().glob(f"llem-secrets-{proc.pid}-*"))
            if not kill_watchdog:
                ok = not left and not tokens
                campaign._record("kill -9 of llem-docker: container and token removed at once", ok,
                                 f"{len(left)} container(s), {len(tokens)} token dir(s) left after 5 s")
                continue
            path2, _ = campaign._study("after-docker-kill")
            code, out = campaign._run("run", str(path2))
            left_after = [c.name for c in client.containers.list(all=True, filters=label)]
            said = "crashed llem left behind" in out and "container" in out
            if left_after:
                campaign.tally.overlapping.append(f"container {left_after} ran alongside the next local study")
            campaign._record("kill -9 of llem-docker and its watchdog: next local start stops the container",
                             code == 0 and said and not left_after and not any(t.exists() for t in tokens),
                             f"exit {code}; {len(left)} container(s) left before; notice "
                             f"{'printed' if said else 'missing'}")
    finally:
        client.close()


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _pgrep(pattern: str) -> list[int]:
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    return [int(p) for p in found.stdout.split()]
