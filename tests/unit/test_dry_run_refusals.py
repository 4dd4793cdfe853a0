"""`llem run --dry-run` refuses what the real run would fail on after starting, in one line naming
the field and the fix (exit 2), and keeps a plan of absurd size readable and guarded.

The model is a directory holding only a config.json: the dry-run reads no weights, and the checks
read the config (context length) as they would a real model's."""
from __future__ import annotations

import json
import time

import pytest
import yaml

from tests.helpers import run_llem


def _model(tmp_path, context: int = 512):
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text(json.dumps({
        "model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
        "intermediate_size": 128, "vocab_size": 512, "max_position_embeddings": context}))
    return str(model)


def _study(tmp_path, base: dict, **extra):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({"name": "s", "base": {"n_prompts": 8, "max_input_tokens": 32,
                                                          "max_output_tokens": 16, **base},
                                    "results_dir": str(tmp_path / "results"), **extra}))
    return path


def _dry_run(path, env=None):
    start = time.perf_counter()
    proc = run_llem("run", str(path), "--dry-run", env=env)
    return proc, time.perf_counter() - start


def _refused_lines(proc) -> list[str]:
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr
    assert "Traceback" not in proc.stderr
    return [line.strip() for line in proc.stderr.splitlines()[1:]]


def _no_gpu() -> bool:
    from llenergymeasure.runners.gpu_presence import visible_nvidia_gpus

    return visible_nvidia_gpus()[0] == 0


@pytest.mark.skipif(not _no_gpu(), reason="this host has an NVIDIA GPU: CUDA options are valid here")
@pytest.mark.parametrize("option, field", [({"device": "cuda"}, "transformers.device: cuda"),
                                           ({"attn_implementation": "flash_attention_2"},
                                            "transformers.attn_implementation: flash_attention_2")])
def test_cuda_only_transformers_options_are_refused_without_a_gpu(tmp_path, option, field):
    proc, _ = _dry_run(_study(tmp_path, {"model": _model(tmp_path), "transformers": option}))
    lines = _refused_lines(proc)
    assert len(lines) == 1 and field in lines[0] and "needs an NVIDIA GPU" in lines[0], lines
    assert "set transformers.device: auto" in lines[0]


def test_a_hub_id_neither_local_nor_cached_is_refused_saying_why(tmp_path):
    path = _study(tmp_path, {"model": "models/does-not-exist"})
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    proc, _ = _dry_run(path, env={"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)})
    (line,) = _refused_lines(proc)
    assert "model: 'models/does-not-exist' is neither a local directory nor in the Hugging Face cache" in line
    assert "HF_HUB_OFFLINE=1" in line
    # the hub not answering (a closed local port stands for it): said so, within the probe's time
    proc, _ = _dry_run(path, env={"HF_HUB_OFFLINE": "0", "HF_HUB_CACHE": str(cache),
                                  "HF_ENDPOINT": "http://127.0.0.1:9"})
    (line,) = _refused_lines(proc)
    assert "the hub cannot be reached from this host (127.0.0.1:9" in line
    # once in the cache, the same id passes (and its config.json is read from there)
    snapshot = cache / "models--models--does-not-exist" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps({"max_position_embeddings": 40}))
    proc, _ = _dry_run(path, env={"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)})
    (line,) = _refused_lines(proc)  # now the context check reads the cached config: 32 + 16 > 40
    assert "more than the model's context length 40 (max_position_embeddings)" in line


def test_prompt_and_output_beyond_the_context_and_batch_beyond_the_prompts_are_refused(tmp_path):
    path = _study(tmp_path, {"model": _model(tmp_path, context=40)}, sweep={"batch_size": [4, 16]})
    proc, elapsed = _dry_run(path)
    lines = sorted(_refused_lines(proc))
    assert len(lines) == 2, lines
    assert lines[0].startswith("configuration #2: batch_size is larger than n_prompts (first: batch_size 16, "
                               "n_prompts 8)") and "lower batch_size" in lines[0]
    assert lines[1].startswith("every configuration: max_input_tokens + max_output_tokens is more than the model's "
                               "context length 40 (max_position_embeddings) (first: 32 + 16 = 48 tokens)")
    assert "lower max_input_tokens" in lines[1]
    assert elapsed < 5, elapsed  # a validator: seconds at most even on a loaded machine (< 1 s when quiet)


def test_vllm_cpu_memory_share_above_the_free_memory_is_named(monkeypatch):
    """vLLM's CPU build asked for its default 0.92 of host memory where less is free."""
    from llenergymeasure.cli import dry_run_scan

    monkeypatch.setattr(dry_run_scan, "memory_bytes", lambda: (16 * 2**30, 8 * 2**30))
    monkeypatch.setattr("llenergymeasure.runners.gpu_presence.visible_nvidia_gpus", lambda: (0, "no driver"))
    scan = dry_run_scan.PlanScan(None)
    scan.uses[("vllm_memory", dry_run_scan.VLLM_DEFAULT_MEMORY_UTILIZATION)] = [0, 1]
    (line,) = scan.environment_problems({"vllm": "local"}, 2)
    assert line.startswith("every configuration: vllm.gpu_memory_utilization: 0.92 of this host's 16.0 GiB is "
                           "14.7 GiB, more than the 8.0 GiB free")
    assert line.endswith("set vllm.gpu_memory_utilization to at most 0.5")
    scan.uses = {("vllm_memory", 0.4): [0]}
    assert scan.environment_problems({"vllm": "local"}, 2) == []


def test_a_large_plan_is_summarised_warned_about_and_needs_yes(tmp_path):
    model = _model(tmp_path)
    path = _study(tmp_path, {"model": model}, sweep={"random_seed": list(range(501))},
                  execution={"n_cycles": 2})
    proc, _ = _dry_run(path)
    assert proc.returncode == 0, proc.stderr
    assert "501 configurations (501 valid, 0 skipped) × 2 cycles = 1,002 runs" in proc.stdout
    assert "  #20: " in proc.stdout and "  #21: " not in proc.stdout
    assert "… 481 more configurations (0 of them skipped); --verbose lists every one" in proc.stdout
    assert "warning: 1,002 runs, more than execution.max_runs (1,000); a real run starts only with --yes" \
        in proc.stdout
    assert len(proc.stdout.splitlines()) < 80
    verbose = run_llem("run", str(path), "--dry-run", "--verbose")
    assert "  #501: " in verbose.stdout
    real = run_llem("run", str(path))
    assert real.returncode == 2 and "Traceback" not in real.stderr
    (line,) = real.stderr.strip().splitlines()
    assert line.split(": ", 1)[1].startswith("execution.max_runs: the study plans 1,002 runs, more than 1,000")
    assert "--yes" in line and "execution.max_runs: 1002" in line
    assert not (tmp_path / "results").exists()


def test_dry_run_numbers_configurations_from_1_as_every_other_command(tmp_path):
    path = _study(tmp_path, {"model": _model(tmp_path)}, sweep={"batch_size": [1, 2]},
                  execution={"n_cycles": 2, "cycle_order": "sequential"})
    proc, _ = _dry_run(path)
    assert proc.returncode == 0, proc.stderr
    assert "  #1: transformers" in proc.stdout and "  #2: transformers" in proc.stdout
    assert "#1c1 #1c2 #2c1 #2c2" in proc.stdout and "#0" not in proc.stdout
