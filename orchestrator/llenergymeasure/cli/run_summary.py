"""The end-of-study output: every run, every configuration's mean and interval, and every warning
the results hold, counted.

Why counted: a warning repeated by several runs (contention, warm-up, CPU energy unavailable) is
printed once during the study, but each run's result.json keeps its own; the end says how many runs
carry it ("3 of 6 runs") and which, so a warning belonging to another run is never lost to
deduplication. Configurations are numbered as in `llem run --dry-run`, `llem results show` and the
report; numbers are formatted as everywhere else (results/number_format.py). Tables keep to 120
columns where the output is not a terminal (logs, CI).
"""
from __future__ import annotations

import re
import sys
from collections import defaultdict

from .console import make_console
from .safe_text import markup_safe, visible

ENERGY_UNAVAILABLE = "GPU energy unavailable: "  # the harness's warning prefix when no GPU energy was read
LOG_WIDTH = 120
RUNS_NAMED = 6  # runs named per warning; the rest are counted
CONFIG_METRICS = (("output_tokens_per_s", "out tok/s"), ("energy_per_output_token_j", "J/out tok"),
                  ("energy_per_output_token_adjusted_j", "J/out tok (adj)"), ("ttft_s.p50", "TTFT p50 s"))
_FIGURE = re.compile(r"[-+]?\d+(?:[.,]\d+)*(?:e[-+]?\d+)?")


def configuration_numbers(result) -> dict[str, int]:
    """config_hash -> its number (from 1), in the order of `result.configurations` (`llem results show`)."""
    numbers: dict[str, int] = {}
    for conf in result.configurations:
        numbers.setdefault(conf["config_hash"], len(numbers) + 1)
    for r in sorted(result.experiments, key=lambda r: r.experiment_index):  # no statistics written: plan order
        numbers.setdefault(r.config_hash, len(numbers) + 1)
    return numbers


def warning_groups(result, numbers: dict[str, int]) -> list[tuple[str, list[str], int]]:
    """(a warning's text, the runs carrying it as `#conf cCYCLE`, how many texts differed only in figures),
    for every warning in the runs' result.json, most frequent first."""
    runs: dict[str, list[str]] = defaultdict(list)
    texts: dict[str, list[str]] = defaultdict(list)
    for r in sorted(result.experiments, key=lambda r: (numbers.get(r.config_hash, 0), r.cycle)):
        for text in dict.fromkeys(r.measurement_warnings):
            if text.startswith(ENERGY_UNAVAILABLE) and text[len(ENERGY_UNAVAILABLE):] == r.energy.unavailable_reason:
                continue  # said with the energy reasons
            key = _FIGURE.sub("N", text)
            runs[key].append(f"#{numbers.get(r.config_hash, '?')} c{r.cycle}")
            if text not in texts[key]:
                texts[key].append(text)
    order = sorted(runs, key=lambda k: -len(runs[k]))
    return [(texts[k][0], runs[k], len(texts[k])) for k in order]


def print_summary_table(result, said=lambda reason: False) -> None:
    """Per run, then per configuration (mean ± 95% CI half-width), then the energy reasons and warnings.

    `said(reason)` tells whether a reason was printed during the study already: it is then
    pointed to, not repeated.
    """
    from rich.table import Table

    from ..results.number_format import legend, number, stat_text

    console = make_console() if sys.stdout.isatty() else make_console(width=LOG_WIDTH)
    numbers = configuration_numbers(result)
    runs = Table(title=f"{markup_safe(result.study_name)}: {result.summary.completed} completed, {result.summary.failed} failed, "
                       f"{result.summary.skipped} skipped")
    for column in ("#", "cycle", "run", "out tok", "window s", "out tok/s", "TTFT p50 s", "J/out tok",
                   "J/out tok (adj)"):
        runs.add_column(column, justify="left" if column == "run" else "right")
    from ..domain.metrics import window_counts
    from ..results.comparability import run_flags, short_flag

    for r in sorted(result.experiments, key=lambda r: (numbers.get(r.config_hash, 0), r.cycle)):
        m = r.metrics
        window_tokens = window_counts(r)[0]  # what out tok/s and J/out tok divide by: the row agrees with itself
        flags = [short_flag(f) for f in run_flags(r)]  # replayed readings, contention, ...: said on the row
        run_label = r.run_id.split("_", 1)[0] + (f" [{', '.join(flags)}]" if flags else "")
        runs.add_row(str(numbers.get(r.config_hash, "?")), str(r.cycle), markup_safe(run_label),
                     number(window_tokens), number(r.window_s, 3), number(m.output_tokens_per_s),
                     number(m.ttft_s.p50, 3), number(m.energy_per_output_token_j),
                     number(m.energy_per_output_token_adjusted_j))
    console.print(runs)
    if result.configurations:
        confs = Table(title="Per configuration across cycles (mean ± 95% CI half-width, as `llem results show`)")
        for column in ("#", "configuration", "runs", *(label for _, label in CONFIG_METRICS)):
            confs.add_column(column, justify="left" if column == "configuration" else "right")
        from ..results.report_labels import swept_labels

        labels = swept_labels(result.configurations) if len(result.configurations) > 1 else \
            [result.configurations[0]["config_summary"]]  # what differs between them, as in the report
        cells_all = []
        for conf, label in zip(result.configurations, labels):
            cells = [stat_text(conf["metrics"][metric], metric) if metric in conf["metrics"] else "—"
                     for metric, _ in CONFIG_METRICS]
            cells_all += cells
            label += " [replayed]" if conf.get("readings") == "replayed" else ""
            confs.add_row(str(numbers[conf["config_hash"]]), markup_safe(label), str(conf["n_runs"]), *cells)
        console.print(confs)
        if legend(cells_all):
            console.print(legend(cells_all), highlight=False, soft_wrap=True)
    energy_reasons = {r.energy.unavailable_reason for r in result.experiments if r.energy.unavailable_reason}
    for reason in sorted(energy_reasons):
        if said(reason):
            console.print("J/out tok is '—': no GPU energy was measured (the reason is above)", highlight=False)
        else:
            console.print(markup_safe(f"{ENERGY_UNAVAILABLE}{reason}", keep_newlines=True), highlight=False)
    groups = warning_groups(result, numbers)
    if groups:
        total = len(result.experiments)
        console.print(f"Warnings in the runs' result.json ({total} runs):", highlight=False)
        for text, where, variants in groups:
            named = ", ".join(where[:RUNS_NAMED]) + (f" and {len(where) - RUNS_NAMED} more" if len(where) > RUNS_NAMED
                                                      else "")
            shown = text if variants == 1 else f"{text} (the first of {variants}; figures differ per run)"
            console.print(visible(f"  {len(where)} of {total} runs ({named}): {shown}"), highlight=False, markup=False,
                          soft_wrap=True)  # one line per warning: grep-able in a log
    console.print(markup_safe(f"Results: {result.study_dir}"), highlight=False, soft_wrap=True)
