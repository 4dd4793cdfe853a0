"""Study output files: study_result.json, results.csv, results.parquet, summary.csv, summary_by_gpu.csv.

Called by the study loop at the end of every study (and by `llem results export`). pandas and
pyarrow are imported lazily. Every file is written beside-then-renamed so a reader never sees a
half-written table.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..domain import StudyResult
from ..domain.io import write_json_atomic
from .csv_safe import safe_csv_frame
from .stats import DEFAULT_CV_THRESHOLD, configuration_stats
from .tables import ID_COLUMNS, run_rows, summary_rows

STUDY_RESULT_FILE = "study_result.json"
RESULTS_CSV = "results.csv"
RESULTS_PARQUET = "results.parquet"
SUMMARY_CSV = "summary.csv"
SUMMARY_BY_GPU_CSV = "summary_by_gpu.csv"  # one row per (configuration, GPU set)

__all__ = ["write_study_outputs", "configuration_stats", "write_table", "STUDY_RESULT_FILE", "RESULTS_CSV",
           "RESULTS_PARQUET", "SUMMARY_CSV", "SUMMARY_BY_GPU_CSV"]


def _frame(rows: list[dict[str, Any]], empty_columns: tuple[str, ...]):
    import pandas as pd

    if not rows:
        return pd.DataFrame(columns=list(empty_columns))
    return pd.DataFrame(rows)


def write_table(rows: list[dict[str, Any]], path: Path, fmt: str,
                empty_columns: tuple[str, ...] = ID_COLUMNS) -> Path:
    """Write tidy rows as csv, parquet or json (records) atomically."""
    import io

    from ..domain.io import write_chunks_atomic

    path = Path(path)
    frame = _frame(rows, empty_columns)
    if fmt == "csv":
        data = safe_csv_frame(frame).to_csv(index=False).encode("utf-8")
    elif fmt == "parquet":
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        data = buffer.getvalue()
    elif fmt == "json":
        data = frame.to_json(orient="records", indent=2).encode("utf-8")
    else:
        raise ValueError(f"unknown table format {fmt!r}")
    write_chunks_atomic(path, [data], fsync=False)  # an exclusive temp file, never through a link
    return path


def write_study_outputs(study_dir: Path, study_result: StudyResult,
                        cv_threshold: float = DEFAULT_CV_THRESHOLD) -> list[str]:
    """Write the study files (the five above); return their names relative to `study_dir`.

    Fills `study_result.configurations` in place when empty, so the object `run_study` returns and
    `study_result.json` agree. `result_files` (the runs' result.json files) is left as it is.
    """
    study_dir = Path(study_dir)
    results = study_result.experiments
    if not study_result.configurations:
        study_result.configurations = configuration_stats(results, cv_threshold=cv_threshold)
    if not study_result.configurations_by_gpu:
        study_result.configurations_by_gpu = configuration_stats(results, cv_threshold=cv_threshold, by_gpu=True)
    files = [STUDY_RESULT_FILE, RESULTS_CSV, RESULTS_PARQUET, SUMMARY_CSV, SUMMARY_BY_GPU_CSV]
    rows = run_rows(results)
    write_table(rows, study_dir / RESULTS_CSV, "csv")
    write_table(rows, study_dir / RESULTS_PARQUET, "parquet")
    write_table(summary_rows(study_result.configurations), study_dir / SUMMARY_CSV, "csv",
                empty_columns=("config_hash", "config_summary", "n_runs"))
    write_table(summary_rows(study_result.configurations_by_gpu), study_dir / SUMMARY_BY_GPU_CSV, "csv",
                empty_columns=("config_hash", "config_summary", "gpu_set", "n_runs"))
    write_json_atomic(study_dir / STUDY_RESULT_FILE, study_result)
    return files
