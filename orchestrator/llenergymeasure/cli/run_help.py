"""`llem run --help` in groups (everyday, resume, Docker, Slurm, output) with examples.

Why: `llem run` has some thirty options; listed flat, the three a newcomer needs are lost among the
Slurm ones. The groups are only the help's layout: parsing is click's, unchanged.
"""
from __future__ import annotations

import click

GROUPS = (
    ("Everyday", ("model", "engine", "dataset", "n_prompts", "batch_size", "precision", "max_input_tokens",
                  "max_output_tokens", "cycles", "output", "dry_run", "yes")),
    ("Resume", ("resume_dir", "skip_failed", "wait_for_devices")),
    ("Docker", ("runner", "keep_failed")),
    ("Slurm (--executor slurm)", ("executor", "slurm_partition", "slurm_gpus_per_task", "slurm_time",
                                  "slurm_account", "slurm_array_limit", "slurm_sbatch_args", "wait_slurm")),
    ("Output", ("quiet", "verbose", "help")),
)
EXAMPLES = """\b
Examples:
  llem run examples/quickstart.yaml               a study file
  llem run study.yaml --dry-run                   the plan, its checks and its wall time; runs nothing
  llem run -m models/tiny-llm -n 8 --cycles 3     one experiment from flags, no YAML
  llem run study.yaml --batch-size 8              flags override the YAML (and its sweep of that field)
  llem run --resume results/my-study_<timestamp>  continue an interrupted study
  llem run study.yaml --runner docker             every engine in its image (llem images build ENGINE)
  llem run study.yaml --executor slurm --slurm-partition gpu --wait"""


class GroupedCommand(click.Command):
    """A click command whose options are shown in GROUPS; any option not named lands in "Other"."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        help_option = self.get_help_option(ctx)
        records = {"help" if p is help_option else p.name: p.get_help_record(ctx)
                   for p in self.get_params(ctx) if isinstance(p, click.Option)}
        records = {name: record for name, record in records.items() if record}
        shown: set[str] = set()
        for title, names in GROUPS:
            rows = [records[n] for n in names if n in records]
            shown.update(names)
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)
        rest = [record for name, record in records.items() if name not in shown]
        if rest:
            with formatter.section("Other"):
                formatter.write_dl(rest)
