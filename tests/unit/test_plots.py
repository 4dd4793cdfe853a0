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
