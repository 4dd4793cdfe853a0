"""Report sections about trust: where the numbers came from (environment), how each figure was
measured (methods), and every warning the study raised — each said once, with the runs it concerns.
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Any

from .report_html import banner, bullet_list, esc, para, table
from .tables import run_row

_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def readings_banners(data) -> list[str]:
    """Loud notices a reader must not miss: replayed (not measured) readings, no energy at all, an
    unfinished study, failed runs."""
    out = []
    sources = sorted({r.energy.readings_source for r in data.results if r.energy.readings_source})
    replayed = [s for s in sources if not s.startswith("NVML")]
    if replayed:
        out.append(banner("GPU readings of this study were REPLAYED from a recorded trace "
                          f"({'; '.join(replayed)}): the energy, power and temperature figures are not a "
                          "measurement of the machine that ran it.", bad=True))
    if data.results and all(r.energy.gpu_energy_raw_j is None for r in data.results):
        reasons = sorted({r.energy.unavailable_reason or "no reason recorded" for r in data.results})
        out.append(banner(f"No GPU energy was measured in this study: {'; '.join(reasons)}. "
                          "Throughput and latency are shown; energy figures are absent, not zero."))
    if data.manifest.status != "completed":
        out.append(banner(f"The study's status is '{data.manifest.status}': these are the runs finished so far.",
                          bad=data.manifest.status in ("failed", "stopped")))
    failed = [e for e in data.manifest.entries if e.status == "failed"]
    if failed:
        out.append(banner(f"{len(failed)} run(s) failed; see Warnings for each error.", bad=True))
    return out


def environment_section(results) -> str:
    """Each distinct software/host environment with the number of runs in it; every GPU seen."""
    envs: Counter = Counter()
    for r in results:
        e = r.environment
        envs[(e.hostname, e.device, e.device_name, r.config.engine, e.engine_version, e.torch_version,
              e.transformers_version, e.cuda_version, e.python_version, e.platform, e.cpu_model,
              e.cpu_count, e.in_container, e.llenergymeasure_version)] += 1
    rows = []
    for key, count in envs.items():
        (host, device, device_name, engine, engine_v, torch_v, tf_v, cuda_v, py_v, platform, cpu,
         cpus, container, llem_v) = key
        rows.append((esc(count), esc(host or "?") + (" <span class='muted'>(container)</span>" if container else ""),
                     esc(" · ".join(str(x) for x in (device, device_name) if x) or "?"),
                     esc(f"{engine} {engine_v or '?'}"),
                     esc(", ".join(f"{n} {v}" for n, v in (("torch", torch_v), ("transformers", tf_v),
                                                            ("CUDA", cuda_v)) if v) or "—"),
                     esc(f"{cpu or '?'} ({cpus or '?'} CPUs)"), esc(f"{py_v or '?'} on {platform or '?'}"),
                     esc(llem_v or "?")))
    parts = [table(("runs", "host", "device", "engine", "libraries", "CPU", "Python / platform", "llem"), rows,
                   numeric=(0,))]
    gpus: dict[str, Any] = {}
    for r in results:
        for g in r.environment.gpus:
            gpus.setdefault(g.uuid or f"{r.environment.hostname}:{g.index}", g)
    if gpus:
        parts.append("<h3>GPUs</h3>" + table(
            ("index", "name", "UUID", "driver", "CUDA (driver)", "power limit [W]", "persistence", "MIG", "ECC",
             "memory [MiB]"),
            [(esc(g.index), esc(g.name), f"<code>{esc(g.uuid)}</code>", esc(g.driver_version),
              esc(g.cuda_driver_version), esc(_fmt(g.power_limit_w)), esc(_yes(g.persistence_mode)),
              esc(_yes(g.mig_mode)), esc(_yes(g.ecc_enabled)), esc(_fmt(g.memory_total_mb))) for g in gpus.values()],
            numeric=(5, 9)))
    else:
        parts.append(para("No GPU was visible to the harness in any run.", "muted"))
    return "\n".join(parts)


def _fmt(value) -> str:
    return "—" if value is None else f"{value:g}"


def _yes(flag) -> str:
    return "—" if flag is None else ("on" if flag else "off")


def collect_warnings(data, study_result, configurations) -> list[str]:
    """Every warning, once: loader notes, the study's own warnings, failed/interrupted runs with their
    error, each measurement warning with the runs that raised it (#configuration c<cycle>; warnings that
    differ only in their figures are one item), statistical flags."""
    out = list(data.warnings)
    if data.manifest.stop_reason:
        out.append(f"study stopped early: {data.manifest.stop_reason}")
    run_ids = {r.run_id for r in data.results}
    out += [w for w in study_result.summary.warnings if w.split(":", 1)[0] not in run_ids]
    failures: dict[tuple[str, str], list[str]] = {}  # the same error of many runs is said once, with its runs
    for entry in data.manifest.entries:
        if entry.status in ("failed", "interrupted"):
            why = ": ".join(x for x in (entry.error_type, entry.error_message) if x) or "no error recorded"
            failures.setdefault((entry.status, why), []).append(entry.run_id or entry.config_summary)
    for (status, why), runs in failures.items():
        if len(runs) == 1:
            out.append(f"run {runs[0]} {status}: {why}")
        else:
            shown = ", ".join(runs[:12]) + (f" and {len(runs) - 12} more" if len(runs) > 12 else "")
            out.append(f"{len(runs)} runs {status}: {why} — {shown}")
    labels = {run_id: f"#{number} c{r.cycle}" for number, conf in enumerate(configurations, start=1)
              for run_id in conf["run_ids"] for r in data.results if r.run_id == run_id}
    groups: dict[str, dict[str, list[str]]] = {}  # text with its figures blanked -> text -> runs
    for r in data.results:
        texts = list(r.measurement_warnings)
        if r.environment.foreign_processes:
            texts.append("other processes were using the GPU during the run")
        if r.throttle is not None and r.throttle.occurred:
            texts.append(f"the GPU throttled during the window ({', '.join(sorted(r.throttle.reasons_s)) or '?'})")
        for text in texts:
            groups.setdefault(_NUMBER.sub("#", text), {}).setdefault(text, []).append(labels.get(r.run_id, r.run_id))
    for variants in groups.values():
        first, runs = next(iter(variants)), [run for found in variants.values() for run in found]
        similar = f" (and {len(variants) - 1} similar with other figures)" if len(variants) > 1 else ""
        shown = ", ".join(runs[:12]) + (f" and {len(runs) - 12} more" if len(runs) > 12 else "")
        out.append(f"{first}{similar} — {len(runs)} run(s): {shown}")
    for number, conf in enumerate(configurations, start=1):
        if conf.get("few_runs"):
            out.append(f"configuration #{number}: {conf['n_runs']} run(s), fewer than {conf['min_runs']}: "
                       "no confidence interval")
        if conf.get("high_cv_metrics"):
            out.append(f"configuration #{number}: coefficient of variation above {conf['cv_threshold']:g} for "
                       f"{', '.join(conf['high_cv_metrics'])}")
        for flag in conf.get("flags", []):  # comparability: replayed, contended, unconverged, stalled runs, named
            if flag.startswith(("REPLAYED", "not comparable", "left out")):
                out.append(f"configuration #{number}: {flag}")
    return list(dict.fromkeys(out))


def warnings_section(warnings: list[str]) -> str:
    if not warnings:
        return para("No warning was raised.")
    return bullet_list(warnings, "warnings")


def methods_section(data, configurations, study_result) -> str:
    """Per configuration: energy method, readings source, idle baseline subtracted, latency reference."""
    by_run = {r.run_id: r for r in data.results}
    rows = []
    for number, conf in enumerate(configurations, start=1):
        runs = [by_run[i] for i in conf["run_ids"] if i in by_run]
        rows.append((esc(f"#{number}"), esc(_distinct(_energy_method(r) for r in runs)),
                     esc(_distinct(r.energy.readings_source or "—" for r in runs)),
                     esc(_idle(runs)),
                     esc(_distinct(_latency_reference(r) for r in runs)),
                     esc(_distinct(_phase(r) for r in runs)),
                     esc(_sampler(runs)),
                     esc(_distinct(r.cpu_energy.method if r.cpu_energy.method != "unavailable"
                                   else f"unavailable: {r.cpu_energy.unavailable_reason or '?'}" for r in runs))))
    protocol = study_result.measurement_protocol or {}
    notes = [f"{k}: {protocol[k]}" for k in ("window", "energy") if protocol.get(k)]
    notes.append("Adjusted figures subtract idle: raw − baseline idle power × window; raw figures subtract "
                 "nothing. Each metric's definition and reference point: docs/metrics.md of llenergymeasure.")
    return "\n".join([
        table(("#", "GPU energy method", "readings source", "idle baseline (subtracted in adjusted figures)",
               "latency reference", "prefill/decode split", "power sampler", "CPU energy (RAPL)"), rows),
        bullet_list(notes, "small")])


def _distinct(values) -> str:
    """Values of a configuration's runs, each once, with a count when runs differ."""
    counts = Counter(values)
    if len(counts) == 1:
        return next(iter(counts))
    return "; ".join(f"{v} ({n} runs)" for v, n in counts.items())


def _energy_method(r) -> str:
    if r.energy.method == "unavailable":
        return f"unavailable: {r.energy.unavailable_reason or 'no reason recorded'}"
    return r.energy.method


def _span(values, unit: str) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "?"
    low, high = min(values), max(values)
    return f"{low:.4g} {unit}" if f"{low:.4g}" == f"{high:.4g}" else f"{low:.4g}–{high:.4g} {unit}"


def _idle(runs) -> str:
    """The idle power subtracted in the adjusted figures, over a configuration's runs."""
    measured = [r.baseline for r in runs if r.baseline is not None and r.baseline.power_mean_w is not None]
    missing = [r for r in runs if r.baseline is None or r.baseline.power_mean_w is None]
    parts = []
    if measured:
        reused = sum(1 for b in measured if not b.fresh)
        parts.append(f"{_span([b.power_mean_w for b in measured], 'W')} idle "
                     f"(std {_span([b.power_std_w for b in measured], 'W')}; {_distinct(b.method for b in measured)}; "
                     f"{_span([b.duration_s for b in measured], 's')}; "
                     f"{len(measured) - reused} fresh, {reused} reused)")
    if missing:
        why = _distinct((r.baseline.unavailable_reason if r.baseline else None) or "no baseline" for r in missing)
        parts.append(f"none in {len(missing)} run(s) ({why}): no adjusted figures there")
    return "; ".join(parts)


def _latency_reference(r) -> str:
    """Any recorded latency reference point (fields named *reference*), else the engine's default."""
    found = sorted({f"{k}: {v}" for k, v in run_row(r).items() if "reference" in k.rsplit(".", 1)[-1]
                    and v not in (None, "")})
    if found:
        return "; ".join(found)
    if r.config.mode == "serving":
        return "not recorded (serving: each request's own send time)"
    return "not recorded (see docs/metrics.md for this engine)"


def _phase(r) -> str:
    p = r.phase_energy
    return p.method if p.method != "unavailable" else f"unavailable: {p.unavailable_reason or '?'}"


def _sampler(runs) -> str:
    stats = [r.sampler for r in runs if r.sampler is not None]
    if not stats:
        return "none"
    asked = _span([s.requested_period_ms for s in stats], "ms")
    return (f"{asked} asked; {_span([s.achieved_period_median_ms for s in stats], 'ms')} achieved (median); "
            f"largest gap {_span([s.max_gap_ms for s in stats], 'ms')}")
