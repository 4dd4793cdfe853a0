"""One formatting of a mean, its half-width and its interval, for every command and the report."""
from __future__ import annotations

from llenergymeasure.results.number_format import interval, mean_pm, number, stat_text


def _stats(mean, half, n=3):
    return {"mean": mean, "n": n, "ci95_half_width": half, "ci95_low": mean - half, "ci95_high": mean + half}


def test_mean_and_half_width_share_the_half_widths_precision():
    assert mean_pm(179.4, 320.0) == "180 ± 320"  # was `179.4 ± 3.2e+02`
    assert mean_pm(179.4, 3.2) == "179.4 ± 3.2"
    assert mean_pm(0.012345, 0.0011) == "0.0123 ± 0.0011"
    assert mean_pm(25.6, 0.04) == "25.600 ± 0.040"
    assert mean_pm(3.0e-6, 1.1e-7) == "(3.00 ± 0.11)e-6"
    assert mean_pm(5.0, None) == "5.000"


def test_a_non_negative_interval_below_zero_is_cut_and_marked_the_same_everywhere():
    stats = _stats(25.6, 28.0)
    assert interval(stats, "energy_per_output_token_j") == "[0†, 54]"
    assert interval(stats, "energy_per_output_token_adjusted_j") == "[-2, 54]"  # may dip below zero; the half-width's precision
    assert stat_text(stats, "energy_per_output_token_j", with_interval=True) == "26 ± 28 [0†, 54] wide"


def test_without_three_runs_there_is_no_interval_and_it_is_said():
    assert stat_text(_stats(1.5, 0.1, n=2), "output_tokens_per_s") == "1.500 (n = 2 < 3: no interval)"
    assert stat_text({"mean": None}, "output_tokens_per_s") == "—"
    assert stat_text(_stats(100.0, 5.0), "output_tokens_per_s") == "100.0 ± 5.0"


def test_plain_numbers_have_no_exponent_in_ordinary_ranges():
    assert number(1234.5678) == "1235" and number(0.00123456) == "0.001235" and number(12) == "12"
    assert number(None) == "—" and number(123456) == "123,456"
