"""The table of bench/gpu_validation.py: one row per figure, the same rows in GPU runs and rehearsals.

Missing figures print as "n/a" with the stage's error, never as 0. `summary.md` holds the same
rows as a Markdown table, ready for the results section of docs/validation.md.
"""
from __future__ import annotations

from pathlib import Path

from gpu_validation_stats import (COUNTER_VS_INSTANT_TOLERANCE, FAIL, INCONCLUSIVE, JPT_CV_MAX, PASS,
                                  SAMPLER_OVERHEAD_MAX_PCT, interval_verdict, pytest_verdict)

WINDOW_RATIO_MIN = 0.98  # measured-window throughput / bare engine loop (docs/metrics.md, token_timing)


def _f(value, fmt: str = "{:.2f}", unit: str = "") -> str:
    return "n/a" if value is None else fmt.format(value) + unit


def _verdict(ok) -> str:
    return "n/a" if ok is None else (PASS if ok else FAIL)


def _power(stats: dict | None) -> str:
    if not stats:
        return "n/a"
    inst, avg = stats.get("power_instant_w") or {}, stats.get("power_avg_w") or {}
    return (f"instant {_f(inst.get('mean'))} ± {_f(inst.get('std'))} W (n={inst.get('n', 0)}); "
            f"1-s avg {_f(avg.get('mean'))} ± {_f(avg.get('std'))} W; counter {_f(stats.get('counter_mean_power_w'))} W "
            f"over {_f(stats.get('duration_s'), '{:.1f}', ' s')}")


def rows(report: dict) -> list[tuple[str, str, str, str]]:
    """(check, value, threshold, verdict)."""
    env = report.get("environment") or {}
    dev = report.get("device") or {}
    errors = dev.get("errors") or {}
    if "device" in errors:  # the device stage found no device: every row it owns says why
        errors = {k: errors["device"] for k in ("idle_preload", "loaded_idle", "agreement", "overhead")}
    readings = env.get("readings") or {}
    mode = report.get("mode", "?")
    if mode.startswith("REHEARSAL"):
        mode += ": figures describe replayed traces and this CPU's speed, not a GPU"
    out = [("mode", mode, "", ""),
           ("GPU / driver", env["error"] if env.get("error") else
            f"{env.get('gpu_name')} / {env.get('driver_version')} (CUDA {env.get('cuda_driver_version')})", "", ""),
           ("power limit / persistence", f"{_f((env.get('power_limit_mw') or 0) / 1000 or None, '{:.0f}', ' W')} / "
            f"{env.get('persistence_mode')}", "", ""),
           ("clocks SM / mem", f"{env.get('sm_clock_mhz')} / {env.get('mem_clock_mhz')} MHz "
            f"(max {env.get('sm_clock_max_mhz')} / {env.get('mem_clock_max_mhz')})", "", ""),
           ("readable: counter / instant / 1-s avg",
            " / ".join("yes" if (readings.get(k) or {}).get("readable") else "no"
                       for k in ("energy_counter", "power_instant_field", "power_average_field")), "", "")]
    pt = report.get("pytest_gpu") or {}
    stage = (report.get("stages") or {}).get("pytest_gpu") or {}
    pv = pytest_verdict(pt)
    out.append(("pytest -m gpu", ", ".join(f"{v} {k}" for k, v in pt.items()) or f"no report (rc {stage.get('rc')})",
                "all ran, 0 failed", "n/a" if pv is None else
                (f"{pv} ({pt.get('skipped')} skipped: not run)" if pv == INCONCLUSIVE else pv)))
    out.append(("idle before load", _power(dev.get("idle_preload")) if "idle_preload" in dev
                else f"n/a ({errors.get('idle_preload', 'not run')})", "reported", ""))
    out.append(("idle, model loaded", _power(dev.get("loaded_idle")) if "loaded_idle" in dev
                else f"n/a ({errors.get('loaded_idle', 'not run')})", "reported", ""))
    ag = dev.get("agreement")
    if ag:
        out.append(("agreement (steady window)",
                    f"counter {_f(ag['counter_j'], '{:.1f}', ' J')}, instant {_f(ag['instant_trapezoid_j'], '{:.1f}', ' J')} "
                    f"(x{_f(ag['instant_over_counter'], '{:.4f}')}), 1-s avg {_f(ag['avg_trapezoid_j'], '{:.1f}', ' J')} "
                    f"(x{_f(ag['avg_over_counter'], '{:.4f}')}) over {_f(ag['window_s'], '{:.1f}', ' s')}",
                    f"instant/counter within {COUNTER_VS_INSTANT_TOLERANCE:.0%}", _verdict(ag.get("pass"))))
    else:
        out.append(("agreement (steady window)", f"n/a ({errors.get('agreement', 'not run')})", "", "n/a"))
    study = report.get("study") or {}
    for batch, s in sorted((study.get("per_batch_size") or {}).items(), key=lambda kv: int(kv[0])):
        ci = s.get("ci95") or [None, None]
        cvi = s.get("cv_ci95") or [None, None]
        pct = (lambda x: None if x is None else x * 100)  # noqa: E731
        verdict = s.get("verdict") or "n/a"
        if verdict == INCONCLUSIVE:
            verdict += (f" (about {s['n_to_decide']} cycles would decide)" if s.get("n_to_decide")
                        else " (CV at the limit)")
        out.append((f"J/token, batch {batch} (n={s['n']})",
                    f"{_f(s['mean'], '{:.5g}')} ± {_f(s['std'], '{:.2g}')} J, CV {_f(pct(s['cv']), '{:.2f}', ' %')} "
                    f"(95 % interval {_f(pct(cvi[0]), '{:.2f}')}-{_f(pct(cvi[1]), '{:.2f}', ' %')}), "
                    f"mean's 95 % CI [{_f(ci[0], '{:.5g}')}, {_f(ci[1], '{:.5g}')}]",
                    f"CV <= {JPT_CV_MAX:.0%} over the whole interval", verdict))
    if not study.get("per_batch_size"):
        st = (report.get("stages") or {}).get("study") or {}
        out.append(("J/token (study)", f"n/a (no energy results; study rc {st.get('rc')}, "
                    f"{study.get('failed_runs', 0)} failed runs, {study.get('cut_runs', 0)} cut)",
                    f"CV <= {JPT_CV_MAX:.0%}", "n/a"))
    cc = study.get("cross_check") or {}
    if cc.get("runs"):
        out.append(("cross-check in each study run", f"counter vs integrated instant power: ratio "
                    f"{_f(cc['ratio_min'], '{:.4f}')}-{_f(cc['ratio_max'], '{:.4f}')} over {cc['runs']} runs, "
                    f"{cc['flagged']} flagged", "within each run's tolerance", FAIL if cc["flagged"] else PASS))
    if study:
        out.append(("study runs", f"{study.get('completed_runs', 0)} completed, {study.get('failed_runs', 0)} failed, "
                    f"{study.get('cut_runs', 0)} cut (not run or stopped when the study's share ran out)", "", ""))
    ov = dev.get("overhead")
    oci = (ov or {}).get("overhead_ci95_pct") or [None, None]
    out.append(("sampler overhead", f"{_f(ov['overhead_pct'], '{:.2f}', ' %')} (95 % interval "
                f"{_f(oci[0], '{:.2f}')} to {_f(oci[1], '{:.2f}', ' %')}; mean on/off ratio "
                f"{_f(ov['ratio_mean'], '{:.4f}')}, std {_f(ov['ratio_std'], '{:.4f}')}, {len(ov['reps'])} pairs)"
                if ov else f"n/a ({errors.get('overhead', 'not run')})",
                f"<= {SAMPLER_OVERHEAD_MAX_PCT} % over the whole interval",
                (ov.get("verdict") or "n/a") if ov else "n/a"))
    out.append(window_overhead_row(report))
    cd = dev.get("cooldown")
    out.append(("cool-down to idle temp", f"{_f(cd['time_to_idle_s'], '{:.1f}', ' s') if cd['reached'] else 'not reached'} ({cd['start_c']} -> {cd['end_c']} °C, "
                f"target {_f(cd['target_c'], '{:.1f}')} °C, max {cd['max_s']:.0f} s)" if cd else "n/a", "reported", ""))
    traces = dev.get("traces") or []
    out.append(("traces written", f"{len(traces)} file(s) in traces/" if traces else "none", "", ""))
    out.append(time_plan_row(report))
    for name, st in (report.get("stages") or {}).items():
        if st.get("timed_out"):
            out.append((f"stage {name}", f"CUT at its limit of {st.get('limit_s')} s ({cut_reason(name, report)}); "
                        f"what it finished is above; see {Path(st.get('log', '')).name}", "within its share",
                        "CUT (incomplete, not failed)"))
        elif st.get("rc") != 0:
            out.append((f"stage {name}", f"rc {st.get('rc')}; see {Path(st.get('log', '')).name}", "rc 0", "FAIL"))
    return out


def time_plan_row(report: dict) -> tuple[str, str, str, str]:
    """Each stage's time against its share, and the whole against the budget."""
    plan = report.get("time_plan") or {}
    shares = plan.get("shares_s") or {}
    stages = report.get("stages") or {}
    parts = [f"{name} {st.get('wall_s')}/{shares.get(name, '?'):g} s" if isinstance(shares.get(name), (int, float))
             else f"{name} {st.get('wall_s')} s" for name, st in stages.items()]
    total = sum(st.get("wall_s") or 0 for st in stages.values())
    return ("time (used / share)", f"{', '.join(parts)}; total {total:.0f} s of {_f(plan.get('budget_s'), '{:.0f}')} s",
            "each stage within its share", "")


def cut_reason(name: str, report: dict) -> str:
    """Why a stage reached its limit, in the terms a reader can act on."""
    if name == "study":
        plan = report.get("study_plan") or {}
        study = report.get("study") or {}
        why = (f"planned {plan.get('n_runs')} runs x ({plan.get('window_s')} s window + fixed cost) = "
               f"{plan.get('planned_s')} s of a {plan.get('share_s')} s share"
               + ("" if plan.get("fits", True) else ", which did not fit even at the shortest window"))
        return f"{why}; {study.get('completed_runs', 0)} of {plan.get('n_runs')} runs completed"
    if name == "device":
        return "the device phases, sampler overhead and calibration took longer than planned on this GPU"
    if name == "pytest_gpu":
        return "the GPU tests took longer than their share"
    return "the stage took longer than its share on this machine"


def window_overhead_row(report: dict) -> tuple[str, str, str, str]:
    """Window/bare throughput (bench/measurement_overhead.py): PASS only when the whole 95 % interval of the
    median ratio is >= the target, FAIL when even its top is below it, INCONCLUSIVE (noise) in between."""
    name, threshold = "window / bare throughput", f">= {WINDOW_RATIO_MIN}"
    results = (report.get("window_overhead") or {}).get("results") or []
    if not results:
        st = (report.get("stages") or {}).get("window_overhead") or {}
        return name, f"n/a (stage rc {st.get('rc', 'not run')})", threshold, "n/a"
    r = results[0]
    q, ci = r["window_ratio"], r["window_ratio"]["ci95"]
    value = (f"{q['median']:.3f} (95 % CI {ci[0]:.3f}-{ci[1]:.3f}, {len(r['reps'])} pairs, {r['device']}, "
             f"{r['token_timing']['method']})")
    if "sync_per_step_ratio" in r:
        value += f"; bare loop + sync per step (the old hook): {r['sync_per_step_ratio']['median']:.3f}"
    verdict = interval_verdict(ci[0], ci[1], WINDOW_RATIO_MIN, at_most=False)
    if verdict == INCONCLUSIVE:
        verdict += " (noise)"
    return name, value, threshold, verdict


def print_table(report: dict) -> None:
    table = rows(report)
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    widths[1] = min(widths[1], 110)
    line = "-+-".join("-" * w for w in widths)
    print(f"GPU validation ({report.get('mode')}), started {report.get('started_at')}")
    print(line)
    for r in table:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths)))
    print(line)


def write_summary(report: dict, path: Path) -> None:
    lines = [f"GPU validation ({report.get('mode')}), started {report.get('started_at')}", "",
             "| check | value | threshold | verdict |", "| --- | --- | --- | --- |"]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in rows(report)]
    path.write_text("\n".join(lines) + "\n")
