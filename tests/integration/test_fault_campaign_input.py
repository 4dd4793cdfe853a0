"""The hostile-input and recovery cases of bench/fault_campaign.py (all of them: they are short) against
the real CLI and the real local harness: every refusal exit 2 naming the field, no traceback, nothing
lost or rerun through a corrupt manifest and a resume from another directory."""
from __future__ import annotations

import pytest

from tests.integration.test_fault_campaign import _campaign_module

pytestmark = pytest.mark.slow


def test_input_and_recovery_cases(tiny_model_dir, tmp_path, capsys):
    module = _campaign_module()
    campaign = module.Campaign(tiny_model_dir, tmp_path / "work", seed=2)
    module.input_cases(campaign)
    campaign.secrets()
    module.print_table(campaign.tally)
    print(capsys.readouterr().out)
    t = campaign.tally
    assert len([f for f in t.faults if f.startswith("input: ")]) == len(module.INPUT_CASES) + 1
    assert {"recovery: corrupt manifest rebuilt", "recovery: resume from another directory",
            "recovery: export/plot warn about an unreadable run",
            "recovery: disk reserve removed at the end"} <= set(t.faults)
    assert t.problems == []
    assert (t.results_lost, t.completed_rerun, t.secrets_leaked) == (0, 0, [])
