"""The noise-aware Pareto front, the answer under an SLO, carbon figures and `llem results pareto`."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from llenergymeasure.results.carbon import carbon_section
from llenergymeasure.results.pareto import answer, compare, cycles_to_separate, pareto_front, swept_labels
from llenergymeasure.results.stats import STAT_METRICS, configuration_stats, describe


def conf(name: str, energy: list[float], ttft: list[float], **config) -> dict:
    metrics = {m: describe([]) for m in STAT_METRICS}
    metrics["energy_per_output_token_j"] = describe(energy)
    metrics["ttft_s.p90"] = describe(ttft)
    metrics["energy_wh_per_1000_requests"] = describe([e * 8 * 1000 / 3600 for e in energy])
    return {"config_hash": name, "config_summary": name, "n_runs": len(energy), "metrics": metrics,
            "config": {"model": "/m/tiny", "batch_size": 1, **config}}


def test_clearly_better_on_both_dominates_and_overlap_is_a_tie():
    a = conf("a", [1.0, 1.01, 0.99], [0.10, 0.11, 0.09], batch_size=8)
    b = conf("b", [2.0, 2.02, 1.98], [0.20, 0.21, 0.19], batch_size=4)
    c = conf("c", [1.05, 0.9, 1.2], [0.105, 0.09, 0.12], batch_size=2)  # worse by means, inside a's noise
    front = pareto_front([a, b, c])
    points = {p["config_hash"]: p for p in front["points"]}
    assert front["x"] == "ttft_s.p90" and front["front"] == ["a", "c"]
    assert points["b"]["dominated_by"] == ["a", "c"] and not points["b"]["on_front"]
    assert points["c"]["on_front"] and points["c"]["tied_with"][0]["config_hash"] == "a"
    need = points["c"]["tied_with"][0]["cycles_to_separate"]
    assert need is not None and need > 3


def test_cycles_to_separate_makes_the_intervals_stop_overlapping():
    from scipy.special import stdtrit

    a, b = describe([1.0, 1.1, 0.9]), describe([1.15, 1.25, 1.05])
    n = cycles_to_separate(a, b)
    half = lambda s, k: stdtrit(k - 1, 0.975) * s["std"] / k ** 0.5  # noqa: E731
    assert a["mean"] + half(a, n) < b["mean"] - half(b, n)
    assert a["mean"] + half(a, n - 1) >= b["mean"] - half(b, n - 1)  # the smallest such n


def test_a_trade_off_keeps_both_on_the_front():
    fast = conf("fast", [2.0, 2.01, 1.99], [0.05, 0.051, 0.049])
    frugal = conf("frugal", [1.0, 1.01, 0.99], [0.5, 0.51, 0.49])
    assert compare(fast, frugal, ("energy_per_output_token_j", "ttft_s.p90")) == "none"
    assert set(pareto_front([fast, frugal])["front"]) == {"fast", "frugal"}


def test_answer_is_the_least_energy_meeting_the_slo_with_its_margin():
    fast = conf("fast", [2.0, 2.01, 1.99], [0.05, 0.051, 0.049], batch_size=1)
    frugal = conf("frugal", [1.0, 1.01, 0.99], [0.5, 0.51, 0.49], batch_size=16)
    ans = answer([fast, frugal], {"ttft_p90_s": 0.1})
    assert ans["best"]["config_hash"] == "fast" and ans["best"]["verdict"] == "meets"
    target = ans["best"]["targets"]["ttft_p90_s"]
    assert target["value"] == pytest.approx(fast["metrics"]["ttft_s.p90"]["ci95_high"])
    assert target["margin"] == pytest.approx(0.1 - target["value"])
    assert answer([fast, frugal], {"ttft_p90_s": 1.0})["best"]["config_hash"] == "frugal"
    none = answer([fast, frugal], {"ttft_p90_s": 0.01})
    assert none["best"] is None and none["message"].startswith("none meets it")
    # The mean meets it, the interval crosses it: not claimed, named as one that might with more cycles.
    crossing = answer([fast], {"ttft_p90_s": 0.0505})
    assert crossing["best"] is None and "fast" in crossing["message"]


def test_labels_name_the_swept_values():
    labels = swept_labels([conf("a", [1], [1], batch_size=8, dtype="float16"),
                           conf("b", [1], [1], batch_size=4, dtype="float16")])
    assert labels == {"a": "bs=8", "b": "bs=4"}  # the style of every table and figure (report_labels.py)


def test_carbon_needs_a_given_intensity():
    c = conf("a", [0.36, 0.36, 0.36], [0.1, 0.1, 0.1])
    none = carbon_section([c], None)
    assert none["configurations"]["a"]["g_co2e_per_1000_requests"] is None
    assert "no grid carbon intensity" in none["configurations"]["a"]["unavailable_reason"]
    grid = {"grid_intensity_g_per_kwh": 200.0, "source": "national grid operator", "date": "2026-11"}
    figs = carbon_section([c], grid)["configurations"]["a"]
    # 0.36 J/token × 1e6 tokens = 0.1 kWh -> 20 g; 0.8 Wh per 1000 requests -> 0.16 g.
    assert figs["g_co2e_per_million_output_tokens"] == pytest.approx(20.0)
    assert figs["g_co2e_per_1000_requests"] == pytest.approx(0.8 / 1000 * 200)


def test_pareto_command_prints_the_front_and_the_answer(tmp_path):
    from llenergymeasure.cli.main import cli
    from tests.unit.results_factory import make_result, write_study_dir

    results = [make_result(bs, cycle, window_s=1.0 / bs + 0.01 * cycle, energy_j=100.0 / bs + cycle)
               for bs in (1, 4) for cycle in (1, 2, 3)]
    study_dir = write_study_dir(tmp_path, results)
    runner = CliRunner()
    out = runner.invoke(cli, ["results", "pareto", str(study_dir), "--slo", "e2e_p90_s=100"])
    assert out.exit_code == 0, out.output
    assert "front" in out.output and "answer: bs=4" in out.output
    none = runner.invoke(cli, ["results", "pareto", str(study_dir), "--slo", "e2e_p90_s=0.0001"])
    assert none.exit_code == 0 and "none meets it" in none.output
    data = json.loads(runner.invoke(cli, ["results", "pareto", str(study_dir), "--json", "--x",
                                          "output_tokens_per_s"]).output)
    assert data["x_direction"] == "max" and data["answer"] is None and data["points"]
    confs = configuration_stats(results)
    assert len(data["points"]) == len(confs)


def test_pareto_command_refuses_a_bad_slo_with_exit_2(tmp_path):
    import subprocess
    import sys

    from tests.unit.results_factory import make_result, write_study_dir

    study_dir = write_study_dir(tmp_path, [make_result(1, 1, 1.0, 10.0)])
    proc = subprocess.run([sys.executable, "-m", "llenergymeasure", "results", "pareto", str(study_dir),
                           "--slo", "ttft_p9_s=0.2"], capture_output=True, text=True)
    assert proc.returncode == 2 and "ttft_p90_s" in proc.stderr and "Traceback" not in proc.stderr


def test_report_answers_under_the_study_slo_with_carbon_and_a_labelled_front(tmp_path):
    from llenergymeasure.domain import StudyConfig
    from llenergymeasure.results.report import render_report
    from llenergymeasure.study.resume import write_study_snapshot
    from tests.unit.results_factory import make_result, write_study_dir

    results = [make_result(bs, cycle, window_s=1.0 / bs + 0.01 * cycle, energy_j=100.0 / bs + cycle)
               for bs in (1, 4) for cycle in (1, 2, 3)]
    study_dir = write_study_dir(tmp_path, results)
    write_study_snapshot(study_dir, StudyConfig.model_validate({
        "sweep": {"batch_size": [1, 4]}, "slo": {"e2e_p90_s": 100.0},
        "carbon": {"grid_intensity_g_per_kwh": 250, "source": "grid operator's annual mean", "date": "2026"}}), [])
    page = render_report(study_dir)
    assert "Least energy under e2e_p90_s ≤ 100: bs=4</b>" in page
    assert "gCO2e per 1,000 requests" in page and "grid operator&#x27;s annual mean" in page
    svg = page[page.index('id="pareto"'):]
    assert ">bs=4<" in svg.replace("</text>", "<")  # the figure names the point by its swept value


def test_run_study_result_carries_the_front_and_null_carbon_with_reason(tmp_path):
    from llenergymeasure.domain import StudyConfig
    from llenergymeasure.study.summary import _decide
    from llenergymeasure.domain import StudyResult
    from tests.unit.results_factory import make_result

    results = [make_result(bs, cycle, window_s=1.0 / bs, energy_j=100.0 / bs + cycle)
               for bs in (1, 4) for cycle in (1, 2, 3)]
    result = StudyResult(study_id="s", study_name="s", study_dir=str(tmp_path), status="completed",
                         started_at="x", finished_at="y", experiments=results)
    _decide(StudyConfig.model_validate({"slo": {"e2e_p90_s": 100.0}}), result)
    assert result.pareto["answer"]["best"]["label"] == "bs=4"
    assert result.carbon["grid"] is None and "no grid carbon intensity" in result.carbon["unavailable_reason"]


def test_the_answer_line_and_no_answer_without_energy():
    from llenergymeasure.results.pareto import answer_line

    fast = conf("fast", [2.0, 2.01, 1.99], [0.05, 0.051, 0.049], batch_size=1)
    line = answer_line(pareto_front([fast], slo={"ttft_p90_s": 0.1}))
    assert line.startswith("least energy_per_output_token_j under ttft_p90_s ≤ 0.1: fast (2 [")
    assert answer_line(pareto_front([fast])) is None
    unmeasured = conf("u", [], [0.05, 0.05, 0.05])
    unmeasured["metrics"]["energy_per_output_token_j"]["unavailable_reason"] = "no NVIDIA GPU visible"
    ans = answer([unmeasured], {"ttft_p90_s": 0.1})
    assert ans["best"] is None and ans["message"] == ("no answer: no configuration measured "
                                                      "energy_per_output_token_j (no NVIDIA GPU visible)")


def with_throughput(c: dict, tok_s: list[float]) -> dict:
    c["metrics"]["output_tokens_per_s"] = describe(tok_s)
    return c


def test_a_point_dominated_on_two_axes_but_best_on_throughput_stays_on_the_three_objective_front():
    lean = with_throughput(conf("lean", [1.0, 1.01, 0.99], [0.10, 0.11, 0.09]), [100.0, 101.0, 99.0])
    batch = with_throughput(conf("batch", [2.0, 2.02, 1.98], [0.20, 0.21, 0.19], batch_size=64), [900.0, 910.0, 890.0])
    three = pareto_front([lean, batch])
    assert three["objectives"] == ["energy_per_output_token_j", "ttft_s.p90", "output_tokens_per_s"]
    assert three["throughput"] == "output_tokens_per_s" and three["throughput_direction"] == "max"
    assert set(three["front"]) == {"lean", "batch"}
    points = {p["config_hash"]: p for p in three["points"]}
    assert points["batch"]["output_tokens_per_s"]["mean"] == pytest.approx(900.0)
    two = pareto_front([lean, batch], throughput=None)  # energy against TTFT only: batch is dominated
    assert two["throughput"] is None and two["front"] == ["lean"]
    assert {p["config_hash"]: p for p in two["points"]}["batch"]["dominated_by"] == ["lean"]


def test_n_objective_dominance_needs_separation_where_better_else_a_tie():
    metrics = ("energy_per_output_token_j", "ttft_s.p90", "output_tokens_per_s")
    a = with_throughput(conf("a", [1.0, 1.01, 0.99], [0.10, 0.11, 0.09]), [500.0, 505.0, 495.0])
    b = with_throughput(conf("b", [1.0, 1.01, 0.99], [0.10, 0.11, 0.09]), [480.0, 530.0, 430.0])  # noisy, lower
    c = with_throughput(conf("c", [1.0, 1.01, 0.99], [0.10, 0.11, 0.09]), [100.0, 101.0, 99.0])
    assert compare(a, c, metrics) == "dominates"  # equal on two, separated on throughput
    assert compare(a, b, metrics) == "tie"  # better by the mean on throughput, intervals overlap
    front = pareto_front([a, b, c])
    points = {p["config_hash"]: p for p in front["points"]}
    assert set(front["front"]) == {"a", "b"} and points["c"]["dominated_by"] == ["a", "b"]
    assert points["b"]["tied_with"][0]["config_hash"] == "a"
    assert points["b"]["tied_with"][0]["cycles_to_separate"] > 3


def test_the_third_objective_is_left_off_where_not_every_configuration_measured_it():
    lean = with_throughput(conf("lean", [1.0, 1.01, 0.99], [0.10, 0.11, 0.09]), [100.0, 101.0, 99.0])
    other = conf("other", [2.0, 2.02, 1.98], [0.20, 0.21, 0.19])
    front = pareto_front([lean, other])
    assert front["throughput"] is None and len(front["points"]) == 2 and front["front"] == ["lean"]
    forced = pareto_front([lean, other], throughput="output_tokens_per_s")  # asked for: the other is left out
    assert [i["config_hash"] for i in forced["left_out"]] == ["other"]


def test_pareto_command_chooses_the_objectives(tmp_path):
    import subprocess
    import sys

    from llenergymeasure.cli.main import cli
    from tests.unit.results_factory import make_result, write_study_dir

    results = [make_result(bs, cycle, window_s=1.0 / bs + 0.01 * cycle, energy_j=100.0 / bs + cycle)
               for bs in (1, 4) for cycle in (1, 2, 3)]
    study_dir = write_study_dir(tmp_path, results)
    runner = CliRunner()

    def run(*args):
        return json.loads(runner.invoke(cli, ["results", "pareto", str(study_dir), "--json", *args]).output)

    assert run()["objectives"][-1] == "output_tokens_per_s"
    assert run("--no-throughput")["throughput"] is None
    assert run("--throughput", "requests_per_s")["throughput"] == "requests_per_s"
    text = runner.invoke(cli, ["results", "pareto", str(study_dir)]).output
    assert "output tokens/s" in text and "output_tokens_per_s:" in text
    proc = subprocess.run([sys.executable, "-m", "llenergymeasure", "results", "pareto", str(study_dir),
                           "--throughput", "ttft_s.p90"], capture_output=True, text=True)
    assert proc.returncode == 2 and "--throughput" in proc.stderr and "Traceback" not in proc.stderr
