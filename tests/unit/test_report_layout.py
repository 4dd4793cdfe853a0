"""The report says each thing once, in a useful order: "best for what" first, no section that can only
be empty (no GPU, no timeline), a failure shared by many runs said once with its runs, and figures
labelled by what was swept."""
from __future__ import annotations

import re

from results_factory import make_result, write_study_dir

from llenergymeasure.domain import ManifestEntry, StudyManifest
from llenergymeasure.domain.io import write_json_atomic
from llenergymeasure.results.report import render_report


def _cpu_study(tmp_path, failed: int = 0):
    results = [make_result(bs, cycle, 2.0 + 0.1 * cycle, None) for bs in (1, 4) for cycle in (1, 2, 3)]
    study = write_study_dir(tmp_path, results)
    if failed:
        path = study / "manifest.json"
        manifest = StudyManifest.model_validate_json(path.read_text())
        manifest.entries += [ManifestEntry(run_id=f"{100 + i:03d}_c1_tiny_bs8", experiment_index=8, cycle=1,
                                           config_hash="f" * 16, config_summary="transformers tiny bs=8",
                                           status="failed", error_type="RuntimeError",
                                           error_message="CUDA out of memory") for i in range(failed)]
        write_json_atomic(path, manifest)
    return study


def test_best_comes_first_and_sections_without_a_gpu_or_timeline_are_left_out(tmp_path):
    html = render_report(_cpu_study(tmp_path))
    headings = re.findall(r"<h2[^>]*>(.*?)</h2>", html)
    assert headings[0] == "Which configuration is best for what", headings
    assert "Per-GPU comparison" not in headings and "Power and temperature during each run" not in headings
    assert 'href="#gpus"' not in html and 'href="#timelines"' not in html  # nor in the contents
    assert "#2 bs=4" in html and "fastest (output throughput)" in html


def test_a_failure_shared_by_many_runs_is_said_once(tmp_path):
    html = render_report(_cpu_study(tmp_path, failed=15))
    assert html.count("CUDA out of memory") == 1
    assert "15 runs failed: RuntimeError: CUDA out of memory — 100_c1_tiny_bs8, 101_c1_tiny_bs8" in html
    assert "and 3 more" in html
