"""Bad study files, and the real CLI run on them in-process (shared by tests and bench/fault_campaign.py).

Every input must end in exit 2 with a message (or, for the rare mutation that is still a valid study,
in a normal run), never a traceback, and never leave a study directory behind when refused.
"""
from __future__ import annotations

import contextlib
import io
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

VALID = {"name": "fuzz", "results_dir": "results",
         "base": {"model": "MODEL", "n_prompts": 1, "max_input_tokens": 8, "max_output_tokens": 2,
                  "measurement": {"baseline": {"duration_s": 0.5}, "warmup": {"enabled": False}}},
         "sweep": {"batch_size": [1]}, "execution": {"n_cycles": 1}}
NASTY_VALUES = [None, -1, 0, 10**30, -(10**30), 1e308, float("nan"), "", "x" * 5000, "ünïcødé ✓ 🚀", [], {},
                [1, [2, [3]]], True, "../../etc/passwd", "\x00", {"a": {"b": {"c": 1}}}, "-1", "1e9"]
KEYS = ["model", "n_prompts", "batch_size", "engine", "precision", "max_output_tokens", "dataset", "decoding",
        "measurement", "sweep", "execution", "name", "results_dir", "n_cycles", "base", "experiments", "typo_field"]


def yaml_bomb(depth: int, width: int) -> bytes:
    lines = [f'l0: &l0 ["{"x" * 8}"]']
    for level in range(1, depth + 1):
        lines.append(f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * width) + "]")
    lines += ["name: bomb", f"base: {{model: m, n_prompts: *l{depth}}}"]
    return "\n".join(lines).encode()


def _mutate(rng: random.Random, doc: dict) -> dict:
    doc = yaml.safe_load(yaml.safe_dump(doc))  # deep copy
    for _ in range(rng.randint(1, 3)):
        candidates = [doc, doc.get("base"), doc.get("execution"), doc.get("sweep"),
                      (doc.get("base") or {}).get("measurement") if isinstance(doc.get("base"), dict) else None]
        target = rng.choice([c for c in candidates if isinstance(c, dict)])
        action = rng.random()
        if action < 0.4 and target:
            target[rng.choice(list(target))] = rng.choice(NASTY_VALUES)
        elif action < 0.7:
            target[rng.choice(KEYS)] = rng.choice(NASTY_VALUES)
        elif target:
            target.pop(rng.choice(list(target)))
    return doc


def generate(seed: int, n: int, model: str) -> list[tuple[str, bytes]]:
    """`n` (kind, file bytes) pairs, deterministic for a seed."""
    rng = random.Random(seed)
    base = yaml.safe_load(yaml.safe_dump(VALID).replace("MODEL", model))
    fixed = [("empty", b""), ("binary", bytes(range(256))), ("bom-utf16", "name: x".encode("utf-16")),
             ("scalar", b"42"), ("list", b"- a\n- b\n"), ("bomb", yaml_bomb(8, 9)), ("deep", b"[" * 5000),
             ("tabs", b"name:\tx\n\tbase: {"), ("huge", b"name: x\nbase: {model: m}\n# " + b"x" * (2 << 20))]
    out = list(fixed)
    while len(out) < n:
        roll = rng.random()
        if roll < 0.6:
            try:
                text = yaml.safe_dump(_mutate(rng, base), allow_unicode=True).encode()
            except (ValueError, yaml.YAMLError):
                continue
            out.append(("mutated", text))
        elif roll < 0.75:
            out.append(("random-bytes", bytes(rng.randrange(256) for _ in range(rng.randint(1, 300)))))
        elif roll < 0.9:
            text = "".join(rng.choice("{}[]:,-&*!|>'\"#\n ab1é🚀\t") for _ in range(rng.randint(1, 200)))
            out.append(("random-yaml", text.encode()))
        else:
            out.append(("bomb", yaml_bomb(rng.randint(5, 9), rng.randint(5, 12))))
    return out[:n]


@dataclass
class CliOutcome:
    exit_code: int
    output: str
    elapsed_s: float
    study_dirs_left: int


def run_cli_in_process(args: list[str], cwd: Path) -> CliOutcome:
    """The real `llem` entry point (run_cli) in this process: fast enough for thousands of inputs."""
    from llenergymeasure.cli.errors import run_cli
    from llenergymeasure.cli.main import cli

    out, old_argv, old_cwd = io.StringIO(), sys.argv, os.getcwd()
    sys.argv = ["llem", *args]
    started = time.monotonic()
    code = 0
    try:
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                run_cli(cli, docker=False)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = old_argv
        os.chdir(old_cwd)
    results = cwd / "results"
    left = sum(1 for _ in results.iterdir()) if results.is_dir() else 0
    return CliOutcome(code, out.getvalue(), time.monotonic() - started, left)


def check_bad_input(data: bytes, workdir: Path, dry_run: bool = True) -> list[str]:
    """Problems found when the CLI reads `data` as a study (empty list: it behaved).

    `--dry-run` goes through the same loading, validation and expansion as a real run and stops
    before measuring, so a mutation that happens to be a valid study costs no harness run."""
    path = workdir / "study.yaml"
    path.write_bytes(data)
    outcome = run_cli_in_process(["run", str(path), *(["--dry-run"] if dry_run else [])], workdir)
    problems = []
    if "Traceback" in outcome.output:
        problems.append("traceback")
    if outcome.exit_code == 2:
        if not outcome.output.strip():
            problems.append("exit 2 without a message")
        if outcome.study_dirs_left:
            problems.append("study directory left behind")
    elif outcome.exit_code != 0:
        problems.append(f"exit {outcome.exit_code}: {outcome.output[-300:]}")
    if outcome.elapsed_s > 10:
        problems.append(f"took {outcome.elapsed_s:.1f} s")
    shutil.rmtree(workdir / "results", ignore_errors=True)  # a (rare) valid mutation ran: start clean
    return problems
