"""`serving.server_args` never overrides what llem sets: the address (loopback only), the model, prefix
caching (issue 25: the result would say it was off) and the study's engine options are refused at
validation, exit 2 naming the field; the tables the refusal reads hold every flag of the built commands."""
from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from llenergymeasure.domain import ExperimentConfig
from llenergymeasure.domain.server_args import LLEM_SET_FLAGS, canonical_flag
from llem_harness.serving.servers import server_spec


def _config(engine: str, args: list[str], model: str = "org/model", **extra) -> ExperimentConfig:
    return ExperimentConfig(model=model, engine=engine, mode="serving",
                            serving={"n_requests": 4, "server_args": args}, **extra)


@pytest.mark.parametrize("engine, args, words", [
    ("llama_cpp", ["--host", "0.0.0.0"], "'--host' repeats --host"),
    ("vllm", ["--host=0.0.0.0"], "127.0.0.1 only"),
    ("vllm", ["--hos", "0.0.0.0"], "repeats --host"),                    # argparse abbreviation
    ("llama_cpp", ["--model", "other.gguf"], "set model"),
    ("vllm", ["--served_model_name", "x"], "repeats --served-model-name"),
    ("tensorrt_llm", ["--port", "80"], "set serving.port"),
    ("vllm", ["--enable-prefix-caching"], "prefix caching"),               # issue 25: the contradiction
    ("vllm", ["--enable-prefix"], "prefix caching"),
    ("llama_cpp", ["--llem_prefix_caching", "True"], "prefix caching"),
    ("tensorrt_llm", ["--extra_llm_api_options", "reuse.yaml"], "prefix caching"),
    ("vllm", ["--config", "all.yaml"], "config file"),
    ("vllm", ["-tp", "2"], "--tensor-parallel-size"),
    ("vllm", ["--max-num-seqs", "64"], "vllm: options"),
])
def test_server_args_that_repeat_what_llem_sets_are_refused(engine, args, words):
    with pytest.raises(ValidationError) as info:
        _config(engine, args)
    text = str(info.value)
    assert "serving.server_args" in text and words in text


def test_server_args_that_add_to_the_command_are_kept():
    cfg = _config("vllm", ["--max-num-batched-tokens", "512", "--model-impl", "vllm"])
    assert cfg.serving.server_args[-1] == "vllm"
    assert _config("tensorrt_llm", ["--max-num-seqs", "8"]).serving.server_args == ["--max-num-seqs", "8"]


def test_the_refusal_reaches_the_cli_as_exit_2_naming_the_field(tmp_path):
    (tmp_path / "model.gguf").write_bytes(b"")
    study = tmp_path / "study.yaml"
    study.write_text(f"name: s\nbase: {{model: {tmp_path}, engine: llama_cpp, mode: serving,\n"
                     "  serving: {n_requests: 4, server_args: ['--host', '0.0.0.0']}}\n")
    proc = subprocess.run([sys.executable, "-c", "from llenergymeasure.cli.main import main; main()", "run",
                           str(study), "--dry-run"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "serving.server_args" in proc.stdout + proc.stderr and "Traceback" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("engine", sorted(LLEM_SET_FLAGS))
def test_every_flag_of_the_built_command_is_in_the_refusal_table(engine, tmp_path):
    """The harness builds the command; the domain refuses its flags: the two may not drift apart."""
    (tmp_path / "model.gguf").write_bytes(b"")
    options = {"llama_cpp": {"n_ctx": 512, "n_threads": 2, "n_batch": 8, "flash_attn": True, "type_k": "f16",
                             "type_v": "f16", "n_gpu_layers": 0},
               "vllm": {"gpu_memory_utilization": 0.5, "max_num_seqs": 4, "max_model_len": 64, "enforce_eager": True,
                        "kv_cache_dtype": "auto", "enable_chunked_prefill": False, "tensor_parallel_size": 1,
                        "quantization": "awq"},
               "tensorrt_llm": {}}[engine]
    cfg = ExperimentConfig(model=str(tmp_path), engine=engine, mode="serving", serving={"n_requests": 4},
                           **{engine: options})
    flags = {canonical_flag(a) for a in server_spec(cfg, 9000, files_dir=tmp_path).argv} - {""}
    assert flags <= LLEM_SET_FLAGS[engine], flags - LLEM_SET_FLAGS[engine]
