"""The shared-host cases of bench/fault_campaign.py (bench/fault_campaign_trust.py) against the real CLI
and the real local harness: planted lock links, another user writing into a root study (a throwaway
user, as root), values that would become commands, terminal escapes, CSV formulas, results that are
not their entry's."""
from __future__ import annotations

import os

import pytest

from tests.integration.test_fault_campaign import _campaign_module

pytestmark = pytest.mark.slow


def test_shared_host_cases(tiny_model_dir, tmp_path, capsys):
    module = _campaign_module()
    campaign = module.Campaign(tiny_model_dir, tmp_path / "work", seed=3)
    from fault_campaign_trust import run_trust_cases  # bench/ is on sys.path once the campaign is loaded

    run_trust_cases(campaign)
    module.print_table(campaign.tally)
    print(capsys.readouterr().out)
    t = campaign.tally
    expected = {"shared host: lock file planted as a link", "shared host: lock directory others can write",
                "shared host: run directories owner-only write", "command: newline in results_dir (Slurm script)",
                "command: newline in --slurm-partition", "command: escape sequence in a model path",
                "terminal: escape sequences in llem status", "CSV: formula in an experiment name",
                "identity: an entry pointed at another cycle's result", "identity: --resume reruns it",
                "identity: a foreign run directory collides at rebuild-manifest"}
    two_users = {"shared host: another user's lock directory with a planted link",
                 "shared host: another user replaces result.json"}
    assert expected | two_users <= set(t.faults)
    if os.geteuid() == 0:
        assert not any(t.faults[case].startswith("skipped") for case in two_users), t.faults
    assert t.problems == [] and t.tracebacks == []
    assert (t.results_lost, t.double_counted) == (0, 0)
