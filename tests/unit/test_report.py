"""The HTML study report from result records: intervals, error bars, escaping, figures, edge cases.

The browser-level checks (console, rendering, screenshot) are in tests/integration/test_report_browser.py.
"""
from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from results_factory import make_result, write_study_dir

from llenergymeasure.domain import StudyManifest
from llenergymeasure.domain.io import write_json_atomic
from llenergymeasure.results import report_figures as figs
from llenergymeasure.results.report import render_report, write_report
from llenergymeasure.results.stats import configuration_stats
from tests.helpers import run_llem

HOSTILE = '"><script>console.error("INJECTED")</script><img src=x onerror="console.error(1)">'


class _Page(HTMLParser):
    """Every start tag with its attributes, and the text a reader sees."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    @property
    def joined(self) -> str:
        return " ".join(" ".join(self.text).split())


def _study(tmp_path: Path, results=None) -> Path:
    if results is None:
        results = [make_result(1, c, 2.0 + 0.1 * c, 100.0 + c) for c in (1, 2, 3)]
        results += [make_result(4, c, 1.0 + 0.5 * c, 60.0 + 20 * c) for c in (1, 2)]
    return write_study_dir(tmp_path, results)


def _conf(metric_stats: dict[str, dict], n_runs: int) -> dict:
    """A configuration dict as configuration_stats makes it, with the given metric statistics."""
    conf = configuration_stats([make_result(1, 1, 1.0, 10.0)])[0]
    conf["n_runs"] = n_runs
    for metric, stats in metric_stats.items():
        conf["metrics"][metric].update(stats)
    return conf


def _stats(mean: float, half: float, n: int = 3) -> dict:
    return {"n": n, "mean": mean, "ci95_half_width": half, "ci95_low": mean - half, "ci95_high": mean + half}


def test_interval_none_below_three_runs_and_cut_at_zero_for_non_negative():
    assert figs.interval(_stats(5.0, 1.0, n=2), "output_tokens_per_s") is None
    assert figs.interval(_stats(5.0, 1.0), "output_tokens_per_s") == (1.0, 1.0)
    assert figs.interval(_stats(2.0, 5.0), "energy_per_output_token_j") == (2.0, 5.0)  # cut at 0
    # adjusted energy may be negative (idle subtracted): its interval is drawn as computed
    assert figs.interval(_stats(2.0, 5.0), "energy_per_output_token_adjusted_j") == (5.0, 5.0)


def _lowest_bar_end(fig, axis: int = 1) -> float:
    """The lowest end of every error bar in the figure (y by default, x with axis=0)."""
    from matplotlib.collections import LineCollection

    ends = [seg[:, axis].min() for ax in fig.axes for coll in ax.collections if isinstance(coll, LineCollection)
            for seg in coll.get_segments() if len(seg)]
    assert ends, "no error bar drawn"
    return min(ends)


def test_error_bars_never_drawn_below_zero_for_non_negative_quantities():
    wide = {"energy_per_output_token_j": _stats(2.0, 5.0), "output_tokens_per_s": _stats(3.0, 10.0),
            "energy_per_output_token_adjusted_j": _stats(1.0, 4.0), "ttft_s.p50": _stats(0.1, 0.5),
            "e2e_latency_s.p50": _stats(0.5, 2.0)}
    confs = [_conf(wide, 3), _conf({k: _stats(4.0, 0.1) for k in wide}, 3)]
    fig = figs.energy_vs_throughput(confs, "energy_per_output_token_j")
    assert _lowest_bar_end(fig, 1) == 0.0 and _lowest_bar_end(fig, 0) == 0.0
    assert _lowest_bar_end(figs.energy_vs_latency(confs, "energy_per_output_token_j"), 0) == 0.0
    panels = {ax.get_title().split("\n")[0]: [seg[:, 1].min() for c in ax.collections for seg in c.get_segments()]
              for ax in figs.configuration_bars(confs).axes if ax.get_visible()}
    assert panels["energy/token (adj.)"] == [pytest.approx(-3.0), pytest.approx(3.9)]  # adjusted: not cut
    cut = [min(ends) for title, ends in panels.items() if ends and "adj." not in title]
    assert cut == [0.0] * 4  # energy/token, tok/s, TTFT, e2e: their wide intervals stop at 0
    # the check can fail: adjusted energy's interval is not cut
    adjusted = figs.energy_vs_throughput(confs, "energy_per_output_token_adjusted_j")
    assert _lowest_bar_end(adjusted, 1) == pytest.approx(-3.0)


def test_no_error_bar_for_fewer_than_three_runs():
    confs = [_conf({"energy_per_output_token_j": _stats(2.0, 0.5, n=2), "output_tokens_per_s": _stats(3.0, 1.0, n=2)}, 2)]
    fig = figs.energy_vs_throughput(confs, "energy_per_output_token_j")
    from matplotlib.collections import LineCollection

    assert not [c for ax in fig.axes for c in ax.collections if isinstance(c, LineCollection)]
    assert "n < 3: no interval" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def test_report_states_intervals_and_their_absence(tmp_path):
    page = _Page(render_report(_study(tmp_path)))
    text = page.joined
    assert "n = 2 < 3: no interval" in text  # configuration #2 ran 2 cycles
    assert "95% CI [" in text  # configuration #1 ran 3
    assert "configuration #2: 2 run(s), fewer than 3: no confidence interval" in text
    svgs = [t for t, _ in page.tags if t == "svg"]
    assert len(svgs) == 5  # the Pareto front; energy vs throughput, raw and adjusted; vs latency; bars
    assert not [t for t, _ in page.tags if t in ("script", "img", "link", "iframe")]
    csp = [a["content"] for t, a in page.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in csp[0]


def test_svg_ids_are_unique_in_the_page(tmp_path):
    ids = [a["id"] for _, a in _Page(render_report(_study(tmp_path))).tags if "id" in a]
    assert len(ids) == len(set(ids)) and len(ids) > 20


def test_hostile_study_text_is_shown_as_text_never_markup(tmp_path):
    results = [make_result(1, c, 2.0 + 0.1 * c, 100.0 + c) for c in (1, 2, 3)]
    for r in results:
        r.config.model = f"/models/{HOSTILE}"
        r.measurement_warnings.append(f"warning {HOSTILE}")
        r.environment.hostname = HOSTILE
    study = write_study_dir(tmp_path, results)
    manifest = StudyManifest.model_validate_json((study / "manifest.json").read_text())
    manifest.study_name = HOSTILE
    write_json_atomic(study / "manifest.json", manifest)
    (study / "study.json").write_text(json.dumps({"study": {"name": "ok", "base": {"model": HOSTILE},
                                                            "sweep": {"batch_size": [1, HOSTILE]}}}))
    html = render_report(study)
    page = _Page(html)
    assert not [t for t, _ in page.tags if t in ("script", "img", "iframe", "object", "embed")]
    assert not [(t, k) for t, attrs in page.tags for k in attrs if k.lower().startswith("on")]
    assert "<script>" not in html and "<img" not in html
    shown = " ".join(page.text)
    assert shown.count(HOSTILE) >= 4  # title, heading, model path, warning, host: displayed literally
    assert f"warning {HOSTILE}" in shown


def test_timeline_reads_both_spellings_thins_long_series_and_keeps_spikes(tmp_path):
    n = 20_000
    power = np.full(n, 100.0)
    power[12_345] = 400.0  # one spike must survive the thinning
    path = tmp_path / "timeseries.parquet"
    pd.DataFrame({"t_s": np.arange(n) * 0.1, "forced": False, "gpu0_power_instant_w": power,
                  "gpu0_temperature_c": np.linspace(40, 70, n)}).to_parquet(path)
    fig = figs.run_timeline(path, "#1 cycle 1")
    power_line = fig.axes[0].get_lines()[0]
    assert len(power_line.get_xdata()) <= figs.MAX_POINTS_PER_LINE and max(power_line.get_ydata()) == 400.0
    assert fig.axes[1].get_ylabel() == "temperature [°C]" and fig.axes[0].get_ylim()[0] == 0
    old = tmp_path / "old.parquet"
    pd.DataFrame({"t_s": [0.0, 0.1], "power_avg_w_gpu0": [60.0, 61.0]}).to_parquet(old)
    assert "1 s average" in figs.run_timeline(old, "t").axes[0].get_lines()[0].get_label()
    empty = tmp_path / "empty.parquet"
    pd.DataFrame({"t_s": [0.0], "other": [1]}).to_parquet(empty)
    assert "no t_s with power or temperature" in figs.run_timeline(empty, "t")


def test_report_draws_timelines_and_compares_gpu_sets(tmp_path):
    results = []
    for cycle in (1, 2, 3):
        for gpu, energy in (("0", 100.0), ("1", 80.0)):
            r = make_result(1, cycle, 2.0 + 0.1 * cycle, energy + cycle, experiment_index=int(gpu))
            r.run_id = f"{r.run_id}_g{gpu}"
            r.assigned_gpu_ids = [gpu]
            results.append(r)
    study = write_study_dir(tmp_path, results)
    pd.DataFrame({"t_s": [0.0, 0.1, 0.2], "gpu0_power_instant_w": [60.0, 200.0, 190.0],
                  "gpu0_temperature_c": [40.0, 42.0, 43.0]}).to_parquet(study / "runs" / results[0].run_id /
                                                                           "timeseries.parquet")
    text = _Page(render_report(study)).joined
    assert "assigned:0" in text and "assigned:1" in text and "GPU set B" in text
    assert "5 run(s) recorded no timeline" in text
    assert f"run {results[0].run_id}" in text


def test_report_of_a_study_without_results(tmp_path):
    study = _study(tmp_path, [make_result(1, 1, 1.0, 10.0)])
    (study / "runs" / "001_c1_tiny_bs1" / "result.json").unlink()
    manifest = StudyManifest.model_validate_json((study / "manifest.json").read_text())
    manifest.entries[0].status, manifest.entries[0].error_type = "failed", "OutOfMemoryError"
    manifest.status = "failed"
    write_json_atomic(study / "manifest.json", manifest)
    out = write_report(study)
    text = _Page(out.read_text()).joined
    assert out == study / "report.html"
    assert "No run of this study has completed" in text and "OutOfMemoryError" in text


def test_report_cli(tmp_path):
    study = _study(tmp_path)
    proc = run_llem("results", "report", str(study), "-o", str(tmp_path / "out" / "r.html"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "r.html").stat().st_size > 20_000 and "wrote" in proc.stdout
    bad = run_llem("results", "report", str(tmp_path / "nope"))
    assert bad.returncode == 2 and "is not a study directory" in bad.stderr and "Traceback" not in bad.stderr
    (tmp_path / "a-file").write_text("")
    unwritable = run_llem("results", "report", str(study), "-o", str(tmp_path / "a-file" / "r.html"))
    assert unwritable.returncode == 2 and "cannot write the report" in unwritable.stderr
    assert "Traceback" not in unwritable.stderr


def test_report_into_a_directory(tmp_path):
    study = _study(tmp_path)
    (tmp_path / "reports").mkdir()
    assert write_report(study, tmp_path / "reports") == tmp_path / "reports" / "report.html"
