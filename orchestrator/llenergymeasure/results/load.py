"""Read a study directory back: manifest.json, the result.json of every completed entry, study.json.

The manifest decides which runs count: each completed entry names its `result_file`. Run
directories are never globbed — a run attempt abandoned by a crash (its result.json written, the
manifest not yet updated, the run then redone by `--resume`) stays on disk as evidence but must
never be counted twice. study_result.json is a summary written at the end (absent when a study
was interrupted), so `llem results` works on a study that is still running or was cut short.

Every result read through an entry must prove it is that entry's: its `study_id`, `run_id`,
cycle, configuration index and configuration hash are compared with the manifest entry, and one
file is never counted for two entries. A manifest is a
file anyone with write access can edit, and run directories can be copied between studies: an
entry pointed at another cycle's result would otherwise count one measurement twice, and a result
copied from another study would add a configuration this study never ran.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from ..domain import MANIFEST_FILE, RESULT_FILE, ExperimentResult, StudyConfig, StudyManifest, StudyResult
from ..errors import ConfigError
from .outputs import STUDY_RESULT_FILE

STUDY_SNAPSHOT_FILE = "study.json"  # the validated study config, written when the study starts (study/resume.py)


@dataclass
class StudyData:
    study_dir: Path
    manifest: StudyManifest
    results: list[ExperimentResult]
    warnings: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.manifest.study_name

    def run_dir(self, run_id: str) -> Path:
        return self.study_dir / "runs" / run_id


def _not_a_study(path: Path, why: str) -> ConfigError:
    hint = ""
    if path.is_dir():
        inner = sorted(p.parent.name for p in path.glob(f"*/{MANIFEST_FILE}"))  # <name>_<timestamp>: oldest first
        shown = inner[-5:]
        if shown:
            cut = f" (the last {len(shown)} of {len(inner)} by name)" if len(inner) > len(shown) else ""
            hint = f"; study directories inside it{cut}: {', '.join(shown)}"
    return ConfigError(f"{path} is not a study directory ({why}){hint}. "
                       f"Pass a directory like results/<study>_<timestamp> containing {MANIFEST_FILE} (several may be given).")


def result_path_of(study_dir: Path, entry) -> Path:
    """The result.json a completed manifest entry names; ValueError when it points outside the study.

    A manifest is a file users (and tools) can edit: `result_file: ../../etc/x` or an absolute
    path must not make `llem results` read, or a resume count, a file from elsewhere."""
    relative = entry.result_file or f"runs/{entry.run_id}/{RESULT_FILE}"
    root = Path(study_dir).resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise ValueError(f"result_file '{relative}' points outside the study directory {root}")
    return path


class ResultMismatch(ValueError):
    """A readable result.json that is not the result of the manifest entry pointing at it."""


def identity_problems(result: ExperimentResult, entry, study_id: str | None) -> list[str]:
    """How `result` differs from what `entry` (of study `study_id`) says it is; empty when it is its own."""
    problems = []
    if study_id is not None and result.study_id != study_id:
        problems.append(f"study_id {result.study_id!r}, not {study_id!r}")
    if entry.run_id and result.run_id != entry.run_id:
        problems.append(f"run_id {result.run_id!r}, not {entry.run_id!r}")
    if result.cycle != entry.cycle:
        problems.append(f"cycle {result.cycle}, not {entry.cycle}")
    if result.experiment_index != entry.experiment_index:
        problems.append(f"configuration #{result.experiment_index}, not #{entry.experiment_index}")
    if entry.config_hash and result.config_hash != entry.config_hash:
        problems.append(f"config hash {result.config_hash}, not {entry.config_hash}")
    return problems


def read_entry_result(study_dir: Path, entry, study_id: str | None,
                      seen: dict[Path, str] | None = None) -> ExperimentResult:
    """The result.json of a completed entry, proven to be that entry's. OSError/ValueError when it cannot be
    read; ResultMismatch (naming the entry and what the file says) when it belongs to something else, or when
    an earlier entry (`seen`: path -> run) already counted this file."""
    path = result_path_of(study_dir, entry)
    owner = (seen or {}).get(path)
    if owner is not None:
        raise ResultMismatch(f"run {entry.run_id} (cycle {entry.cycle}) points at {path.name} of "
                             f"{path.parent.name}, already counted for run {owner}; one file counts once")
    result = ExperimentResult.model_validate_json(path.read_bytes())
    problems = identity_problems(result, entry, study_id)
    if problems:
        raise ResultMismatch(f"run {entry.run_id} (configuration #{entry.experiment_index}, cycle {entry.cycle}) "
                             f"points at {path.relative_to(Path(study_dir).resolve())}, which is the result of "
                             f"{result.study_id}/{result.run_id} (cycle {result.cycle}): " + "; ".join(problems))
    if seen is not None:
        seen[path] = entry.run_id or path.parent.name
    return result


def load_study(path: str | Path) -> StudyData:
    """Load a study directory; ConfigError (exit 2) when `path` is not one."""
    study_dir = Path(path).expanduser()
    if not study_dir.is_dir():
        raise _not_a_study(study_dir, "no such directory")
    manifest_path = study_dir / MANIFEST_FILE
    if not manifest_path.is_file():
        raise _not_a_study(study_dir, f"no {MANIFEST_FILE}")
    try:
        manifest = StudyManifest.model_validate_json(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{manifest_path} is not a readable study manifest: {str(exc)[:300]}; rebuild it from "
                          f"runs/ with `llem results rebuild-manifest {study_dir}`") from None
    results: list[ExperimentResult] = []
    warnings: list[str] = []
    seen: dict[Path, str] = {}
    for entry in manifest.entries:
        if entry.status != "completed":
            continue
        try:
            results.append(read_entry_result(study_dir, entry, manifest.study_id, seen))
        except (OSError, ValueError) as exc:
            warnings.append(f"skipped run {entry.run_id}: {str(exc).splitlines()[0][:200]}")
    results.sort(key=lambda r: (r.experiment_index, r.cycle, r.run_id))
    return StudyData(study_dir=study_dir, manifest=manifest, results=results, warnings=warnings)


def study_result_of(data: StudyData) -> StudyResult:
    """The StudyResult of a loaded study: study_result.json when present, else rebuilt from the runs."""
    path = data.study_dir / STUDY_RESULT_FILE
    if path.is_file():
        try:
            stored = StudyResult.model_validate(json.loads(path.read_text(encoding="utf-8")))
            if len(stored.experiments) == len(data.results):
                return stored
        except (OSError, ValueError):
            pass
    m = data.manifest
    return StudyResult(study_id=m.study_id, study_name=m.study_name, study_dir=str(data.study_dir),
                       status=m.status, started_at=m.created_at, finished_at=m.updated_at,
                       experiments=data.results)


def read_study_snapshot(study_dir: Path) -> tuple[StudyConfig, list[Path]]:
    path = Path(study_dir) / STUDY_SNAPSHOT_FILE
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        return StudyConfig.model_validate(payload["study"]), [Path(p) for p in payload.get("search_dirs", [])]
    except FileNotFoundError:
        raise ConfigError(f"{path} not found: give the study YAML too (llem run STUDY.yaml --resume DIR)") from None
    except (ValidationError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} is corrupt ({str(exc).splitlines()[0][:200]}); give the study YAML too "
                          "(llem run STUDY.yaml --resume DIR)") from None


def snapshot_cwd(study_dir: Path) -> Path | None:
    """The working directory the study started from (None: not recorded, or no snapshot)."""
    try:
        cwd = json.loads((Path(study_dir) / STUDY_SNAPSHOT_FILE).read_text(encoding="utf-8")).get("cwd")
    except (OSError, ValueError, AttributeError):
        return None
    return Path(cwd) if isinstance(cwd, str) and cwd else None
