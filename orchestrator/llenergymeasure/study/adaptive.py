"""Adaptive cycles: repeat a configuration until its energy figure is known well enough, then stop.

`execution.target_ci_pct: P` plans `planned_cycles` (the cap, `max_cycles`) runs per configuration
and decides, before each of a configuration's runs, whether it is still needed:

- the first `n_cycles` runs (at least 2) always run;
- converged: the 95 % interval (Student's t) of its J/output token is within ±P % of the mean;
- dominated (racing): with 3 or more runs of each, another configuration dominates it beyond the
  noise on energy, latency and, where both measured it, output tokens/s (results/pareto.py's rule
  and objectives) — more cycles would not put it on the front;
- not measurable: no energy was measured in its runs (no GPU readable), so no interval can narrow.

A run not needed becomes `skipped` with `error_type: AdaptiveStop` and the reason, so a resume
never reruns it and the report shows why; `manifest.adaptive` records, per configuration, why and
after how many runs it stopped (the cap included). The decision reads only the manifest and the
runs' result.json files, so a resume after a crash or kill -9 takes it up where it was.

Executors: the sequential one iterates AdaptiveTodo (each run decided after the previous outcome);
the parallel one asks `skip(index)` as a worker is about to start each run, from the runs finished
by then — runs of the same configuration already in flight when it stops still finish, and
`finish()` records them (`runs_in_flight_at_stop`). Slurm runs them in waves (`next_wave`): one
array of, per configuration still going, the runs up to its minimum, then one run each; when the
collector finds a wave finished it decides and submits the next, until every configuration stopped.
"""
from __future__ import annotations

import math
from typing import Any, Iterator

from ..errors import ConfigError

STOP_ERROR = "AdaptiveStop"
RACING_MIN_RUNS = 3
ENERGY = "energy_per_output_token_j"


def refuse_unless_sequential(study, executor: str, search_in_waves: bool = False,
                             adaptive_cycles: bool = False) -> None:
    """ConfigError naming the field when adaptive cycles or a search meet an executor that dispatches ahead
    (`search_in_waves`: this executor runs a search in waves of trials, study/search.py `next_wave`;
    `adaptive_cycles`: it decides each run as it starts, AdaptiveTodo.skip)."""
    what = "search" if study.search is not None and not search_in_waves else None
    if study.execution.target_ci_pct is not None and not adaptive_cycles:
        what = "execution.target_ci_pct (adaptive cycles)"
    if what:
        raise ConfigError(f"{what}: each run's decision needs the outcome of the one before, which the {executor} "
                          "executor does not wait for; run it with execution.parallel: 1 on one host")


class RunResults:
    """The completed runs' results of this study, read once each from the files the manifest names."""

    def __init__(self, writer, study_dir):
        self.writer, self.study_dir = writer, study_dir
        self._cache: dict[int, Any] = {}

    def of(self, index: int):
        if index not in self._cache:
            from ..domain import ExperimentResult
            from ..results.load import result_path_of

            entry = self.writer.manifest.entries[index]
            try:
                self._cache[index] = ExperimentResult.model_validate_json(
                    result_path_of(self.study_dir, entry).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                self._cache[index] = None
        return self._cache[index]

    def by_experiment(self) -> dict[int, list]:
        out: dict[int, list] = {}
        for index, entry in enumerate(self.writer.manifest.entries):
            if entry.status == "completed" and entry.result_file:
                result = self.of(index)
                if result is not None:
                    out.setdefault(entry.experiment_index, []).append(result)
        return out


def interval_pct(values: list[float]) -> float | None:
    """Half-width of the 95 % interval as a percentage of the mean (None: under 2 values or mean 0)."""
    from ..results.stats import describe

    stats = describe(values)
    if stats["ci95_half_width"] is None or not stats["mean"]:
        return None
    return 100.0 * stats["ci95_half_width"] / abs(stats["mean"])


def convergence(values: list[float], target_pct: float) -> str | None:
    pct = interval_pct(values)
    if pct is not None and pct <= target_pct:
        return f"converged: 95% interval of J/output token ±{pct:.2f} % ≤ ±{target_pct:g} % after {len(values)} runs"
    return None


class Racing:
    """Whether a configuration is dominated beyond the noise by another (results/pareto.py's rule).

    Each configuration's statistics are computed again only when it has a new run, so a decision costs
    one comparison per configuration, not the statistics of the whole study."""

    def __init__(self):
        self._stats: dict[int, tuple[int, dict]] = {}

    def stats(self, exp_index: int, runs: list) -> dict:
        from ..results.stats import configuration_stats

        cached = self._stats.get(exp_index)
        if cached is None or cached[0] != len(runs):
            cached = (len(runs), configuration_stats(runs)[0])
            self._stats[exp_index] = cached
        return cached[1]

    def dominated(self, exp_index: int, results: dict[int, list]) -> str | None:
        """Why configuration `exp_index` is dominated beyond the noise, or None."""
        from ..results.pareto import DEFAULT_THROUGHPUT, DEFAULT_X_CHOICES, compare, maximised, swept_labels

        if len(results.get(exp_index, [])) < RACING_MIN_RUNS:
            return None
        mine = self.stats(exp_index, results[exp_index])
        x = next((m for m in DEFAULT_X_CHOICES if mine["metrics"][m]["mean"] is not None), None)
        if x is None or mine["metrics"][ENERGY]["mean"] is None:
            return None
        for other_index, runs in results.items():
            if other_index == exp_index or len(runs) < RACING_MIN_RUNS:
                continue
            other = self.stats(other_index, runs)
            if other["metrics"][ENERGY]["mean"] is None or other["metrics"][x]["mean"] is None:
                continue
            objectives = (ENERGY, x)
            if not maximised(x) and all(c["metrics"][DEFAULT_THROUGHPUT]["mean"] is not None for c in (mine, other)):
                objectives += (DEFAULT_THROUGHPUT,)  # the front's third objective: a faster one is not raced out
            if compare(other, mine, objectives) == "dominates":
                label = swept_labels([mine, other])[other["config_hash"]]
                return (f"dominated: {label} is better beyond the noise on J/output token and {x}"
                        f"{' (no worse on ' + DEFAULT_THROUGHPUT + ')' if len(objectives) == 3 else ''} "
                        f"(95% intervals separated) after {mine['n_runs']} runs")
        return None


class AdaptiveTodo:
    """The manifest indices to run, decided one at a time (the sequential executor iterates it)."""

    def __init__(self, run, writer, order: list[tuple[int, int]], todo: list[int], study_dir):
        self.run, self.writer, self.order, self.todo = run, writer, order, list(todo)
        self.results = RunResults(writer, study_dir)
        self.racing = Racing()
        self._stopped = {e.experiment_index: e.error_message for e in writer.manifest.entries
                         if e.error_type == STOP_ERROR and e.status == "skipped"}
        ex = run.study.execution
        self.target_pct, self.min_runs, self.cap = ex.target_ci_pct, max(2, ex.n_cycles), ex.planned_cycles

    def __len__(self) -> int:
        return len(self.todo)

    def __iter__(self) -> Iterator[int]:
        for index in self.todo:
            if not self.skip(index):
                yield index
        self.record_caps()

    def skip(self, index: int) -> bool:
        """True (and the entry marked skipped with the reason) when run `index`'s configuration needs no
        more runs, judged from the runs finished by now."""
        exp_index = self.order[index][0]
        reason = self.stopped(exp_index) or self.decide(exp_index)
        if reason:
            self.writer.update(index, status="skipped", error_type=STOP_ERROR, error_message=reason)
        return bool(reason)

    def next_wave(self) -> list[int]:
        """The runs to submit together (Slurm), in study order: for each configuration still going, the
        runs that take it to its minimum, else one more; the remaining runs of a configuration that
        stopped are marked skipped. Empty when every configuration is decided (its record then written)."""
        done = self.results.by_experiment()
        wave, taken = [], {}
        for index in self.todo:
            exp_index = self.order[index][0]
            if self.skip(index):
                continue
            n = len(done.get(exp_index, [])) + taken.get(exp_index, 0)
            if taken.get(exp_index) and n >= self.min_runs:
                continue  # beyond the minimum, one run per configuration a wave: then decide again
            wave.append(index)
            taken[exp_index] = taken.get(exp_index, 0) + 1
        if not wave:
            self.finish()
        return wave

    def finish(self) -> None:
        """After the last planned run under the parallel executor: a configuration stopped while some of
        its runs were already in flight ran those too; its record says how many, then the caps."""
        results = self.results.by_experiment()
        entries = []
        for a in self.writer.manifest.adaptive:
            done = len(results.get(a.get("experiment_index"), []))
            if done > (a.get("runs") or 0) and "runs_in_flight_at_stop" not in a:
                a = {**a, "runs": done, "runs_in_flight_at_stop": done - (a.get("runs") or 0)}
            entries.append(a)
        self.writer.manifest.adaptive = entries
        self.record_caps()

    def stopped(self, exp_index: int) -> str | None:
        return self._stopped.get(exp_index)

    def decide(self, exp_index: int) -> str | None:
        """Why configuration `exp_index` needs no more runs (recorded once), or None to run it."""
        results = self.results.by_experiment()
        mine = results.get(exp_index, [])
        if len(mine) < self.min_runs:
            return None
        energies = [r.metrics.energy_per_output_token_j for r in mine]
        measured = [v for v in energies if v is not None and not math.isnan(v)]
        if not measured:
            reasons = sorted({r.energy.unavailable_reason or "no reason recorded" for r in mine})
            reason = (f"not measurable: no run measured energy ({'; '.join(reasons)}), so its interval cannot "
                      f"narrow; stopped after {len(mine)} runs")
        else:
            reason = convergence(measured, self.target_pct) or self.racing.dominated(exp_index, results)
        if reason:
            self._stopped[exp_index] = reason
            self.record(exp_index, len(mine), reason, measured)
            self.run.observer.notice(f"adaptive cycles: {self.run.expanded[exp_index].summary}: {reason}")
        return reason

    def record(self, exp_index: int, n_runs: int, reason: str, values: list[float]) -> None:
        entries = [a for a in self.writer.manifest.adaptive if a.get("experiment_index") != exp_index]
        pct = interval_pct(values)
        entries.append({"experiment_index": exp_index, "runs": n_runs, "reason": reason,
                        "ci95_pct": None if pct is None else round(pct, 4)})
        self.writer.manifest.adaptive = sorted(entries, key=lambda a: a["experiment_index"])

    def record_caps(self) -> None:
        """After the last planned run: every configuration still going stopped at the cap."""
        done = {a["experiment_index"] for a in self.writer.manifest.adaptive}
        results = self.results.by_experiment()
        for exp_index, runs in sorted(results.items()):
            if exp_index in done:
                continue
            values = [r.metrics.energy_per_output_token_j for r in runs
                      if r.metrics.energy_per_output_token_j is not None]
            pct = interval_pct(values)
            reason = convergence(values, self.target_pct) or (
                f"cap: max_cycles ({self.cap}) reached; 95% interval ±{'?' if pct is None else f'{pct:.2f}'} % "
                f"against the target ±{self.target_pct:g} %")
            self.record(exp_index, len(runs), reason, values)
        self.writer.write()
