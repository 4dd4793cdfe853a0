"""Host-side cool-down between experiments, driven by a replayed temperature trace."""
from __future__ import annotations

import json

import pytest

from llenergymeasure.study.cooldown import wait_for_cooldown

UUID0 = "GPU-5e5e5e5e-0000-4000-8000-000000000000"


def _cooling_trace(path, start_c=70.0, rate_c_per_s=5.0, duration_s=20.0):
    header = {"format": "llem-nvml-trace", "version": 1, "source": "synthetic", "loop": False,
              "gpus": [{"index": 0, "uuid": UUID0}]}
    rows = [{"t_s": i * 0.5, "gpu": 0, "temperature_c": max(40.0, start_c - rate_c_per_s * i * 0.5)}
            for i in range(int(duration_s / 0.5) + 1)]
    path.write_text("\n".join(json.dumps(r) for r in [header, *rows]) + "\n")
    return path


def test_waits_until_within_delta_of_idle(monkeypatch, tmp_path):
    monkeypatch.setenv("LLEM_NVML_REPLAY", str(_cooling_trace(tmp_path / "cool.jsonl")))
    monkeypatch.setenv("LLEM_NVML_REPLAY_SPEED", "20")
    # 70 °C falling 5 °C/s reaches 43 °C (idle 40 + 3) after ~5.4 trace s = ~0.27 s wall at x20.
    waited_s, reached = wait_for_cooldown(["0"], {UUID0: 40.0}, delta_c=3.0, max_wait_s=5.0, poll_s=0.5)
    assert reached is True
    assert 0.2 <= waited_s <= 1.5


def test_gives_up_at_the_cap(monkeypatch, tmp_path):
    monkeypatch.setenv("LLEM_NVML_REPLAY", str(_cooling_trace(tmp_path / "cool.jsonl", rate_c_per_s=0.0)))
    monkeypatch.setenv("LLEM_NVML_REPLAY_SPEED", "20")
    waited_s, reached = wait_for_cooldown(None, 40.0, delta_c=3.0, max_wait_s=0.3, poll_s=0.5)
    assert reached is False and 0.1 <= waited_s <= 1.0  # the cap, plus what a loaded host adds to a sleep


def test_unknown_idle_temperature_waits_for_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("LLEM_NVML_REPLAY", str(_cooling_trace(tmp_path / "cool.jsonl")))
    assert wait_for_cooldown(["0"], None) == (0.0, None)
