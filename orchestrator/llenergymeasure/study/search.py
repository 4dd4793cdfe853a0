"""Search the sweep instead of running all of it (`search:` in a study), with Optuna as the planner.

The plan is the full grid, as without a search: every configuration × cycle is a manifest entry, so
resume, Ctrl-C, kill -9, the circuit breaker and the report work unchanged. The search only decides
which configurations run: it proposes one (a trial), the sequential executor runs that
configuration's cycles as ordinary runs, the trial's measured value (the mean across its cycles)
is told to the planner, and so on until the budget, the patience or the grid runs out. Then every
configuration never proposed is `skipped` (`error_type: NotProposed`) with the reason.

Nothing of Optuna is stored: its study is rebuilt from the manifest's trial list and the runs'
result.json files before every proposal (seeded with the seed plus the number of trials, so the
same history gives the same proposal). The search's history — what was proposed, what was measured,
which trials meet the SLO, the best so far, why it stopped — is `search_history.json`, rewritten
atomically after every trial, and mirrored in `manifest.search`.

SLOs: a trial that misses a target is told to the planner as worse than every trial measured (its
value × (1 + its relative violation)), so the planner learns to avoid that region; the best is
decided by results/pareto.py's rule (`answer`), the same as for a full grid.
"""
from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any, Iterator

from ..domain.decision import OBJECTIVES
from .adaptive import RunResults
from .manifest import utc_now

HISTORY_FILE = "search_history.json"
NOT_PROPOSED = "NotProposed"
MAX_REPROPOSALS = 64


def require_optuna() -> None:
    """ConfigError (exit 2) before anything starts when Optuna is not installed."""
    import importlib.util

    from ..errors import ConfigError

    if importlib.util.find_spec("optuna") is None:
        raise ConfigError("search: the planner is Optuna, which is not installed here; "
                          "pip install 'llenergymeasure[search]' (or remove `search:` to run the whole sweep)")


def _numeric(values: list[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values) and \
        (values == sorted(values) or values == sorted(values, reverse=True))


class SearchTodo:
    """The manifest indices to run, one proposed configuration at a time (the sequential executor iterates it)."""

    def __init__(self, run, writer, order: list[tuple[int, int]], todo: list[int], study_dir: Path):
        self.run, self.writer, self.order, self.study_dir = run, writer, order, Path(study_dir)
        self.todo = set(todo)
        self.planned = len(self.todo)
        self.config = run.study.search
        self.slo = run.study.slo or {}
        self.metric, self.goal = OBJECTIVES[self.config.objective]
        self.results = RunResults(writer, study_dir)
        self.grid = run.expanded.grid
        self.entries_of: dict[int, list[int]] = {}
        for index, (exp_index, _cycle) in enumerate(order):
            self.entries_of.setdefault(exp_index, []).append(index)
        state = writer.manifest.search or {}
        self.trials: list[dict[str, Any]] = list(state.get("trials", []))
        self.elapsed_before_s = float(state.get("elapsed_s", 0.0))
        self.started = time.monotonic()

    def __len__(self) -> int:
        budget = self.config.budget.runs
        return min(self.planned, budget) if budget else self.planned

    # -- the loop ------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[int]:
        while True:
            self.measure()
            current = next((t for t in self.trials if t["status"] == "proposed"), None)
            if current is None:
                reason = self.stop_reason()
                if reason:
                    self.finish(reason)
                    return
                current = self.propose()
                if current is None:
                    self.finish("every valid configuration of the sweep has been measured")
                    return
            for index in self.entries_of[current["experiment_index"]]:
                entry = self.writer.manifest.entries[index]
                if index in self.todo and entry.status in ("pending", "interrupted", "failed", "running"):
                    self.todo.discard(index)
                    yield index
            current["status"] = "ran"
            self.save()

    def next_wave(self, trials: int) -> list[int]:
        """Slurm: the manifest indices to submit now — runs of proposed trials not yet run (a resume),
        else up to `trials` new proposals once no run of this search is left in Slurm. Empty: the search
        is over (then every configuration never proposed is skipped, and why it stopped recorded)."""
        live = ("submitted", "running")
        entries = self.writer.manifest.entries
        left, in_flight = [], False
        for t in self.trials:
            if t["status"] != "proposed":
                continue
            indices = self.entries_of[t["experiment_index"]]
            if any(entries[i].status in live for i in indices):
                in_flight = True
                continue
            rerun = [i for i in indices if i in self.todo and entries[i].status in ("pending", "interrupted", "failed")
                     and not entries[i].result_file]
            if rerun:
                left += rerun
            else:
                t["status"] = "ran"
        if left or in_flight:
            self.save()
            return left
        self.measure()
        wave: list[int] = []
        for _ in range(trials):
            reason = self.stop_reason(pending_runs=len(wave))
            proposal = None if reason else self.propose()
            if proposal is None:
                if not wave:
                    self.finish(reason or "every valid configuration of the sweep has been measured")
                break
            wave += [i for i in self.entries_of[proposal["experiment_index"]] if i in self.todo]
            self.todo.difference_update(wave)
        return wave

    def runs_used(self) -> int:
        """Runs that ended (completed or failed) in configurations the search proposed, every invocation."""
        proposed = {t["experiment_index"] for t in self.trials}
        return sum(1 for e in self.writer.manifest.entries
                   if e.experiment_index in proposed and e.status in ("completed", "failed"))

    def elapsed_s(self) -> float:
        """Wall time since the study started (its manifest's creation): the same under every executor,
        a Slurm search's waiting between waves included; a pause before a resume counts too."""
        from datetime import datetime, timezone

        try:
            created = datetime.fromisoformat(self.writer.manifest.created_at)
            return max(0.0, (datetime.now(timezone.utc) - created).total_seconds())
        except (TypeError, ValueError):
            return self.elapsed_before_s + time.monotonic() - self.started

    def stop_reason(self, pending_runs: int = 0) -> str | None:
        done = [t for t in self.trials if t["status"] == "measured"]
        if done and all(t.get("value") is None for t in done) and any(t.get("runs") for t in done):
            return (f"nothing to optimise: {self.metric} was not measured ({done[0].get('why')}); run on a GPU, "
                    "or with a replayed trace")
        budget = self.config.budget
        cycles = self.run.study.execution.planned_cycles
        if budget.runs is not None and self.runs_used() + pending_runs + cycles > budget.runs:
            return f"budget: {self.runs_used()} runs used of {budget.runs} (a trial takes {cycles})"
        if budget.hours is not None and self.elapsed_s() >= budget.hours * 3600:
            return f"budget: {self.elapsed_s() / 3600:.2f} h of {budget.hours:g} h"
        patience = self.config.patience
        if patience:
            measured = [t for t in self.trials if t.get("value") is not None]
            best_at = self.best_trial_number()
            if best_at is not None and len(measured) - best_at > patience:
                return f"patience: {len(measured) - best_at} trials without a better feasible one (patience {patience})"
        return None

    # -- measuring and telling -------------------------------------------------------------------
    def measure(self) -> None:
        """Fill each ran trial's value, SLO verdict and runs from the manifest and the runs' results."""
        from ..results.stats import configuration_stats

        by_exp = self.results.by_experiment()
        for trial in self.trials:
            if trial["status"] != "ran":
                continue
            runs = by_exp.get(trial["experiment_index"], [])
            trial["status"] = "measured"
            trial["measured_at"] = utc_now()
            trial["runs"] = len(runs)
            conf = configuration_stats(runs)[0] if runs else None
            stats = conf["metrics"][self.metric] if conf else None
            mean = stats["mean"] if stats else None
            if mean is None:
                trial.update(value=None, feasible=None, why=(stats or {}).get("unavailable_reason")
                             or "no run of this configuration completed")
                continue
            trial["value"] = 1.0 / mean if self.goal == "max_inverse" else mean
            trial["ci95"] = [stats.get("ci95_low"), stats.get("ci95_high")]
            trial["violation"], trial["feasible"] = self._violation(conf)
        self.save()

    def _violation(self, conf: dict[str, Any]) -> tuple[float, bool]:
        from ..results.pareto import slo_verdict

        if not self.slo:
            return 0.0, True
        verdict, targets = slo_verdict(conf, self.slo)
        total = 0.0
        for t in targets.values():
            if t["mean"] is None:
                total += 1.0
            elif t["bound"] == "max" and t["mean"] > t["target"]:
                total += (t["mean"] - t["target"]) / max(t["target"], 1e-12)
            elif t["bound"] == "min" and t["mean"] < t["target"]:
                total += (t["target"] - t["mean"]) / max(t["target"], 1e-12)
        return total, verdict in ("meets", "meets_mean_only", "uncertain")

    def _told_value(self, trial: dict[str, Any], worst: float) -> float:
        """What the planner is told (it minimises): the objective, or for an infeasible trial a value
        worse than every one measured, graded by how far it misses."""
        value = -trial["value"] if self.goal == "max_inverse" else trial["value"]
        if trial.get("feasible") is False:
            return abs(worst) * (1.0 + trial["violation"]) + abs(value) * 1e-9
        return value

    def best_trial_number(self) -> int | None:
        """Position (1-based, among measured trials) of the best feasible one."""
        measured = [t for t in self.trials if t.get("value") is not None]
        feasible = [(i, t) for i, t in enumerate(measured, 1) if t.get("feasible")]
        if not feasible:
            return None
        sign = -1 if self.goal == "max_inverse" else 1
        return min(feasible, key=lambda it: sign * it[1]["value"])[0]

    # -- proposing -------------------------------------------------------------------------------
    def _space(self):
        import optuna

        space = {}
        for key, values in zip(self.grid.keys, self.grid.values):
            space[key] = optuna.distributions.IntDistribution(0, len(values) - 1) if _numeric(values) \
                else optuna.distributions.CategoricalDistribution(list(range(len(values))))
        return space

    def _params(self, exp_index: int) -> dict[str, int]:
        params, rest = {}, exp_index
        for key, values in reversed(list(zip(self.grid.keys, self.grid.values))):
            rest, digit = divmod(rest, len(values))
            params[key] = digit
        return params

    def _index(self, params: dict[str, int]) -> int:
        index = 0
        for key, values in zip(self.grid.keys, self.grid.values):
            index = index * len(values) + int(params[key])
        return index

    def _sampler(self, n_trials: int):
        import optuna

        seed = self.config.seed + n_trials
        if self.config.planner == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        startup = self.config.startup_trials
        if startup is None:
            trials_budget = (self.config.budget.runs or 30) // max(1, self.run.study.execution.planned_cycles)
            startup = min(10, max(2, trials_budget // 3))
        import warnings

        with warnings.catch_warnings():  # multivariate is "experimental" in some Optuna versions
            warnings.simplefilter("ignore")
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, multivariate=True)

    def propose(self) -> dict[str, Any] | None:
        """The next configuration to measure (a new trial), or None when none is left."""
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        space = self._space()
        tried = {t["experiment_index"] for t in self.trials}
        left = [i for i in range(self.grid.n_grid) if i not in tried and self.run.expanded[i].valid
                and any(ix in self.todo for ix in self.entries_of.get(i, []))]
        if not left:
            return None
        measured = [t for t in self.trials if t.get("value") is not None]
        worst = max((abs(t["value"]) for t in measured), default=1.0)
        study = optuna.create_study(direction="minimize", sampler=self._sampler(len(self.trials)))
        for t in self.trials:
            state = optuna.trial.TrialState.COMPLETE if t.get("value") is not None else optuna.trial.TrialState.FAIL
            study.add_trial(optuna.trial.create_trial(
                params=self._params(t["experiment_index"]), distributions=space, state=state,
                value=self._told_value(t, worst) if state == optuna.trial.TrialState.COMPLETE else None))
        how = self.config.planner
        choice = None
        for _ in range(MAX_REPROPOSALS):
            trial = study.ask(space)
            index = self._index(trial.params)
            if index in left:
                choice = index
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)  # told for real once measured
                break
            # Already measured, or an invalid grid point: tell what is known and ask again.
            known = next((t for t in measured if t["experiment_index"] == index), None)
            if known is not None:
                study.tell(trial, self._told_value(known, worst))
            else:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
        if choice is None:  # the planner keeps to measured points: take an unmeasured one, seeded
            choice = random.Random(self.config.seed + len(self.trials)).choice(left)
            how = f"{self.config.planner} kept proposing measured points; an unmeasured one at random (seeded)"
        new = {"number": len(self.trials) + 1, "experiment_index": choice, "status": "proposed",
               "config": self.run.expanded[choice].summary, "params": self._values(choice),
               "proposed_at": utc_now(), "planner": how}
        self.trials.append(new)
        self.save()
        self.run.observer.notice(f"search: trial {new['number']} proposes {new['config']} ({how})")
        return new

    def _values(self, exp_index: int) -> dict[str, Any]:
        params = self._params(exp_index)
        return {key: _plain(values[params[key]]) for key, values in zip(self.grid.keys, self.grid.values)}

    # -- recording -------------------------------------------------------------------------------
    def history(self, stop: str | None = None) -> dict[str, Any]:
        best_at = self.best_trial_number()
        measured = [t for t in self.trials if t.get("value") is not None]
        best = measured[best_at - 1] if best_at else None
        return {"objective": self.config.objective, "metric": self.metric,
                "direction": "max" if self.goal == "max_inverse" else "min", "planner": self.config.planner,
                "seed": self.config.seed, "budget": self.config.budget.model_dump(), "slo": dict(self.slo),
                "grid_size": self.grid.n_grid, "runs_used": self.runs_used(), "elapsed_s": round(self.elapsed_s(), 3),
                "trials": self.trials, "best": best, "stopped": stop, "updated_at": utc_now(),
                "rule": "a trial's value is the mean across its cycles; it meets the SLO when its mean does "
                        "(the final answer uses the study's pareto rule over the measured configurations)"}

    def save(self, stop: str | None = None) -> None:
        """search_history.json (atomic) and manifest.search, after every change of a trial."""
        from ..domain.io import write_text_atomic

        record = self.history(stop or (self.writer.manifest.search or {}).get("stopped"))
        self.writer.manifest.search = record
        try:
            write_text_atomic(self.study_dir / HISTORY_FILE, json.dumps(record, indent=2, default=str) + "\n")
        except OSError as exc:
            self.run.observer.notice(f"search: could not write {HISTORY_FILE} ({exc}); the manifest keeps it")
        self.writer.write()

    def finish(self, reason: str) -> None:
        """Skip every configuration never proposed (with the reason) and record why the search stopped."""
        proposed = {t["experiment_index"] for t in self.trials}
        changes = {i: dict(status="skipped", error_type=NOT_PROPOSED,
                           error_message=f"the search did not propose this configuration (stopped: {reason})")
                   for i in sorted(self.todo) if self.order[i][0] not in proposed
                   and self.writer.manifest.entries[i].status == "pending"}
        self.writer.update_many(changes)
        self.save(stop=reason)
        self.run.observer.notice(f"search stopped: {reason}; {len(proposed)} of {self.grid.n_grid} configurations "
                                 f"measured in {self.runs_used()} runs")


def run_in_waves(batch, run_wave) -> list:
    """An executor that dispatches runs ahead of their outcomes (parallel) runs a search in waves:
    `search.trials_per_wave` trials proposed at once, `run_wave(batch)` runs their runs, then the next."""
    import dataclasses

    todo = batch.todo.todo if isinstance(batch.todo, SearchTodo) else set(batch.todo)
    search = SearchTodo(batch.run, batch.writer, batch.order, sorted(todo), batch.study_dir)
    outcomes: list = []
    while not batch.breaker.reason:
        wave = search.next_wave(batch.run.study.search.trials_per_wave)
        if not wave:
            break
        outcomes += run_wave(dataclasses.replace(batch, todo=wave))
    return outcomes


def _plain(value: Any) -> Any:
    return value if isinstance(value, (int, float, str, bool)) or value is None else json.loads(
        json.dumps(value, default=str))


def best_is_within(search_answer: dict[str, Any] | None, grid_answer: dict[str, Any] | None) -> bool:
    """True when the search's best is the grid's best or tied with it within the noise (bench, tests)."""
    if not search_answer or not grid_answer or not grid_answer.get("best") or not search_answer.get("best"):
        return False
    best = search_answer["best"]["config_hash"]
    return best == grid_answer["best"]["config_hash"] or best in {t["config_hash"] for t in grid_answer["ties"]}

