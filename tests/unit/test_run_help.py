"""`llem run --help` shows its options in groups, with examples; parsing is unchanged."""
from __future__ import annotations

from tests.helpers import run_llem


def test_run_help_groups_its_options_and_shows_examples():
    out = run_llem("run", "--help").stdout
    heads = ["Everyday:", "Resume:", "Docker:", "Slurm (--executor slurm):", "Output:", "Examples:"]
    positions = [out.index(head) for head in heads]
    assert positions == sorted(positions), out
    everyday = out[positions[0]:positions[1]]
    assert "--model" in everyday and "--dry-run" in everyday and "--slurm-partition" not in everyday
    assert "--slurm-partition" in out[positions[3]:positions[4]]
    assert "Other:" not in out  # every option has its group
    assert "llem run study.yaml --dry-run" in out
