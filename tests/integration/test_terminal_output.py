"""What the terminal says at the end of a real study, and `llem results` on several studies.

A real 2-configuration x 3-cycle study of the tiny model through the CLI (local runner, real
harness). The end of `llem run` must carry what the runs' result.json files say: per-configuration
means and intervals as `llem results show` prints them, and every measurement warning, counted by
runs rather than dropped; tables fit 120 columns in a log. Intervals read the same in `compare`
and the report."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from llenergymeasure.domain import ExperimentResult
from llenergymeasure.results.number_format import interval
from tests.helpers import quickstart_data, run_llem

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cli_study(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("terminal")
    data = quickstart_data(tiny_model_dir, root / "results", n_cycles=3)
    path = root / "study.yaml"
    path.write_text(yaml.safe_dump(data))
    proc = run_llem("run", str(path), cwd=root)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (study_dir,) = (root / "results").iterdir()
    results = [ExperimentResult.model_validate_json(p.read_text()) for p in study_dir.glob("runs/*/result.json")]
    return proc.stdout, study_dir, results


def test_the_end_of_a_run_has_configuration_means_and_fits_120_columns(cli_study):
    out, study_dir, results = cli_study
    assert len(results) == 6
    tail = out[out.index("6 completed, 0 failed"):]
    assert "Per configuration across cycles (mean ± 95% CI half-width" in tail
    summary = json.loads((study_dir / "study_result.json").read_text())
    for number, conf in enumerate(summary["configurations"], start=1):
        label = f"bs={conf['config']['batch_size']}"  # what differs between the two, as the report labels them
        row = next(line for line in tail.splitlines() if re.match(rf"^\W*{number}\W+{label}\W", line))
        assert " ± " in row, row  # numbered as `llem results show` and the report
    table_lines = [line for line in tail.splitlines() if line[:1] in "│┃┏┡└"]
    assert table_lines and max(len(line) for line in table_lines) <= 120, tail


def test_every_warning_in_the_results_reaches_the_terminal_counted(cli_study):
    out, _, results = cli_study
    warned = [w for r in results for w in r.measurement_warnings if not w.startswith("GPU energy unavailable: ")]
    if not warned:
        pytest.skip("no run of this study carried a measurement warning on this host")
    tail = out[out.index("Warnings in the runs' result.json (6 runs):"):]
    for text in {re.sub(r"[-+]?\d+(?:[.,]\d+)*(?:e[-+]?\d+)?", "N", w) for w in warned}:
        carriers = [r for r in results
                    if any(re.sub(r"[-+]?\d+(?:[.,]\d+)*(?:e[-+]?\d+)?", "N", w) == text
                           for w in r.measurement_warnings)]
        line = next((ln for ln in tail.splitlines()
                     if re.sub(r"[-+]?\d+(?:[.,]\d+)*(?:e[-+]?\d+)?", "N", ln.split("): ", 1)[-1]).startswith(text)),
                    None)
        assert line is not None, (text, tail)
        assert f"{len(carriers)} of 6 runs (" in line, line


def test_results_show_takes_several_studies_and_says_when_it_cuts_a_list(cli_study, tmp_path):
    _, study_dir, _ = cli_study
    results = tmp_path / "results"
    copies = [results / f"{study_dir.name[:-1]}{i}" for i in range(6)]
    for copy in copies:
        shutil.copytree(study_dir, copy)
    proc = run_llem("results", "show", *map(str, copies[:2]))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("Per configuration across cycles") == 2
    table = proc.stdout.split("Per configuration across cycles", 2)[1].split("flags:")[0].split("wide:")[0]
    assert max(len(line) for line in table.splitlines()) <= 120, table  # a log's width: the table fits it
    listing = run_llem("results", "show", str(results))
    assert listing.returncode == 2
    assert "(the last 5 of 6 by name)" in listing.stderr and copies[-1].name in listing.stderr


def test_compare_and_the_report_write_an_interval_the_same_way(cli_study, tmp_path):
    _, study_dir, _ = cli_study
    summary = json.loads((study_dir / "study_result.json").read_text())
    stats = summary["configurations"][0]["metrics"]["output_tokens_per_s"]
    expected = interval(stats, "output_tokens_per_s")
    compare = run_llem("results", "compare", str(study_dir), "-m", "output_tokens_per_s")
    assert compare.returncode == 0, compare.stderr
    assert expected in compare.stdout, (expected, compare.stdout)
    report = run_llem("results", "report", str(study_dir), "-o", str(tmp_path / "r.html"))
    assert report.returncode == 0, report.stderr
    assert f"95% CI {expected}" in (tmp_path / "r.html").read_text()
