"""kill -9 of `llem-docker` mid-run, on the real daemon and image: its container and token directory go
at once (its watchdog); with the watchdog killed too, the next start — local runner — stops the
container before measuring and says so (bench/fault_campaign_runtime.py, the `--docker` cases)."""
from __future__ import annotations

import importlib.util
import sys

import pytest

from tests.helpers import REPO_ROOT

pytestmark = pytest.mark.slow


def test_kill9_of_llem_docker_leaves_no_container_or_token(llem_image, tiny_model_dir, tmp_path):
    spec = importlib.util.spec_from_file_location("fault_campaign", REPO_ROOT / "bench" / "fault_campaign.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    from fault_campaign_runtime import docker_kill9_cleans_up

    campaign = module.Campaign(tiny_model_dir, tmp_path / "work", docker=True)
    docker_kill9_cleans_up(campaign)
    campaign.secrets()
    module.print_table(campaign.tally)
    t = campaign.tally
    assert len(t.faults) == 2 and t.problems == [], t.faults
    assert (t.orphans_left, t.overlapping, t.secrets_leaked, t.tracebacks) == ([], [], [], [])
