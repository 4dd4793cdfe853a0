"""The serving reader cases of bench/fault_campaign.py (bench/fault_campaign_reader.py): the real load generator
against a local server that answers one request in four with a wrong-shaped event, a non-hex chunk size or an
endless line. Each bad answer fails its own request only; the endless line is cut at the reader's line bound."""
from __future__ import annotations

from tests.integration.test_fault_campaign import _campaign_module


def test_reader_cases(tmp_path, capsys):
    module = _campaign_module()
    from fault_campaign_reader import BAD_EVENTS, run_reader_cases  # bench/ is on sys.path now

    campaign = module.Campaign(tmp_path / "no-model", tmp_path / "work")  # the reader cases load no model
    run_reader_cases(campaign)
    module.print_table(campaign.tally)
    print(capsys.readouterr().out)
    t = campaign.tally
    names = {f"reader: {name}" for name in BAD_EVENTS} | {"reader: chunk size not hex",
                                                          "reader: 200 answer without a newline"}
    assert names == set(t.faults)
    assert t.problems == [], t.problems
    assert all(seen.startswith("6 ok / 2 failed") for seen in t.faults.values()), t.faults
    assert "the client cut the server" in t.faults["reader: 200 answer without a newline"]
