"""`llem results rebuild-manifest STUDY_DIR`: a new manifest.json from what runs/ holds.

Why: the manifest is the index every reader and `--resume` go through; when it is corrupt
(a disk fault, an editor) the measurements under runs/ are intact but unreachable. Each run
directory says what it was (experiment.json) and how it ended (result.json or error.json),
and study.json says what the study planned, so the manifest can be rebuilt without guessing:

- the planned entries come from study.json (expanded as at the start); without it, only the
  runs found are listed;
- per (configuration, cycle) a completed attempt wins over a failed or cut-short one, and a
  later attempt (`_r2`) over an earlier one with the same outcome; other attempts stay on disk
  as evidence and are not counted;
- a run whose configuration hash is not the one planned is left out, and said so;
- a run directory of another study (copied in: its experiment.json names another study id, or
  another run id than its directory's name) is left out and said so, so it can never displace
  this study's own result; a result.json counts only when it is its run's (study id, run id,
  cycle, configuration and hash as in experiment.json).

The previous file is kept beside it (`manifest.json.before-rebuild-<time>`); the rebuilt study is marked
`interrupted`, so `llem run --resume` continues it and `llem results` reads it.
"""
from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

from ..domain import ERROR_FILE, MANIFEST_FILE, RESULT_FILE, RUN_SPEC_FILE, ManifestEntry, RunSpec
from ..errors import ConfigError

_RANK = {"completed": 2, "failed": 1, "interrupted": 0}


def rebuild_manifest(study_dir: Path) -> tuple[Path, list[str]]:
    """Write STUDY_DIR/manifest.json from runs/ (and study.json); returns its path and notes."""
    from .locks import StudyLock

    study_dir = Path(study_dir).expanduser().resolve()
    if not (study_dir / "runs").is_dir():
        raise ConfigError(f"{study_dir} has no runs/ directory: give a study directory made by `llem run`")
    lock = StudyLock(study_dir)
    lock.acquire()  # refused while a study process runs this directory
    try:
        return _rebuild(study_dir)
    finally:
        lock.release()


def _rebuild(study_dir: Path) -> tuple[Path, list[str]]:
    from .manifest import ManifestWriter, new_manifest

    notes: list[str] = []
    planned, n_cycles, cycle_order, name = _planned(study_dir, notes)
    study_id = _study_id(study_dir, notes)
    found = _runs(study_dir, notes, study_id)
    by_key = {(e.experiment_index, e.cycle): i for i, e in enumerate(planned)}
    for (index, cycle), entry in sorted(found.items()):
        position = by_key.get((index, cycle))
        if position is None and by_key:
            notes.append(f"{entry.run_id}: configuration #{index} cycle {cycle} is not in study.json's plan; left out")
            continue
        if position is not None and planned[position].config_hash != entry.config_hash:
            notes.append(f"{entry.run_id}: its configuration hash {entry.config_hash} is not the planned "
                         f"{planned[position].config_hash}; left out")
            continue
        if position is None:
            planned.append(entry)
        else:
            planned[position] = entry
    if not by_key:
        planned.sort(key=lambda e: (e.cycle, e.experiment_index))
        n_cycles = max((e.cycle for e in planned), default=1)
    path = study_dir / MANIFEST_FILE
    if path.exists():
        kept = path.with_name(f"{MANIFEST_FILE}.before-rebuild-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}")
        shutil.copy2(path, kept)
        notes.append(f"the previous manifest is kept as {kept.name}")
    manifest = new_manifest(study_id, name, study_dir, n_cycles, cycle_order, planned)
    manifest.stop_reason = "manifest rebuilt from runs/ (`llem results rebuild-manifest`)"
    ManifestWriter(manifest, path).set_status("interrupted")
    return path, notes


def _planned(study_dir: Path, notes: list[str]) -> tuple[list[ManifestEntry], int, str, str]:
    """The entries the study planned (all pending), from study.json; empty when it is unreadable."""
    from .resume import read_study_snapshot, snapshot_cwd
    from .study_run import StudyRun

    try:
        study, search_dirs = read_study_snapshot(study_dir)
        run = StudyRun(study, search_dirs=search_dirs, cwd=snapshot_cwd(study_dir))
    except ConfigError as exc:
        notes.append(f"study.json unusable ({str(exc)[:200]}): only the runs found are listed")
        name = study_dir.name.rsplit("_", 1)[0] if "_" in study_dir.name else study_dir.name
        return [], 1, "interleaved", name
    _, entries = run.planned_entries()
    return entries, study.execution.planned_cycles, study.execution.cycle_order, study.name


def _study_id(study_dir: Path, notes: list[str]) -> str:
    """This study's id: as study.json recorded it, else the directory's name (what `llem run` named it). A
    directory renamed since (no run names it) takes the id most of its runs' experiment.json name."""
    import json
    from collections import Counter

    try:
        recorded = json.loads((study_dir / "study.json").read_text(encoding="utf-8")).get("study_id")
    except (OSError, ValueError, AttributeError):
        recorded = None
    if isinstance(recorded, str) and recorded:
        return recorded
    ids = Counter()
    for spec_path in (study_dir / "runs").glob(f"*/{RUN_SPEC_FILE}"):
        try:
            ids[RunSpec.model_validate_json(spec_path.read_bytes()).study_id] += 1
        except (OSError, ValueError):
            continue
    if study_dir.name not in ids and ids:
        (most, count), = ids.most_common(1)
        notes.append(f"{count} of {sum(ids.values())} runs name study {most!r}, none this directory's name (it was "
                     "renamed): kept as the study id")
        return most
    return study_dir.name


def _runs(study_dir: Path, notes: list[str], study_id: str) -> dict[tuple[int, int], ManifestEntry]:
    """The attempt that counts per (configuration, cycle), read from each run directory of this study."""
    best: dict[tuple[int, int], ManifestEntry] = {}
    for spec_path in sorted((study_dir / "runs").glob(f"*/{RUN_SPEC_FILE}"), key=_attempt_order):
        run_dir = spec_path.parent
        try:
            spec = RunSpec.model_validate_json(spec_path.read_bytes())
        except (OSError, ValueError) as exc:
            notes.append(f"{run_dir.name}: unreadable {RUN_SPEC_FILE} ({str(exc).splitlines()[0][:120]}); left out")
            continue
        if spec.study_id != study_id or spec.run_id != run_dir.name:
            notes.append(f"{run_dir.name}: its {RUN_SPEC_FILE} is run {spec.run_id!r} of study {spec.study_id!r}, "
                         f"not a run of this study ({study_id!r}); left out")
            continue
        entry = ManifestEntry(run_id=run_dir.name, experiment_index=spec.experiment_index, cycle=spec.cycle,
                              config_hash=spec.config_hash, config_summary=spec.config.summary(),
                              engine=spec.config.engine, runner=spec.runner, **_outcome(run_dir, spec))
        key = (spec.experiment_index, spec.cycle)
        if key not in best or _RANK[entry.status] >= _RANK[best[key].status]:
            best[key] = entry
    return best


def _attempt_order(path: Path) -> tuple[str, int]:
    """`NNN_..._hash` before `NNN_..._hash_r2` before `_r10`."""
    name = path.parent.name
    stem, _, attempt = name.rpartition("_r")
    return (stem, int(attempt)) if attempt.isdigit() and stem else (name, 1)


def _outcome(run_dir: Path, spec: RunSpec) -> dict:
    from ..domain import ExperimentResult, HarnessError

    from ..results.load import identity_problems

    try:
        result = ExperimentResult.model_validate_json((run_dir / RESULT_FILE).read_bytes())
        if not identity_problems(result, spec, spec.study_id):  # the result of this very run, nothing else
            return {"status": "completed", "result_file": f"runs/{run_dir.name}/{RESULT_FILE}"}
    except (OSError, ValueError):
        pass
    try:
        error = HarnessError.model_validate_json((run_dir / ERROR_FILE).read_bytes())
        return {"status": "failed", "error_type": error.type, "error_message": error.message}
    except (OSError, ValueError):
        pass
    return {"status": "interrupted", "error_type": "Interrupted",
            "error_message": f"no readable {RESULT_FILE} or {ERROR_FILE} (found when the manifest was rebuilt)"}
