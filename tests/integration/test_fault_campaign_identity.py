"""The identity and limit cases of bench/fault_campaign.py (bench/fault_campaign_identity.py) against the real
CLI and the real harness: an impostor on the serving port is refused, not measured; study values that would
override llem's server command or mount over the installed harness are refused; the orphan sweep leaves
another pid namespace alone; the pre-imported worker's start is bounded and its death named."""
from __future__ import annotations

import pytest

from tests.integration.test_fault_campaign import _campaign_module

pytestmark = pytest.mark.slow


def test_identity_and_limit_cases(tiny_model_dir, tmp_path, capsys):
    module = _campaign_module()
    from fault_campaign_identity import IDENTITY_INPUT_CASES, run_identity_cases  # bench/ is on sys.path now

    campaign = module.Campaign(tiny_model_dir, tmp_path / "work", seed=3)
    run_identity_cases(campaign)
    module.print_table(campaign.tally)
    print(capsys.readouterr().out)
    t = campaign.tally
    assert {f"identity input: {name}" for name in IDENTITY_INPUT_CASES} | {
        "impostor on serving.port", "orphan sweep across pid namespaces", "worker's first import blocks",
        "worker killed under a running harness"} <= set(t.faults)
    assert t.problems == [] and t.tracebacks == []
    assert (t.results_lost, t.completed_rerun, t.orphans_left, t.secrets_leaked) == (0, 0, [], [])
