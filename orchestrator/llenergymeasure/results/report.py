"""`llem results report`: one self-contained HTML file describing a study.

The study is read exactly as `llem results show` reads it (`load_study`, `configuration_stats`),
so the report and the terminal agree. The page has no script and fetches nothing: figures are
inline SVG (report_figures), text is escaped (report_html), and a Content-Security-Policy forbids
the rest — it opens offline, from an e-mail attachment or a file share, and prints.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from ..domain import TIMESERIES_FILE
from . import report_figures as figs
from .report_context import collect_warnings, environment_section, methods_section, readings_banners, warnings_section
from .report_best import best_section
from .report_html import esc, figure, page, para, section, skipped
from .report_sections import design_section, gpu_section_tables, gpu_set_letters, summary_section

REPORT_FILE = "report.html"
MAX_TIMELINES = 48  # per report; beyond that the runs' timeseries.parquet files are listed, not drawn
TOC = (("best", "Best for what"), ("design", "Design"), ("summary", "Summary"), ("pareto", "Pareto"),
       ("figures", "Figures"), ("timelines", "Timelines"),
       ("gpus", "Per-GPU"), ("environment", "Environment"), ("methods", "How measured"), ("warnings", "Warnings"))


def write_report(study_dir: Path, output: Path | None = None, cv_threshold: float = 0.1) -> Path:
    """Render the report of `study_dir` into `output` (default STUDY_DIR/report.html; a directory
    gets report.html inside it), atomically. ConfigError (exit 2) when it cannot be written."""
    from ..domain.io import write_text_atomic
    from ..errors import ConfigError

    output = Path(output).expanduser() if output else Path(study_dir) / REPORT_FILE
    if output.is_dir():
        output = output / REPORT_FILE
    text = render_report(study_dir, cv_threshold)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(output, text)
    except OSError as exc:
        raise ConfigError(f"cannot write the report to {output} ({exc.strerror or exc}); "
                          "pass -o with a writable file path") from None
    return output


def render_report(study_dir: Path, cv_threshold: float = 0.1) -> str:
    """The report's HTML text (ConfigError, exit 2, when `study_dir` is not a study directory)."""
    from ..version import __version__
    from .load import load_study, study_result_of
    from .stats import configuration_stats

    data = load_study(study_dir)
    configurations = configuration_stats(data.results, cv_threshold=cv_threshold)
    by_gpu = configuration_stats(data.results, cv_threshold=cv_threshold, by_gpu=True)
    numbers = {c["config_hash"]: i for i, c in enumerate(configurations, start=1)}
    for group in by_gpu:
        group["number"] = numbers[group["config_hash"]]
    study_result = study_result_of(data)
    warnings = collect_warnings(data, study_result, configurations)
    no_runs = para("No run of this study has completed: nothing measured to show.", "muted")
    # Sections that can only be empty are left out (and out of the contents): no GPU, no timeline.
    from .tables import gpu_set

    any_gpu = any(not gpu_set(r).startswith("cpu@") for r in data.results)  # measured, or ids llem assigned
    any_timeline = any((data.run_dir(r.run_id) / TIMESERIES_FILE).is_file() for r in data.results)
    left_out = {name for name, present in (("gpus", any_gpu), ("timelines", any_timeline)) if not present}
    body = [
        _header(data, configurations, warnings, __version__, left_out),
        section("best", "Which configuration is best for what",
                best_section(configurations) if configurations else no_runs),
        section("design", "Design", design_section(data, configurations, _snapshot(data.study_dir))),
        section("summary", "Summary per configuration",
                summary_section(configurations) if configurations else no_runs),
        section("pareto", "Pareto front and the least energy under the latency target",
                (_pareto(data.study_dir, configurations) if configurations else no_runs)
                + _planning(data.manifest)),
        section("figures", "Energy, throughput and latency", _figures(configurations) if configurations else no_runs),
        "" if "timelines" in left_out else
        section("timelines", "Power and temperature during each run", _timelines(data, configurations)),
        "" if "gpus" in left_out else section("gpus", "Per-GPU comparison", _gpus(data, by_gpu) if by_gpu else no_runs),
        section("environment", "Environment", environment_section(data.results) if data.results else no_runs),
        section("methods", "How each figure was measured",
                methods_section(data, configurations, study_result) if configurations else no_runs),
        section("warnings", f"Warnings ({len(warnings)})", warnings_section(warnings)),
        f"<footer>Generated by llenergymeasure {esc(__version__)} on "
        f"{esc(dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'))} from "
        f"<code>{esc(data.study_dir)}</code>. One self-contained file: no script, no network.</footer>",
    ]
    return page(f"llem report: {data.name}", "\n".join(body), generator=f"llenergymeasure {__version__}")


def _header(data, configurations, warnings, version: str, left_out: set[str] = frozenset()) -> str:
    manifest = data.manifest
    counts = manifest.counters
    energy = [r.energy.gpu_energy_raw_j for r in data.results if r.energy.gpu_energy_raw_j is not None]
    kpis = [(f"{len(data.results)} / {len(manifest.entries)}", "runs with results / planned"),
            (str(len(configurations)), "configurations"), (str(manifest.n_cycles), f"cycles ({manifest.cycle_order})"),
            (f"{sum(energy):.4g} J" if energy else "not measured", "GPU energy, all windows (raw)"),
            (str(len(warnings)), "warnings")]
    nav = "".join(f'<a href="#{anchor}">{esc(title)}</a>' for anchor, title in TOC if anchor not in left_out)
    return "\n".join([
        '<header class="top">',
        f"<h1>{esc(data.name)}</h1>",
        f'<div class="muted small">Study report · status <b>{esc(manifest.status)}</b> · '
        f"{counts.completed} completed, {counts.failed} failed, {counts.skipped} skipped, "
        f"{counts.interrupted} interrupted · llenergymeasure {esc(version)}</div>",
        f'<nav class="toc">{nav}</nav>', "</header>",
        '<div class="kpis">' + "".join(f"<div class='kpi'><b>{esc(v)}</b><span>{esc(k)}</span></div>"
                                       for v, k in kpis) + "</div>",
        *readings_banners(data)])


def _snapshot(study_dir: Path) -> dict[str, Any] | None:
    """The study as validated when it started (study.json), or None where absent or unreadable."""
    from ..errors import ConfigError
    from .load import read_study_snapshot

    try:
        study, _ = read_study_snapshot(study_dir)
    except ConfigError:
        return None
    return study.model_dump(mode="json")


def _pareto(study_dir: Path, configurations: list[dict[str, Any]]) -> str:
    """The front and the answer under the study's `slo:` (results/pareto_report.py)."""
    from .carbon import carbon_section
    from .pareto import pareto_front
    from .pareto_report import pareto_section

    snapshot = _snapshot(study_dir) or {}
    carbon = carbon_section(configurations, snapshot.get("carbon"))
    return pareto_section(pareto_front(configurations, slo=snapshot.get("slo"),
                                       carbon=carbon["configurations"]), carbon)


def _planning(manifest) -> str:
    from .pareto_report import planning_notes

    return planning_notes(manifest)


def _draw(result, key: str, caption: str, wide: bool = False) -> str:
    """A figure builder's result as a figure, or its reason for not drawing as a note."""
    if isinstance(result, str):
        return skipped(result)
    return figure(figs.to_svg(result, key), caption, wide=wide)


def _figures(configurations: list[dict[str, Any]]) -> str:
    labels = "Points are configurations, labelled by what was swept; bars are 95% CIs."
    parts = [_draw(figs.energy_vs_throughput(configurations, "energy_per_output_token_j"), "fig-etp",
                   f"Raw GPU energy per output token against output throughput. {labels} Dashed, where "
                   "configurations trade off: the Pareto front (none other is both faster and cheaper)."),
             _draw(figs.energy_vs_latency(configurations, "energy_per_output_token_j"), "fig-elat",
                   f"Raw GPU energy per output token against median TTFT and end-to-end latency. {labels}")]
    if any(c["metrics"]["energy_per_output_token_adjusted_j"]["mean"] is not None for c in configurations):
        parts.append(_draw(figs.energy_vs_throughput(configurations, "energy_per_output_token_adjusted_j"),
                           "fig-eadj", f"As the first, with the idle baseline subtracted (adjusted). {labels}"))
    parts.append(_draw(figs.configuration_bars(configurations), "fig-bars",
                       "Headline metrics per configuration, mean and 95% CI.", wide=True))
    return '<div class="figs">' + "\n".join(parts) + "</div>"


def _timelines(data, configurations: list[dict[str, Any]]) -> str:
    from .report_labels import swept_labels

    drawn, listed, missing = [], [], 0
    labels = swept_labels(configurations)
    for number, conf in enumerate(configurations, start=1):
        for run_id in conf["run_ids"]:
            path = data.run_dir(run_id) / TIMESERIES_FILE
            if not path.is_file():
                missing += 1
            elif len(drawn) >= MAX_TIMELINES:
                listed.append(run_id)
            else:
                cycle = next((r.cycle for r in data.results if r.run_id == run_id), "?")
                key = f"tl{len(drawn) + 1}"
                drawn.append(_draw(figs.run_timeline(path, f"{labels[number - 1]}, cycle {cycle}"), key,
                                   f"#{number} {conf['config_summary']} — run {run_id}"))
    parts = []
    if drawn:
        parts.append('<div class="figs small">' + "\n".join(drawn) + "</div>")
    if listed:
        parts.append(para(f"{len(listed)} more run(s) have a {TIMESERIES_FILE} not drawn here (the report draws "
                          f"at most {MAX_TIMELINES}): {', '.join(listed)}", "muted small"))
    if missing:
        parts.append(para(f"{missing} run(s) recorded no timeline: measurement.save_timeseries was off, or no "
                          "power sampler ran (no GPU readable).", "muted"))
    return "\n".join(parts) or para("No run to show.", "muted")


def _gpus(data, by_gpu: list[dict[str, Any]]) -> str:
    letters = gpu_set_letters(by_gpu)
    parts = [gpu_section_tables(data.results, by_gpu, letters)]
    if len(letters) > 1:
        metric = next((m for m in ("energy_per_output_token_j", "output_tokens_per_s")
                       if any(g["metrics"][m]["mean"] is not None for g in by_gpu)), None)
        if metric:
            parts.append('<div class="figs">' + _draw(figs.gpu_comparison(by_gpu, letters, metric), "fig-gpu",
                                                      "Each configuration on each GPU set (letters as in the table).")
                         + "</div>")
    return "\n".join(parts)
