"""The public Python API: `run_study` and `run_experiment`."""
from __future__ import annotations

from pathlib import Path

from .domain import ExperimentConfig, ExperimentResult, StudyConfig, StudyResult
from .errors import ExperimentError
from .executors import for_study
from .study.loader import load_study
from .study.observer import StudyObserver
from .study.study_run import StudyRun


def run_study(study: str | Path | StudyConfig, *, observer: StudyObserver | None = None,
              runner: str | None = None) -> StudyResult:
    """Run a study (YAML path or StudyConfig) and return its StudyResult.

    `runner` forces one runner ("local" or "docker") for every engine. The study directory,
    its manifest and every run's files are on disk before this returns, whatever happens.
    """
    search_dirs: list[Path] = []
    if not isinstance(study, StudyConfig):
        path = Path(study)
        study = load_study(path)
        search_dirs.append(path.resolve().parent)
    return StudyRun(study, observer=observer, cli_runner=runner, search_dirs=search_dirs).execute(for_study(study))


def run_experiment(config: ExperimentConfig | dict, *, results_dir: str | Path = "results",
                   observer: StudyObserver | None = None, runner: str | None = None) -> ExperimentResult:
    """Run one experiment (as a one-run study, so it gets a manifest too) and return its result."""
    if isinstance(config, dict):
        config = ExperimentConfig.model_validate(config)
    study = StudyConfig(name=config.name or "experiment", base=config.model_dump(mode="json", exclude_none=True),
                        results_dir=str(results_dir))
    result = run_study(study, observer=observer, runner=runner)
    if not result.experiments:
        raise ExperimentError(f"the experiment did not complete; see {result.study_dir}/manifest.json")
    return result.experiments[0]
