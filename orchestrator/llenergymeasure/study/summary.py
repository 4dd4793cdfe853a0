"""Building the StudyResult from the manifest and the outcomes, and writing the study outputs."""
from __future__ import annotations

import logging
from pathlib import Path

from ..domain import ManifestEntry, StudyConfig, StudyManifest, StudyResult, StudySummary
from ..runners.base import RunOutcome
from .manifest import utc_now

log = logging.getLogger(__name__)


def measurement_protocol(study: StudyConfig, plan) -> dict:
    """What a reader needs to interpret the numbers: how runs were ordered and measured."""
    ex = study.execution
    return {
        "n_cycles": ex.n_cycles, "cycle_order": ex.cycle_order, "shuffle_seed": ex.shuffle_seed,
        "experiment_gap_s": ex.experiment_gap_s, "cycle_gap_s": ex.cycle_gap_s,
        "cooldown_to_idle": ex.cooldown_to_idle,
        "runners": dict(plan.runners),
        "images": {engine: plan.image_for(engine) for engine in plan.runners},
        "energy": "GPU total-energy counter at the window edges (device-synchronised); integrated instant "
                  "power where the counter is unsupported; idle baseline subtracted only in *_adjusted fields",
        "window": "all measured batches of one run, after warm-up; model load and warm-up excluded",
    }


def build_study_result(study: StudyConfig, study_dir: Path, manifest: StudyManifest,
                       outcomes: list[tuple[ManifestEntry, RunOutcome | None]], started_at: str,
                       wall_time_s: float, plan) -> StudyResult:
    results = [o.result for _, o in outcomes if o is not None and o.result is not None]
    counters = manifest.counters
    raw = [r.energy.gpu_energy_raw_j for r in results if r.energy.gpu_energy_raw_j is not None]
    adjusted = [r.energy.gpu_energy_adjusted_j for r in results if r.energy.gpu_energy_adjusted_j is not None]
    warnings = list(plan.warnings)
    for result in results:
        warnings += [f"{result.run_id}: {w}" for w in result.measurement_warnings]
    summary = StudySummary(total_runs=counters.total, completed=counters.completed, failed=counters.failed,
                           skipped=counters.skipped, interrupted=counters.interrupted,
                           wall_time_s=round(wall_time_s, 3), gpu_energy_raw_j=sum(raw) if raw else None,
                           gpu_energy_adjusted_j=sum(adjusted) if adjusted else None, warnings=warnings)
    result = StudyResult(study_id=manifest.study_id, study_name=study.name, study_dir=str(study_dir),
                         status=manifest.status, started_at=started_at, finished_at=utc_now(), experiments=results,
                         result_files=[e.result_file for e in manifest.entries if e.result_file],
                         measurement_protocol=measurement_protocol(study, plan), summary=summary)
    _decide(study, result)
    result.search = manifest.search
    _write_outputs(study_dir, result)
    return result


def _decide(study: StudyConfig, result: StudyResult) -> None:
    """The front, the answer under `slo:` and the carbon figures (results/pareto.py, results/carbon.py).
    A failure here loses nothing measured: the study's tables are still written."""
    from ..results.carbon import carbon_section
    from ..results.pareto import pareto_front
    from ..results.stats import configuration_stats

    try:
        result.configurations = configuration_stats(result.experiments)
        if not result.configurations:
            return
        carbon = carbon_section(result.configurations, study.carbon.model_dump() if study.carbon else None)
        result.carbon = carbon
        result.pareto = pareto_front(result.configurations, slo=study.slo, carbon=carbon["configurations"])
    except Exception as exc:  # noqa: BLE001
        log.warning("could not compute the Pareto front: %s", exc)


def _write_outputs(study_dir: Path, result: StudyResult) -> None:
    """study_result.json, results.csv/.parquet, summary.csv. A failure here loses nothing:
    every run's result.json is already on disk and `llem results export` can rebuild them."""
    from ..results.outputs import write_study_outputs

    try:
        write_study_outputs(study_dir, result)  # also fills result.configurations
    except Exception as exc:  # noqa: BLE001
        log.warning("could not write study outputs in %s: %s", study_dir, exc)
