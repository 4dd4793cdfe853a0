"""vLLM / TensorRT-LLM adapters without the engines: config → engine arguments, checked against the
parameter names of the engines' real APIs (tests/fixtures/engine_signatures/, provenance inside)."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from llem_harness.engines import tensorrt_llm as trt
from llem_harness.engines import vllm
from llem_harness.engines.base import create_adapter
from llenergymeasure.domain import ExperimentConfig

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "engine_signatures"
VLLM = json.loads((FIXTURES / "vllm-0.33.0.json").read_text())["names"]
TRT = json.loads((FIXTURES / "tensorrt_llm-1.2.json").read_text())["names"]

FULL_VLLM = {"gpu_memory_utilization": 0.8, "max_num_seqs": 64, "max_model_len": 4096, "enforce_eager": True,
             "kv_cache_dtype": "fp8", "enable_prefix_caching": False, "enable_chunked_prefill": True,
             "tensor_parallel_size": 2, "quantization": "awq"}
FULL_TRT = {"max_batch_size": 64, "max_num_tokens": 8192, "tensor_parallel_size": 2,
            "kv_cache_free_gpu_memory_fraction": 0.7, "quantization": "fp8"}


@pytest.mark.parametrize("decoding", [{}, {"strategy": "sample", "temperature": 0.7, "top_p": 0.9, "top_k": 20},
                                      {"ignore_eos": True}])
def test_every_vllm_argument_is_a_real_vllm_0_33_parameter(decoding):
    cfg = ExperimentConfig(model="org/m", engine="vllm", vllm=FULL_VLLM, decoding=decoding, precision="bf16")
    kwargs = vllm.engine_kwargs(cfg)
    accepted = set(VLLM["LLM.__init__"]) | set(VLLM["EngineArgs"])  # LLM(**kwargs) forwards to EngineArgs
    assert set(kwargs) <= accepted, set(kwargs) - accepted
    assert kwargs["disable_log_stats"] is False  # or RequestOutput.metrics stays None offline
    assert {k: kwargs[k] for k in FULL_VLLM} == FULL_VLLM and kwargs["dtype"] == "bfloat16"
    sampling = vllm.sampling_kwargs(cfg)
    assert set(sampling) <= set(VLLM["SamplingParams"]), set(sampling) - set(VLLM["SamplingParams"])
    assert sampling["max_tokens"] == cfg.max_output_tokens
    assert {"first_token_ts", "last_token_ts", "arrival_time", "first_token_latency"} <= set(VLLM["RequestStateStats"])
    assert {"prompt_token_ids", "outputs", "metrics"} <= set(VLLM["RequestOutput.__init__"])
    assert {"token_ids", "finish_reason"} <= set(VLLM["CompletionOutput"])


def test_vllm_greedy_means_temperature_zero_and_unset_options_stay_engine_defaults():
    cfg = ExperimentConfig(model="org/m", engine="vllm")
    assert vllm.sampling_kwargs(cfg)["temperature"] == 0.0
    # enable_prefix_caching is always explicit: the study's prefix_caching (default off), not vLLM's default (on)
    assert set(vllm.engine_kwargs(cfg)) == {"model", "dtype", "seed", "disable_log_stats", "enable_prefix_caching"}


def test_vllm_request_timings_use_vllm_clocks_and_never_a_batch_total():
    stats = SimpleNamespace(arrival_time=1000.0, first_token_latency=0.25, first_token_ts=50.0, last_token_ts=51.5)
    timing = vllm.request_timings(stats, to_perf=-990.0)
    assert timing["start_s"] == 10.0 and timing["first_token_s"] == 10.25 and timing["last_token_s"] == 11.75
    assert "not every token" in timing["timing_unavailable_reason"]
    missing = vllm.request_timings(None, to_perf=0.0)
    assert set(missing) == {"timing_unavailable_reason"}


@pytest.mark.parametrize("decoding", [{}, {"strategy": "sample", "temperature": 0.7, "top_p": 0.9, "top_k": 20},
                                      {"ignore_eos": True}])
def test_every_tensorrt_llm_argument_is_a_real_parameter(decoding):
    cfg = ExperimentConfig(model="org/m", engine="trtllm", tensorrt_llm=FULL_TRT, decoding=decoding)
    kwargs = trt.engine_kwargs(cfg)
    assert set(kwargs) | {"kv_cache_config", "quant_config"} <= set(TRT["LLM.__init__"])
    assert "free_gpu_memory_fraction" in TRT["KvCacheConfig"] and "quant_algo" in TRT["QuantConfig"]
    sampling = trt.sampling_kwargs(cfg)
    assert set(sampling) <= set(TRT["SamplingParams"]), set(sampling) - set(TRT["SamplingParams"])
    assert sampling["return_perf_metrics"] is True


@pytest.mark.parametrize("name", ["fp8", "fp8_block_scales", "nvfp4", "w4a16_awq", "w4a8_awq", "w8a16", "w4a16",
                                  "w8a8_sq_per_channel"])
def test_every_accepted_tensorrt_llm_quantization_is_a_real_quant_algo(name):
    assert name.upper() in TRT["QuantAlgo"]
    ExperimentConfig(model="m", engine="tensorrt_llm", tensorrt_llm={"quantization": name})


def test_tensorrt_llm_timings_come_from_its_perf_metrics():
    from datetime import timedelta

    metrics = SimpleNamespace(timing_metrics=SimpleNamespace(
        arrival_time=timedelta(seconds=5), first_token_time=timedelta(seconds=5.5), last_token_time=timedelta(seconds=7)))
    timing = trt.request_timings(SimpleNamespace(request_perf_metrics=metrics), mono_to_perf=1.0)
    assert (timing["start_s"], timing["first_token_s"], timing["last_token_s"]) == (6.0, 6.5, 8.0)
    assert set(trt.request_timings(SimpleNamespace(request_perf_metrics=None), 0.0)) == {"timing_unavailable_reason"}


@pytest.mark.parametrize("section, bad", [("vllm", {"gpu_memory_utilisation": 0.5}), ("vllm", {"max_num_seqs": 0}),
                                          ("tensorrt_llm", {"kv_cache_free_gpu_memory_fraction": 1.5}),
                                          ("tensorrt_llm", {"quantization": "int3"})])
def test_engine_sections_are_validated(section, bad):
    with pytest.raises(ValidationError):
        ExperimentConfig(model="m", engine=section, **{section: bad})


def test_adapters_are_created_without_importing_their_engine():
    for engine, cls in (("vllm", vllm.VllmAdapter), ("tensorrt_llm", trt.TensorRtLlmAdapter)):
        adapter = create_adapter(ExperimentConfig(model="m", engine=engine))
        assert isinstance(adapter, cls) and adapter.name == engine


def test_vllm_shaped_outputs_become_requests_with_real_counts():
    from llem_harness.engines.base import completion_requests

    outputs = [SimpleNamespace(prompt_token_ids=[1, 2, 3], outputs=[SimpleNamespace(token_ids=[7, 8, 2],
                                                                                    finish_reason="stop")]),
               SimpleNamespace(prompt_token_ids=[1], outputs=[SimpleNamespace(token_ids=[5] * 4,
                                                                              finish_reason="length")])]
    requests = completion_requests(outputs, lambda out, c: {"timing_unavailable_reason": "none here"})
    assert [(r.input_tokens, r.output_tokens, r.finished_by) for r in requests] == [(3, 3, "eos"), (1, 4, "length")]
    assert all(r.timing_unavailable_reason == "none here" for r in requests)
