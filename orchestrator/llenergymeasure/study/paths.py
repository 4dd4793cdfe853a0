"""Study and run directory names (`runs/<NNN>_c<cycle>_<slug>_<hash8>/`)."""
from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from pathlib import Path

from ..domain import ExperimentConfig
from ..errors import ConfigError, StudyError

MIN_FREE_MB = 200  # below this a study would fail mid-way writing results and time series


def check_storage(results_dir: str | Path, min_free_mb: float = MIN_FREE_MB) -> None:
    """Exit-2 ConfigError before anything runs when results cannot be written (path in the message)."""
    import os
    import shutil

    base = Path(results_dir).expanduser().absolute()
    try:
        existing = next((p for p in (base, *base.parents) if p.exists()), None)
    except (OSError, ValueError) as exc:  # a name too long for the file system, a NUL byte
        why = exc.strerror if isinstance(exc, OSError) else exc
        raise ConfigError(f"results_dir {str(base)[:200]} is not a usable path ({why}); "
                          "set results_dir (YAML) or --output to a writable directory") from None
    if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"results directory {base} cannot be created or written ({existing} is not a writable "
                          "directory); set results_dir (YAML) or --output to a writable place")
    free_mb = shutil.disk_usage(existing).free / 2**20
    if free_mb < min_free_mb:
        raise ConfigError(f"only {free_mb:.0f} MiB free under {existing} (results_dir {base}); a study needs at "
                          f"least {min_free_mb} MiB. Free space or set results_dir / --output elsewhere")


def free_run_id(runs_dir: Path, run_id: str) -> str:
    """`run_id`, or `run_id_r2`, `_r3`... when an earlier attempt (a rerun after --resume) has that directory."""
    candidate, attempt = run_id, 1
    while (runs_dir / candidate).exists():
        attempt += 1
        candidate = f"{run_id}_r{attempt}"
    return candidate


def create_study_dir(results_dir: str | Path, name: str) -> Path:
    """Create `{results_dir}/{name}_{timestamp}/runs`; StudyError before anything runs if impossible."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = Path(results_dir).expanduser()
    for attempt in range(1, 100):
        suffix = "" if attempt == 1 else f"-{attempt}"
        study_dir = base / f"{name}_{stamp}{suffix}"
        try:
            study_dir.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            continue
        except OSError as exc:
            raise StudyError(f"cannot create the study directory {study_dir}: {exc.strerror or exc}; "
                             f"set results_dir (YAML) or --output to a writable directory") from None
        (study_dir / "runs").mkdir()
        for made in (study_dir, study_dir / "runs"):  # whatever the umask: only the owner writes a study
            os.chmod(made, os.lstat(made).st_mode & 0o7755)
        return study_dir.resolve()
    raise StudyError(f"cannot find a free study directory name under {base}")


def run_dir_name(sequence: int, cycle: int, config: ExperimentConfig, config_hash: str) -> str:
    model = config.model.rstrip("/").split("/")[-1]
    shape = f"bs{config.batch_size}"
    if config.mode == "serving":  # serving has no batch size: name the load instead
        shape = (f"conc{config.serving.concurrency}" if config.serving.concurrency is not None
                 else f"rate{config.serving.request_rate:g}")
    slug = re.sub(r"[^A-Za-z0-9.-]+", "-", f"{config.engine}-{model}-{shape}-{config.precision}")
    return f"{sequence:03d}_c{cycle}_{slug[:48].strip('-')}_{config_hash[:8]}"
