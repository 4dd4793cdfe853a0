"""Plots rendered from result records: real PNG files of the expected pixel size; skips explained."""
from __future__ import annotations

import struct

import pandas as pd
from results_factory import make_result, write_study_dir

from llenergymeasure.results.load import load_study
from llenergymeasure.results.plots import PIXEL_SIZE, pareto_front, plot_power_timeline, render_study_plots
from llenergymeasure.results.stats import configuration_stats


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_pareto_front():
    # (throughput, J/token): b dominates c; a and b trade off; d is dominated by a
    points = [(10.0, 1.0), (20.0, 2.0), (15.0, 2.5), (9.0, 1.5)]
    assert pareto_front(points) == [0, 1]


def test_render_study_plots(tmp_path):
    results = [make_result(1, c, 2.0 + 0.1 * c, 100.0 + c) for c in (1, 2, 3)]
    results += [make_result(4, c, 1.0 + 0.05 * c, 60.0 + 2 * c) for c in (1, 2, 3)]
    study_dir = write_study_dir(tmp_path, results)
    run_dir = study_dir / "runs" / results[0].run_id
    pd.DataFrame({"t_s": [0.0, 0.1, 0.2, 0.3], "power_instant_w_gpu0": [60.0, 180.0, 200.0, 190.0],
                  "power_avg_w_gpu0": [70.0, 90.0, 120.0, 150.0], "temperature_c_gpu0": [40, 41, 42, 43]}
                 ).to_parquet(run_dir / "timeseries.parquet")
    # the harness's spelling (gpu<i>_power_instant_w) is drawn too
    pd.DataFrame({"t_s": [0.0, 0.1], "gpu0_power_instant_w": [60.0, 61.0], "gpu1_power_avg_w": [50.0, 52.0]}
                 ).to_parquet(study_dir / "runs" / results[3].run_id / "timeseries.parquet")
    data = load_study(study_dir)
    report = render_study_plots(data, configuration_stats(data.results), tmp_path / "plots")
    names = sorted(p.name for p in report.written)
    assert names[:3] == ["configuration_bars.png", "energy_adjusted_vs_throughput.png", "energy_vs_throughput.png"]
    assert [n[:18] for n in names[3:]] == ["power_timeline_01_", "power_timeline_02_"]
    for path in report.written:
        assert png_size(path) == PIXEL_SIZE
        assert path.stat().st_size > 5000  # drawn content, not an empty canvas
    assert report.skipped == []
    # a timeseries without power columns is skipped with a message, not drawn
    bare = study_dir / "runs" / results[4].run_id / "timeseries.parquet"
    pd.DataFrame({"t_s": [0.0, 0.1]}).to_parquet(bare)
    message = plot_power_timeline(bare, tmp_path / "bare.png", "bare")
    assert "no t_s + power columns (found: t_s)" in message and not (tmp_path / "bare.png").exists()


def test_unmeasured_energy_skips_scatter(tmp_path):
    results = [make_result(1, c, 2.0, None) for c in (1, 2, 3)]
    data = load_study(write_study_dir(tmp_path, results))
    report = render_study_plots(data, configuration_stats(data.results), tmp_path / "plots")
    assert [p.name for p in report.written] == ["configuration_bars.png"]
    assert any("energy_per_output_token_j unavailable (no NVIDIA GPU visible" in s for s in report.skipped)
    assert any("no timeseries.parquet" in s for s in report.skipped)


def test_timeline_skip_names_the_real_reason(tmp_path):
    """save_timeseries set but no GPU sampled power: the message says so instead of 'set save_timeseries'."""
    results = [make_result(1, c, 2.0, None) for c in (1, 2, 3)]
    for r in results[:3]:
        r.config.measurement.save_timeseries = True
    data = load_study(write_study_dir(tmp_path, results))
    report = render_study_plots(data, configuration_stats(data.results), tmp_path / "plots")
    [skip] = [s for s in report.skipped if "power timeline" in s]
    assert "no power sampler ran: no NVIDIA GPU visible" in skip and "set measurement.save_timeseries" not in skip
    unset = [make_result(2, c, 2.0, None) for c in (1, 2, 3)]
    data = load_study(write_study_dir(tmp_path / "unset", unset))
    report = render_study_plots(data, configuration_stats(data.results), tmp_path / "plots2")
    assert any("(set measurement.save_timeseries: true)" in s for s in report.skipped)


def test_error_bars_never_go_below_zero_and_need_three_runs():
    from llenergymeasure.results.plots import _asymmetric_err, _half_width

    below, above = _asymmetric_err([1.0, 5.0], [3.0, 2.0])
    assert below == [1.0, 2.0] and above == [3.0, 2.0]  # a CI of 1 ± 3 is drawn from 0 to 4
    assert _half_width({"n": 2, "ci95_half_width": 9.0}) == 0.0
    assert _half_width({"n": 3, "ci95_half_width": 9.0}) == 9.0


def test_show_and_compare_print_no_interval_below_three_runs():
    from llenergymeasure.cli.results import MIN_RUNS_FOR_INTERVAL, _fmt_stats
    from llenergymeasure.results.stats import DEFAULT_MIN_RUNS, describe

    assert MIN_RUNS_FOR_INTERVAL == DEFAULT_MIN_RUNS
    two = describe([10.0, 30.0])  # a t-interval of two runs spans negative throughput
    assert two["ci95_low"] < 0
    assert _fmt_stats(two, with_interval=True) == "20.00\n(n = 2 < 3: no interval)"
    assert "±" in _fmt_stats(describe([10.0, 11.0, 12.0]), with_interval=True)
