"""The figures of bench/gpu_validation.py, computed from the phases of a session trace.

The trace (tests/fixtures/traces/rehearsal_session.jsonl) is synthetic and marks its phases in
its header, like the traces the validation records on a GPU; the same tests run on a recorded
one by pointing SESSION at it.
"""
from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest

from llem_harness.measurement.devices import GpuSample
from llem_harness.measurement.devices.replay import read_trace
from llem_harness.measurement.sampler import Tick
from tests.helpers import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "bench"))
from gpu_validation_stats import (JPT_CV_MAX, agreement, cooldown_time, cv_interval,  # noqa: E402
                                  cycles_to_decide, idle_stats, jpt_summary, overhead_verdict, pytest_verdict,
                                  update_periods)

SESSION = REPO_ROOT / "tests" / "fixtures" / "traces" / "rehearsal_session.jsonl"


def phase(name: str, scale_instant: float = 1.0):
    header, rows = read_trace(SESSION)
    t0, t1 = header["phases"][name]
    rows = [r for r in rows if t0 <= r["t_s"] <= t1]
    ticks = [Tick(r["t_s"], [GpuSample(**{k: v for k, v in r.items() if k != "gpu"})]) for r in rows]
    for tk in ticks:
        tk.samples[0].power_instant_w *= scale_instant
    return SimpleNamespace(t0=t0, t1=t1, e0=rows[0]["energy_mj"], e1=rows[-1]["energy_mj"], ticks=ticks)


def test_three_way_agreement_on_a_steady_window():
    ag = agreement(phase("steady"))
    assert ag["counter_j"] == pytest.approx(450 * 32, rel=0.01)
    assert ag["instant_over_counter"] == pytest.approx(1.0, abs=0.005) and ag["pass"] is True
    assert ag["avg_over_counter"] == pytest.approx(1.0, abs=0.01)


def test_agreement_fails_when_instant_power_reads_10_percent_high():
    ag = agreement(phase("steady", scale_instant=1.1))
    assert ag["instant_over_counter"] == pytest.approx(1.1, abs=0.01) and ag["pass"] is False


def test_agreement_without_a_counter_has_no_ratio_and_no_verdict():
    ph = phase("steady")
    ph.e0 = ph.e1 = None
    ag = agreement(ph)
    assert ag["counter_j"] is None and ag["instant_over_counter"] is None and ag["pass"] is None
    assert ag["instant_trapezoid_j"] > 0


def test_idle_statistics_and_counter_power():
    idle = idle_stats(phase("idle"))
    assert idle["power_instant_w"]["mean"] == pytest.approx(60.0, abs=0.2)
    assert 0 < idle["power_instant_w"]["std"] < 2
    assert idle["counter_mean_power_w"] == pytest.approx(60.0, abs=0.5)
    assert idle["temperature_c_mean"] == pytest.approx(32.0)


def test_cooldown_time_to_target_and_not_reached():
    done = cooldown_time(phase("cooldown"), target_c=34.0, max_s=60.0)
    assert done["reached"] and 35 < done["time_to_idle_s"] < 45
    never = cooldown_time(phase("cooldown"), target_c=20.0, max_s=60.0)
    assert never["reached"] is False and never["time_to_idle_s"] is None


def test_update_periods_of_the_readings():
    periods = update_periods(phase("steady"))
    assert periods["power_instant_w"]["median_change_interval_ms"] == pytest.approx(100.0, abs=1)
    assert periods["energy_mj"]["smallest_step_mj"] > 0


def test_overhead_verdict_on_the_mean_and_its_interval():
    ok = overhead_verdict([0.999, 0.998, 1.000, 0.999])                 # 0.1 % loss, interval well under 0.5 %
    assert ok["verdict"] == "PASS" and ok["overhead_ci95_pct"][1] <= 0.5
    assert overhead_verdict([0.990, 0.991, 0.989, 0.990])["verdict"] == "FAIL"   # 1 % loss, precise
    noisy = overhead_verdict([1.4, 0.7, 1.2, 0.9])                      # CPU noise: the interval spans 0.5 %
    assert noisy["verdict"] == "INCONCLUSIVE" and noisy["overhead_ci95_pct"][0] < 0.5 < noisy["overhead_ci95_pct"][1]
    assert overhead_verdict([0.99])["verdict"] is None                  # one pair: no interval, no verdict


def test_overhead_verdict_at_the_boundary():
    """The same mean loss of 0.3 %: PASS when tight, INCONCLUSIVE when the interval reaches past 0.5 %;
    a mean loss of 0.7 % FAILs only when the interval's best end is still over 0.5 %."""
    assert overhead_verdict([0.9969, 0.9971, 0.9970, 0.9970])["verdict"] == "PASS"
    assert overhead_verdict([0.9940, 1.0000, 0.9960, 0.9980])["verdict"] == "INCONCLUSIVE"
    assert overhead_verdict([0.9929, 0.9931, 0.9930, 0.9930])["verdict"] == "FAIL"
    assert overhead_verdict([0.9900, 0.9960, 0.9920, 0.9940])["verdict"] == "INCONCLUSIVE"


def test_cv_interval_is_the_chi_square_interval():
    low, high = cv_interval(0.01, 5)       # chi2(4): 0.4844 and 11.143 at 2.5 % / 97.5 %
    assert high == pytest.approx(0.01 * (4 / 0.484419) ** 0.5, rel=1e-4)
    assert low == pytest.approx(0.01 * (4 / 11.143287) ** 0.5, rel=1e-4)
    assert cv_interval(0.01, 1) is None


def _values_with_cv(cv: float, n: int) -> list[float]:
    """n values of mean 1 and sample CV exactly `cv` (alternating around the mean, n even; odd: a 1 added)."""
    half = [1.0 + d for d in (-1, 1)] * (n // 2) + ([1.0] * (n % 2))
    import statistics
    s = statistics.stdev(half)
    return [1.0 + (v - 1.0) * cv / s for v in half]


def test_jpt_repeatability_three_outcomes_at_the_boundary():
    """n = 5: the CV's 95 % upper bound is 2.87 x the sample CV and its lower bound 0.60 x, so a sample CV
    of 0.69 % passes (bound 1.98 %), 0.71 % is undecided (bound 2.04 %), and only over 3.34 % fails."""
    for cv, verdict in ((0.0069, "PASS"), (0.0071, "INCONCLUSIVE"), (0.0200, "INCONCLUSIVE"),
                        (0.0330, "INCONCLUSIVE"), (0.0340, "FAIL")):
        s = jpt_summary(_values_with_cv(cv, 5))
        assert s["cv"] == pytest.approx(cv, rel=1e-9) and s["verdict"] == verdict, (cv, s)
        assert s["cv_ci95"][0] < s["cv"] < s["cv_ci95"][1]


def test_a_sample_cv_under_the_limit_is_not_a_pass_on_its_own():
    """The old rule (sample CV <= 2 %) passed this; the bound says 5 cycles cannot tell, and how many could."""
    s = jpt_summary(_values_with_cv(0.015, 5))
    assert s["cv"] < JPT_CV_MAX and s["verdict"] == "INCONCLUSIVE"
    assert s["n_to_decide"] == cycles_to_decide(0.015) and 15 < s["n_to_decide"] < 40
    low, high = cv_interval(0.015, s["n_to_decide"])
    assert high <= JPT_CV_MAX < cv_interval(0.015, s["n_to_decide"] - 1)[1]
    assert cycles_to_decide(0.03) is not None and cv_interval(0.03, cycles_to_decide(0.03))[0] > JPT_CV_MAX
    assert cycles_to_decide(JPT_CV_MAX) is None      # at the limit no n decides


def test_jpt_summary_figures():
    steady = jpt_summary([1.00, 1.001, 0.999, 1.00, 1.00])
    assert steady["n"] == 5 and steady["verdict"] == "PASS" and steady["n_to_decide"] is None
    assert steady["ci95"][0] < 1.0 < steady["ci95"][1]
    assert jpt_summary([1.0, 1.5, 1.2])["verdict"] == "FAIL"
    one = jpt_summary([1.0])
    assert one["verdict"] is None and one["cv_ci95"] is None


@pytest.mark.parametrize("counts, verdict", [
    ({"passed": 9, "failed": 0, "errors": 0, "skipped": 0}, "PASS"),
    ({"passed": 0, "failed": 0, "errors": 0, "skipped": 9}, "INCONCLUSIVE"),   # every test skipped: not a pass
    ({"passed": 8, "failed": 0, "errors": 0, "skipped": 1}, "INCONCLUSIVE"),   # one skipped proved nothing
    ({"passed": 8, "failed": 1, "errors": 0, "skipped": 0}, "FAIL"),
    ({"passed": 0, "failed": 0, "errors": 1, "skipped": 8}, "FAIL"),
    ({}, None),                                                               # no report at all
])
def test_pytest_gpu_verdict(counts, verdict):
    assert pytest_verdict(counts) == verdict


class _FakeNvml:
    """A stand-in for pynvml (no GPU here): some queries work, one is refused as a container runtime
    may refuse it, one function is missing as in an old nvidia-ml-py. Only the environment stage's
    "record, never crash" contract is tested with it."""

    NVML_SUCCESS, NVML_CLOCK_SM, NVML_CLOCK_MEM, NVML_TEMPERATURE_GPU = 0, 1, 2, 0
    NVML_FI_DEV_POWER_INSTANT, NVML_FI_DEV_POWER_AVERAGE = 186, 185
    NVML_VALUE_TYPE_DOUBLE, NVML_VALUE_TYPE_UNSIGNED_INT = 0, 1
    NVML_VALUE_TYPE_UNSIGNED_LONG, NVML_VALUE_TYPE_UNSIGNED_LONG_LONG, NVML_VALUE_TYPE_SIGNED_LONG_LONG = 2, 3, 5

    def __init__(self):
        self.shut = False

    def nvmlInit(self): pass
    def nvmlShutdown(self): self.shut = True
    def nvmlSystemGetDriverVersion(self): return b"570.00"
    def nvmlSystemGetNVMLVersion(self): return "12.570"
    def nvmlSystemGetCudaDriverVersion(self): return 12080
    def nvmlDeviceGetCount(self): return 1
    def nvmlDeviceGetHandleByIndex(self, i): return object()
    def nvmlDeviceGetName(self, h): return b"NVIDIA H200"
    def nvmlDeviceGetUUID(self, h): return "GPU-0"
    def nvmlDeviceGetEnforcedPowerLimit(self, h): return 700000
    def nvmlDeviceGetPersistenceMode(self, h): return 1
    def nvmlDeviceGetMigMode(self, h): return (0, 0)
    def nvmlDeviceGetClockInfo(self, h, which): return 1980 if which == 1 else 3201
    def nvmlDeviceGetPowerUsage(self, h): return 95000

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        raise RuntimeError("NVMLError_NoPermission: Insufficient Permissions")

    def nvmlDeviceGetFieldValues(self, h, ids):
        ok = SimpleNamespace(nvmlReturn=0, valueType=1, value=SimpleNamespace(dVal=96500.0, uiVal=96500, ulVal=96500,
                                                                          ullVal=96500, sllVal=96500))
        return [ok if i == self.NVML_FI_DEV_POWER_INSTANT else SimpleNamespace(nvmlReturn=3) for i in ids]


def test_environment_records_refused_and_missing_queries_without_crashing(monkeypatch):
    from gpu_validation_env import environment_nvml

    fake = _FakeNvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    env = environment_nvml()
    assert env["gpu_name"] == "NVIDIA H200" and env["driver_version"] == "570.00" and env["mig_mode"] == 0
    assert env["power_limit_mw"] == 700000 and env["sm_clock_mhz"] == 1980 and env["persistence_mode"] == 1
    assert "no nvmlDeviceGetApplicationsClock" in env["errors"]["sm_application_clock_mhz"]
    readings = env["readings"]
    assert readings["energy_counter"]["readable"] is False and "NoPermission" in readings["energy_counter"]["error"]
    assert readings["power_instant_field"] == {"readable": True, "value_w": 96.5}
    assert readings["power_average_field"]["readable"] is False
    assert readings["power_usage"]["value_w"] == 95.0
    assert fake.shut
