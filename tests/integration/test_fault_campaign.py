"""The short fault campaign (bench/fault_campaign.py) against the real local runner — and the Docker
runner when its image is there: nothing lost, nothing rerun, nothing left running, nothing leaked."""
from __future__ import annotations

import importlib.util
import sys

import pytest

from tests.helpers import REPO_ROOT

pytestmark = pytest.mark.slow


def _campaign_module():
    spec = importlib.util.spec_from_file_location("fault_campaign", REPO_ROOT / "bench" / "fault_campaign.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_short_fault_campaign(tiny_model_dir, tmp_path, capsys):
    campaign_module = _campaign_module()
    campaign = campaign_module.Campaign(tiny_model_dir, tmp_path / "work", seed=1)
    campaign.kill9_points(3)
    campaign.faults()
    from fault_campaign_runtime import run_runtime_cases  # bench/ is on sys.path once the campaign is loaded

    run_runtime_cases(campaign, short=True)
    campaign.bad_inputs(150)
    campaign.secrets()
    campaign_module.print_table(campaign.tally)
    print(capsys.readouterr().out)
    t = campaign.tally
    assert t.kill_points == 3 and t.bad_inputs == 150
    assert set(t.faults) >= {"timeout", "silence", "kill -9 of the harness", "engine error", "SIGINT x1", "SIGINT x2",
                             "kill -9 between result.json and the manifest", "background SIGINT (SIGINT inherited "
                             "ignored)", "background SIGTERM (SIGINT inherited ignored)", "background SIGHUP (SIGINT inherited "
                             "ignored)", "SIGHUP under nohup: ignored, SIGTERM still stops", "made-up GPU id",
                             "kill -9 of llem: its harness stops", "next start stops a dead llem's process and token",
                             "Ctrl-C of a parallel study"}
    assert t.problems == [] and t.bad_input_problems == []
    assert (t.results_lost, t.completed_rerun, t.orphans_left, t.secrets_leaked) == (0, 0, [], [])
    assert (t.double_counted, t.overlapping, t.tracebacks) == (0, [], [])
