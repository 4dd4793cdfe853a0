"""llem's serving figures against `vllm bench serve` on vLLM's CPU build (bench/serving_crosscheck.py):
3 interleaved repetitions a side, 48 requests at concurrency 4, 32 in / 32 out, ignore_eos. Required in
CI (LLEM_REQUIRE_VLLM=1); skips without the vLLM environment elsewhere. What it prints (each figure's
llem / vLLM ratio with both sides' spread) is the check; the bounds asserted here are the ones a
shared machine cannot blur: both sides measured every figure, every request succeeded, the server
ran in the load generator's session and autogroup, and no side is off by the factor the server's
own session gave (TTFT x9, TPOT 0, most responses arriving whole)."""
from __future__ import annotations

import json
import os
import subprocess
import time

from tests.helpers import REPO_ROOT
from tests.vllm_support import vllm_python


def test_llem_serving_figures_match_vllm_bench_serve(tiny_model_dir, tmp_path):
    python = vllm_python()
    out = tmp_path / "crosscheck.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO_ROOT / "orchestrator"), str(REPO_ROOT / "harness"), os.environ.get("PYTHONPATH", "")])}
    started = time.monotonic()
    proc = subprocess.run([python, str(REPO_ROOT / "bench" / "serving_crosscheck.py"), "--model", str(tiny_model_dir),
                           "--reps", "3", "--json", str(out)], capture_output=True, text=True, env=env,
                          timeout=3600, cwd=REPO_ROOT)
    print(proc.stdout[-4000:])
    print(f"serving crosscheck wall time: {time.monotonic() - started:.0f} s")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert len(data["pairs"]) == 3
    for llem, vllm in data["pairs"]:
        assert llem["n_ok"] == vllm["n_ok"] == 48
        assert all(v is not None and v > 0 for v in llem["figures"].values()), llem
        assert all(v is not None and v > 0 for v in vllm["figures"].values()), vllm
        start = llem["server_start"]
        assert start["same_session_as_load_generator"] and start["own_process_group"]
        assert start["same_autogroup_as_load_generator"] in (True, None)
        assert llem["bunched_responses"] <= 48 // 2, llem
    for row in data["summary"]:
        assert 0.2 <= row["ratio_median"] <= 5.0, row
    assert "llem/vLLM median [range]" in proc.stdout
