"""The report's "which configuration is best for what": winner by mean, ties where intervals overlap,
labels by swept values (unit tests on configuration statistics computed from result records)."""
from __future__ import annotations

from llenergymeasure.results.report_best import QUESTIONS, Question, answer, best_rows, best_section
from llenergymeasure.results.report_labels import swept_labels
from llenergymeasure.results.stats import configuration_stats
from tests.unit.results_factory import make_result


def _configurations(windows_by_batch: dict[int, list[float]]):
    results = [make_result(bs, cycle, window, energy_j=50.0 * window)
               for bs, windows in windows_by_batch.items() for cycle, window in enumerate(windows, start=1)]
    return configuration_stats(results)


def test_the_fastest_is_named_and_an_overlapping_interval_is_a_tie():
    confs = _configurations({1: [4.0, 4.1, 3.9], 2: [4.05, 4.2, 3.95], 4: [1.0, 1.02, 0.98]})
    labels = swept_labels(confs)
    assert labels == ["bs=1", "bs=2", "bs=4"]
    fastest = answer(confs, QUESTIONS[0])
    assert labels[fastest["winner"]] == "bs=4" and fastest["ties"] == [] and fastest["judged"]
    slowest = answer(confs, Question("slowest", "output_tokens_per_s", lower_is_better=True))
    assert {labels[slowest["winner"]], *(labels[i] for i in slowest["ties"])} == {"bs=1", "bs=2"}
    rows = best_rows(confs)
    assert rows[0][0] == "fastest (output throughput)" and rows[0][1] == "#3 bs=4"
    assert rows[0][3] == "none: its interval overlaps no other"


def test_without_intervals_a_tie_cannot_be_judged_and_that_is_said():
    confs = _configurations({1: [4.0, 4.1], 4: [1.0, 1.1]})
    assert best_rows(confs)[0][3] == "cannot tell: fewer than 3 runs give no interval"


def test_a_question_nothing_measured_is_left_out_and_the_list_can_be_extended():
    confs = _configurations({1: [4.0, 4.1, 3.9], 4: [1.0, 1.02, 0.98]})
    extra = Question("largest batch (example of another question)", "output_tokens_total", lower_is_better=False) \
        if "output_tokens_total" in confs[0]["metrics"] else Question("lowest TTFT", "ttft_s.p50", True)
    html = best_section(confs, (*QUESTIONS, extra))
    assert "fastest (output throughput)" in html and extra.title in html
