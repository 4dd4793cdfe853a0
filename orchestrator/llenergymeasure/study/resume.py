"""`--resume STUDY_DIR`: continue a study from its manifest.

Completed runs are never rerun and their files are never touched; failed, interrupted and
pending runs rerun (failed ones stay with `--skip-failed`); a `running` entry left by a
process that died is marked interrupted first. The design (grid points, config hashes,
cycles, order) must be the one the study started with, or the resume is refused: mixing
two designs in one manifest would make the cross-cycle statistics meaningless.
"""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from pydantic import ValidationError

from ..domain import MANIFEST_FILE, StudyConfig, StudyManifest
from ..domain.base import dotted_fields
from ..errors import ConfigError
from ..results.load import STUDY_SNAPSHOT_FILE, read_study_snapshot, snapshot_cwd  # noqa: F401 (the readers)
from .manifest import utc_now



def read_manifest(study_dir: Path) -> StudyManifest:
    path = Path(study_dir) / MANIFEST_FILE
    if not path.is_file():
        raise ConfigError(f"{path} not found: give a study directory made by `llem run`")
    try:
        return StudyManifest.model_validate_json(path.read_bytes())
    except (ValidationError, ValueError) as exc:
        first = str(exc).splitlines()[0][:200]
        raise ConfigError(f"{path} is corrupt or truncated ({first}); it cannot be resumed as it is. Results "
                          f"already written under runs/ are intact: `llem results rebuild-manifest {study_dir}` "
                          "rebuilds the manifest from them (the corrupt file is kept), then `llem results` reads "
                          "the study and `--resume` continues it.") from None


def write_study_snapshot(study_dir: Path, study: StudyConfig, search_dirs: list[Path], cwd: Path | None = None) -> None:
    """The study as validated, and where its relative paths were looked up: the working directory
    first, then `search_dirs` (so a resume from any directory resolves them as the start did)."""
    from ..domain.io import write_text_atomic

    payload = {"study_id": Path(study_dir).name,  # results name it; a rebuilt manifest keeps it
               "study": study.model_dump(mode="json"), "search_dirs": [str(p) for p in search_dirs],
               "cwd": str(Path(cwd or Path.cwd()).resolve())}
    write_text_atomic(Path(study_dir) / STUDY_SNAPSHOT_FILE, json.dumps(payload, indent=2) + "\n")


def explain_change(study_dir: Path, experiment_index: int, new_config) -> str:
    """What differs between the configuration the study started with and the one planned now
    (field by field), re-resolved from study.json as the first start resolved it."""
    from .expand import Plan

    try:
        study, search_dirs = read_study_snapshot(study_dir)
        plan = Plan(study, search_dirs, snapshot_cwd(study_dir), stream=False)
        old = plan.config(experiment_index) if experiment_index < len(plan) else None
    except ConfigError:
        return ""
    if old is None or new_config is None:
        was = "absent or invalid at the start" if old is None else "invalid now"
        return f"; configuration #{experiment_index} is {was}"
    before, after = dotted_fields(old.model_dump(mode="json")), dotted_fields(new_config.model_dump(mode="json"))
    changed = [f"{k}: was {before.get(k)!r}, now {after.get(k)!r}" for k in sorted(set(before) | set(after))
               if before.get(k) != after.get(k) and k != "name"]
    return f"; configuration #{experiment_index}: {'; '.join(changed[:5])}" if changed else ""


def check_same_design(manifest: StudyManifest, planned: list, n_cycles: int, cycle_order: str,
                      explain=None) -> None:
    """Refuse when the study's configs, cycles or order differ from the manifest's; `explain(index)`
    says field by field what changed in the first configuration that differs."""
    if (manifest.n_cycles, manifest.cycle_order) != (n_cycles, cycle_order):
        raise ConfigError(f"the study design changed since it started: cycles/order were {manifest.n_cycles}/"
                          f"{manifest.cycle_order}, now {n_cycles}/{cycle_order}. Resume with the original study, "
                          "or start a new study")
    old = [(e.experiment_index, e.cycle, e.config_hash) for e in manifest.entries]
    new = [(e.experiment_index, e.cycle, e.config_hash) for e in planned]
    if old != new:
        diff = next((i for i, (a, b) in enumerate(zip(old, new)) if a != b), min(len(old), len(new)))
        what = ""
        if explain is not None:
            what = explain((old[diff] if diff < len(old) else new[diff])[0])
        if len(old) != len(new) and not what:
            what = f"; {len(old)} runs planned at the start, {len(new)} now"
        raise ConfigError(f"the study design changed since it started (run #{diff + 1}: was "
                          f"{old[diff] if diff < len(old) else 'absent'}, now {new[diff] if diff < len(new) else 'absent'}"
                          f"; as experiment index, cycle, config hash{what}). Resume with the original study, "
                          "or start a new study")


def open_for_resume(resume_dir: Path, planned: list, n_cycles: int, cycle_order: str,
                    new_config=None) -> tuple[Path, StudyManifest]:
    """The study directory and its manifest, refused (exit 2) when the design changed
    (`new_config(index)`: the configuration planned now, to say what changed)."""
    study_dir = Path(resume_dir).resolve()
    manifest = read_manifest(study_dir)
    explain = (lambda index: explain_change(study_dir, index, new_config(index))) if new_config else None
    check_same_design(manifest, planned, n_cycles, cycle_order, explain)
    return study_dir, manifest


def to_rerun(status: str, skip_failed: bool) -> bool:
    return status in ("pending", "running", "interrupted") or (status == "failed" and not skip_failed)


def rerun_indices(manifest: StudyManifest, skip_failed: bool, live: tuple[str, ...] = ()) -> list[int]:
    """Manifest indices to run (again), in execution order. `live`: statuses of runs another
    process still owns (a Slurm study's `submitted`/`running` tasks), which are left alone."""
    return [i for i, e in enumerate(manifest.entries)
            if e.config_hash and e.status not in live and to_rerun(e.status, skip_failed)]


def record_resume(manifest: StudyManifest, rerun: int, skip_failed: bool, **extra) -> None:
    """Note this resume in the manifest (who, where, how many reruns) and mark the study running."""
    manifest.resumes.append({"at": utc_now(), "pid": os.getpid(), "host": socket.gethostname(),
                             "rerun": rerun, "skip_failed": skip_failed, **extra,
                             "completed_before": sum(1 for e in manifest.entries if e.status == "completed")})
    manifest.status, manifest.stop_reason = "running", None
