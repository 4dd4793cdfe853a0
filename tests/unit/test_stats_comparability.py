"""Statistics say which runs are comparable: flagged by run id, replayed never pooled with measured."""
from __future__ import annotations

import pytest

from llenergymeasure.domain import ContentionResult
from llenergymeasure.results.stats import configuration_stats
from llenergymeasure.results.tables import run_row, summary_row
from tests.unit.results_factory import make_result

NVML = "NVML, driver 550.54, 1 GPU(s)"
TRACE = "tests/fixtures/traces/ci_idle_load.jsonl (synthetic trace of A100, driver ?, undated; speed x1)"


def _runs():
    runs = []
    for cycle, energy_j in ((1, 100.0), (2, 110.0), (3, 105.0), (4, 400.0)):
        r = make_result(1, cycle, window_s=2.0, energy_j=energy_j)
        r.energy.readings_source = TRACE if cycle == 4 else NVML
        r.warmup.converged = True
        runs.append(r)
    runs[1].contention = ContentionResult(significant=True, reasons=["other processes kept 1.2 cores busy"])
    return runs


def test_replayed_readings_are_never_pooled_with_measured_ones():
    (conf,) = configuration_stats(_runs())
    energy = conf["metrics"]["energy.gpu_energy_raw_j"]
    assert energy["n"] == 3 and energy["mean"] == pytest.approx(105.0)  # the replayed 400 J is not in it
    assert list(conf["excluded_runs"]) == [_runs()[3].run_id] and conf["readings"] == "measured"
    assert any(f.startswith("left out of these statistics") and "replayed" in f for f in conf["flags"])


def test_a_contended_run_is_flagged_by_id_everywhere_statistics_appear():
    runs = _runs()
    (conf,) = configuration_stats(runs)
    assert conf["flagged_runs"] == [runs[1].run_id]
    assert "contended: other processes kept 1.2 cores busy" in conf["run_flags"][runs[1].run_id]
    line = next(f for f in conf["flags"] if f.startswith("not comparable"))
    assert f"{runs[1].run_id} (contended)" in line
    assert summary_row(conf)["flagged_runs"] == runs[1].run_id
    assert run_row(runs[1])["comparability_flags"].startswith("contended")
    assert run_row(runs[3])["readings"] == "replayed" and run_row(runs[0])["readings"] == "measured"


def test_exclude_flagged_leaves_them_out_and_lists_them():
    runs = _runs()
    (conf,) = configuration_stats(runs, exclude_flagged=True)
    assert conf["n_runs"] == 2 and conf["flagged_runs"] == []
    assert set(conf["excluded_runs"]) == {runs[1].run_id, runs[3].run_id}
    assert conf["metrics"]["energy.gpu_energy_raw_j"]["mean"] == pytest.approx(102.5)


def test_warm_up_not_converged_and_a_stall_flag_a_run():
    runs = _runs()[:3]
    runs[0].warmup.converged = False
    runs[0].warmup.stopped_by = "max_batches"
    runs[2].window_stall_s = 2.5
    (conf,) = configuration_stats(runs)
    assert set(conf["flagged_runs"]) == {r.run_id for r in runs}
    assert conf["run_flags"][runs[0].run_id] == ["warm-up did not converge (stopped by max_batches)"]
    assert conf["run_flags"][runs[2].run_id] == ["stalled 2.5 s inside the window"]


def test_a_study_of_replayed_runs_only_is_labelled_replayed():
    runs = _runs()
    for r in runs:
        r.energy.readings_source = TRACE
        r.contention = None
    (conf,) = configuration_stats(runs)
    assert conf["readings"] == "replayed" and conf["excluded_runs"] == {}
    assert conf["flags"][0].startswith("REPLAYED readings")


def test_the_report_and_the_plots_label_replayed_and_flagged_configurations():
    from llenergymeasure.results.plots import _label, _tick
    from llenergymeasure.results.report_sections import summary_section

    runs = _runs()
    for r in runs:
        r.energy.readings_source = TRACE
    (conf,) = configuration_stats(runs)
    html = summary_section([conf])
    assert "replayed readings" in html and "4 not comparable" in html
    assert _tick(conf, 0) == "#1 [replayed]" and _label(conf, 0).startswith("#1 [replayed] ")
