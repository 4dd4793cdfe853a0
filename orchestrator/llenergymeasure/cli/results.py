"""`llem results show|compare|export|plot|report`: read a finished (or interrupted) study directory.

Only click is imported at module level; the results package (pydantic models, and lazily
pandas/scipy/matplotlib) is imported inside each command so `llem --help` stays fast.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .safe_text import visible


def escape(text: str) -> str:
    """Rich markup escape: units like `[s]` must print literally, not as a style tag; control
    characters (a model name's escape sequence) are shown as `\\xNN`, never sent to the terminal."""
    from .safe_text import markup_safe

    return markup_safe(text, keep_newlines=True)


SHOW_COLUMNS = ("energy_per_output_token_j", "energy_per_output_token_adjusted_j", "output_tokens_per_s",
                "total_tokens_per_s", "requests_per_s", "ttft_s.p50", "e2e_latency_s.p50")
# Short column heads with their units, as the end of `llem run` writes them (docs/metrics.md defines each)
SHOW_HEADS = {"energy_per_output_token_j": "J/out tok", "energy_per_output_token_adjusted_j": "J/out tok\n(adj)",
              "output_tokens_per_s": "out tok/s", "total_tokens_per_s": "tok/s\n(in+out)", "requests_per_s": "req/s",
              "ttft_s.p50": "TTFT p50\n[s]", "e2e_latency_s.p50": "e2e p50\n[s]"}
CV_OPTION = click.option("--cv-threshold", type=click.FloatRange(min=0.0, min_open=True), default=0.1,
                         show_default=True, help="flag a metric whose coefficient of variation exceeds this")
STUDY_DIR = click.Path(path_type=Path)
MIN_RUNS_FOR_INTERVAL = 3  # results.stats.DEFAULT_MIN_RUNS (not imported here: it pulls scipy)


def _console():
    import shutil
    import sys

    from .console import make_console

    width = shutil.get_terminal_size((120, 24)).columns if sys.stdout.isatty() else 120  # logs: 120 columns
    return make_console(width=width, highlight=False)


def _fmt_value(value: float | None) -> str:
    from ..results.number_format import number

    return number(value)


def _fmt_stats(stats: dict[str, Any], metric: str = "", with_interval: bool = False) -> str:
    """One formatting of a mean and its interval for every command (results/number_format.py)."""
    from ..results.number_format import stat_text

    return stat_text(stats, metric, with_interval=with_interval, sep="\n")


def _legend(console, cells) -> None:
    from ..results.number_format import legend

    text = legend(cells)
    if text:
        console.print(escape(text), soft_wrap=True)


EXCLUDE_FLAGGED_OPTION = click.option(
    "--exclude-flagged", is_flag=True,
    help="leave runs flagged as not comparable (replayed readings, contention, warm-up not converged, a stall in "
         "the window) out of the statistics; they are listed")


def _config_label(conf: dict[str, Any]) -> str:
    """A configuration's name, labelled when its figures come from replayed readings."""
    return conf["config_summary"] + (" [replayed]" if conf.get("readings") == "replayed" else "")


def _load(study_dir: Path, cv_threshold: float, require_results: bool = True, by_gpu: bool = False,
          exclude_flagged: bool = False):
    from ..errors import StudyError
    from ..results.load import load_study
    from ..results.stats import configuration_stats

    data = load_study(study_dir)
    if require_results and not data.results:
        raise StudyError(f"{study_dir} has no completed runs (no runs/*/result.json); "
                         f"manifest status: {data.manifest.status}")
    return data, configuration_stats(data.results, cv_threshold=cv_threshold, by_gpu=by_gpu,
                                     exclude_flagged=exclude_flagged)


def _short_gpu(gpu_set: str) -> str:
    """GPU UUIDs are long: the first 12 characters of each name it well enough in a column head."""
    return "+".join(part[:12] if part.startswith("GPU-") else part for part in gpu_set.split("+"))


def _short_flags(conf: dict[str, Any]) -> str:
    parts = ["REPLAYED readings"] if conf.get("readings") == "replayed" else []
    if conf.get("flagged_runs"):  # runs not comparable with a clean measurement, named
        from ..results.comparability import short_flag

        flags = conf["run_flags"]
        parts.append("not comparable: " + ", ".join(
            f"{run_id} ({', '.join(short_flag(f) for f in flags[run_id])})" for run_id in conf["flagged_runs"]))
    if conf.get("excluded_runs"):
        parts.append(f"left out: {', '.join(conf['excluded_runs'])}")
    parts += [f"n={conf['n_runs']}<{conf['min_runs']}"] if conf.get("few_runs") else []
    if not conf.get("few_runs") and conf.get("few_runs_metrics"):  # some runs did not measure these
        parts.append(f"n<{conf['min_runs']}: {', '.join(conf['few_runs_metrics'][:3])}")
    if conf.get("mixed_method_metrics"):
        parts.append(f"methods not pooled: {', '.join(conf['mixed_method_metrics'][:3])}")
    noisy = conf.get("high_cv_metrics") or []
    if noisy:
        shown = [m for m in SHOW_COLUMNS if m in noisy][:3] or noisy[:3]
        more = f" +{len(noisy) - len(shown)} more" if len(noisy) > len(shown) else ""
        parts.append(f"CV>{conf['cv_threshold']:g}: {', '.join(shown)}{more}")
    return "; ".join(parts)


def _header(console, data) -> None:
    from collections import Counter

    counts = Counter(entry.status for entry in data.manifest.entries)
    console.print(f"[bold]{escape(data.name)}[/bold]  {escape(str(data.study_dir))}  status={data.manifest.status}  "
                  f"runs: {counts['completed']} completed, {counts['failed']} failed, {counts['skipped']} skipped, "
                  f"{counts['interrupted']} interrupted of {len(data.manifest.entries)}; "
                  f"{len(data.results)} results read")
    for warning in data.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}")


def _warn_unreadable(data) -> None:
    """On stderr, so an export written to stdout-driven pipelines still says what it left out."""
    for warning in data.warnings:
        click.echo(f"warning: {visible(warning)}", err=True)


@click.group("results")
def results_group() -> None:
    """Summaries, comparisons, exports and plots of a study directory."""


@results_group.command("show")
@click.argument("study_dirs", nargs=-1, required=True, type=STUDY_DIR)
@click.option("--sort", "sort_metric", default=None, metavar="METRIC",
              help="sort configurations by this metric's mean (e.g. energy_per_output_token_j, ttft_s.p50)")
@click.option("--descending", is_flag=True, help="sort from largest to smallest")
@CV_OPTION
@EXCLUDE_FLAGGED_OPTION
def show_cmd(study_dirs: tuple[Path, ...], sort_metric: str | None, descending: bool, cv_threshold: float,
             exclude_flagged: bool) -> None:
    """Table of the study summary: one row per configuration, mean ± 95% CI half-width across cycles.

    Several STUDY_DIRs (`llem results show results/my-study_*/`) are shown one after another."""
    from ..results.stats import check_metric

    if sort_metric:
        check_metric(sort_metric)
    for study_dir in study_dirs:
        _show_one(study_dir, sort_metric, descending, cv_threshold, exclude_flagged)


def _show_one(study_dir: Path, sort_metric: str | None, descending: bool, cv_threshold: float,
              exclude_flagged: bool) -> None:
    from rich.table import Table

    data, configurations = _load(study_dir, cv_threshold, exclude_flagged=exclude_flagged)
    order = list(range(len(configurations)))
    if sort_metric:
        present = [i for i in order if configurations[i]["metrics"][sort_metric]["mean"] is not None]
        missing = [i for i in order if i not in present]
        present.sort(key=lambda i: configurations[i]["metrics"][sort_metric]["mean"], reverse=descending)
        order = present + missing
    console = _console()
    _header(console, data)
    from rich import box

    from ..results.report_labels import swept_labels

    # Fits 120 columns: configurations named by what was swept (the report's labels; the full summary
    # when there is one), no vertical rules, flags under the table; a cell too wide folds at its spaces.
    labels = swept_labels(configurations) if len(configurations) > 1 else \
        [c["config_summary"] for c in configurations]
    table = Table(title="Per configuration across cycles (mean ± 95% CI half-width, Student's t)",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("#", justify="right")
    table.add_column("configuration", min_width=16, overflow="fold")  # the 16-character hash stays whole
    table.add_column("n", justify="right")
    for metric in SHOW_COLUMNS:
        table.add_column(escape(SHOW_HEADS[metric]), justify="right", overflow="fold")
    every, flags = [], []
    for i in order:
        conf = configurations[i]
        cells = [_fmt_stats(conf["metrics"][m], m) for m in SHOW_COLUMNS]
        every += cells
        label = labels[i] + (" [replayed]" if conf.get("readings") == "replayed" else "")
        table.add_row(*map(escape, [str(i + 1), f"{label}\n{conf['config_hash']}",
                                    str(conf["n_runs"]), *cells]))
        if _short_flags(conf):
            flags.append(f"  #{i + 1} {conf['config_summary']}: {_short_flags(conf)}")
    console.print(table)
    _legend(console, every)
    if flags:
        console.print("flags:\n" + escape("\n".join(flags)), soft_wrap=True)
    for i in order:  # comparability in full: a table cell wraps run ids
        for flag in configurations[i]["flags"]:
            if flag.startswith(("REPLAYED", "not comparable", "left out")):
                console.print(escape(f"#{i + 1}: {flag}"), soft_wrap=True)
    for conf in configurations:
        reason = conf["metrics"]["energy_per_output_token_j"].get("unavailable_reason")
        if reason:
            console.print(escape(f"energy not measured for {conf['config_summary']}: {reason}"))
            break


@results_group.command("compare")
@click.argument("study_dirs", nargs=-1, required=True, type=STUDY_DIR)
@click.option("--metric", "-m", "metrics", multiple=True, metavar="METRIC",
              help="restrict to these metrics (repeatable); default: every measured one")
@click.option("--by-gpu", is_flag=True, help="one column per (configuration, GPU set): the same configuration "
              "compared across the GPUs that ran it")
@CV_OPTION
@EXCLUDE_FLAGGED_OPTION
def compare_cmd(study_dirs: tuple[Path, ...], metrics: tuple[str, ...], by_gpu: bool,
                cv_threshold: float, exclude_flagged: bool) -> None:
    """Configurations of one or more studies side by side: mean ± CI half-width and the 95% interval."""
    from rich.table import Table

    from ..results.stats import STAT_METRICS, check_metric

    for metric in metrics:
        check_metric(metric)
    columns: list[tuple[str, dict[str, Any]]] = []
    console = _console()
    for study_dir in study_dirs:
        data, configurations = _load(study_dir, cv_threshold, by_gpu=by_gpu, exclude_flagged=exclude_flagged)
        _header(console, data)
        for i, conf in enumerate(configurations):
            gpu = f"\non {_short_gpu(conf['gpu_set'])}" if by_gpu else ""
            columns.append((f"{data.name} #{i + 1}\n{_config_label(conf)}{gpu}", conf))
    chosen = list(metrics) or [m for m in STAT_METRICS if any(c["metrics"][m]["mean"] is not None for _, c in columns)]
    table = Table(title=escape("Configurations side by side (mean ± 95% CI half-width; [interval])"),
                  show_lines=True)
    table.add_column(escape("metric [unit]"))
    for label, _ in columns:
        table.add_column(escape(label), justify="right")
    table.add_row("n runs", *[str(c["n_runs"]) for _, c in columns])
    every = []
    for metric in chosen:
        unit, _label = STAT_METRICS[metric]
        cells = [_fmt_stats(c["metrics"][metric], metric, with_interval=True) for _, c in columns]
        every += cells
        table.add_row(*map(escape, [f"{metric}\n[{unit}]", *cells]))
    table.add_row(*map(escape, ["flags", *[_short_flags(c) for _, c in columns]]))
    console.print(table)
    _legend(console, every)


@results_group.command("export")
@click.argument("study_dir", type=STUDY_DIR)
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet", "json"]), required=True)
@click.option("--table", "which", type=click.Choice(["runs", "summary"]), default="runs", show_default=True,
              help="runs: one row per run; summary: one row per configuration with statistics")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="file to write (default: STUDY_DIR/export/<table>.<format>)")
@CV_OPTION
@EXCLUDE_FLAGGED_OPTION
def export_cmd(study_dir: Path, fmt: str, which: str, output: Path | None, cv_threshold: float,
               exclude_flagged: bool) -> None:
    """Write the study's runs (or summary) as CSV, Parquet or JSON. JSON of runs is the full StudyResult."""
    from ..domain.io import write_json_atomic
    from ..results.load import study_result_of
    from ..results.outputs import write_table
    from ..results.tables import run_rows, summary_rows

    data, configurations = _load(study_dir, cv_threshold, require_results=False, exclude_flagged=exclude_flagged)
    _warn_unreadable(data)
    output = output or study_dir / "export" / f"{which}.{fmt}"
    output.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "json" and which == "runs":
        study_result = study_result_of(data)
        study_result.configurations = configurations
        write_json_atomic(output, study_result)
    elif fmt == "json":
        write_json_atomic(output, configurations)
    else:
        rows = run_rows(data.results) if which == "runs" else summary_rows(configurations)
        write_table(rows, output, fmt)
    click.echo(f"wrote {output} ({len(data.results)} runs, {len(configurations)} configurations)")


@results_group.command("plot")
@click.argument("study_dir", type=STUDY_DIR)
@click.option("-o", "--output-dir", type=click.Path(path_type=Path), default=None,
              help="directory for the PNG files (default: STUDY_DIR/plots)")
@CV_OPTION
def plot_cmd(study_dir: Path, output_dir: Path | None, cv_threshold: float) -> None:
    """PNG plots: energy/token vs throughput with CIs and Pareto front, per-configuration bars, power timelines."""
    from ..errors import StudyError
    from ..results.plots import render_study_plots

    data, configurations = _load(study_dir, cv_threshold)
    _warn_unreadable(data)
    report = render_study_plots(data, configurations, output_dir or study_dir / "plots")
    for path in report.written:
        click.echo(f"wrote {path}")
    for message in report.skipped:
        click.echo(f"skipped: {message}")
    if not report.written:
        raise StudyError("no plot could be drawn from this study's data (see the messages above)")


@results_group.command("report")
@click.argument("study_dir", type=STUDY_DIR)
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="HTML file to write, or a directory for report.html (default: STUDY_DIR/report.html)")
@CV_OPTION
def report_cmd(study_dir: Path, output: Path | None, cv_threshold: float) -> None:
    """One self-contained HTML report: design, summary with CIs, figures, timelines, environment, warnings."""
    from ..results.report import write_report

    path = write_report(study_dir, output, cv_threshold=cv_threshold)
    click.echo(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB; opens offline in any browser)")
@results_group.command("rebuild-manifest")
@click.argument("study_dir", type=STUDY_DIR)
def rebuild_manifest_cmd(study_dir: Path) -> None:
    """Rebuild STUDY_DIR/manifest.json from runs/ and study.json (after a corrupt or lost manifest)."""
    from ..study.rebuild import rebuild_manifest

    path, notes = rebuild_manifest(study_dir)
    for note in notes:
        click.echo(f"note: {visible(note)}", err=True)
    click.echo(f"rebuilt {path}; read it with `llem results show {study_dir}`, continue it with "
               f"`llem run --resume {study_dir}`")


from .pareto_cmd import pareto_cmd  # noqa: E402 (its own module: the front and the answer under an SLO)

results_group.add_command(pareto_cmd)
