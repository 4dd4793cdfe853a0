"""llama.cpp for real: the tiny model's GGUF through llama-cpp-python, the harness and the CLI."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from llenergymeasure.domain import DecodingConfig, ExperimentConfig, ExperimentResult, StudyManifest
from tests.helpers import REPO_ROOT, run_llem, small_measurement

pytest.importorskip("llama_cpp", reason="llama-cpp-python is installed by scripts/setup.sh (llama_cpp extra)")
pytestmark = pytest.mark.slow


def _config(model_dir: Path, **fields) -> ExperimentConfig:
    return ExperimentConfig(model=str(model_dir), engine="llama_cpp", **fields)


def test_gguf_export_generates_the_same_greedy_tokens_as_transformers(tiny_model_dir):
    """Same weights, same tokenizer: llama.cpp and transformers agree token for token (greedy)."""
    import llama_cpp
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    text = "The quick brown fox measures the energy of"
    llm = llama_cpp.Llama(model_path=str(tiny_model_dir / "model.gguf"), n_ctx=256, verbose=False)
    gguf_ids = llm.tokenize(text.encode(), add_bos=True)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    hf_ids = tokenizer(text)["input_ids"]
    assert gguf_ids == hf_ids
    gguf_out = []
    for token in llm.generate(gguf_ids, temp=0.0):
        gguf_out.append(token)
        if len(gguf_out) == 12:
            break
    llm.close()
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    hf_out = model.generate(torch.tensor([hf_ids]), attention_mask=torch.ones(1, len(hf_ids), dtype=torch.long),
                            max_new_tokens=12, min_new_tokens=12, do_sample=False)[0, len(hf_ids):].tolist()
    assert gguf_out == hf_out


def test_adapter_counts_real_tokens_and_times_every_token(tiny_model_dir):
    from llem_harness.engines.base import create_adapter

    adapter = create_adapter(_config(tiny_model_dir, max_output_tokens=6, max_input_tokens=16,
                                     llama_cpp={"n_threads": 1}))
    adapter.load()
    try:
        prompt = adapter.fit_to_tokens("energy per token is what we measure here today " * 4, 10)
        out = adapter.generate_batch([prompt, prompt])
        assert out.start_s <= out.requests[0].start_s < out.requests[1].start_s <= out.end_s
        for req in out.requests:
            assert req.input_tokens == 11  # 10 prompt tokens + BOS
            assert req.output_tokens == len(req.token_times_s) == 6 and req.finished_by == "length"
            assert req.start_s < req.token_times_s[0] and req.token_times_s == sorted(req.token_times_s)
        params = adapter.effective_parameters()
        assert params["batching"] == "sequential" and params["n_gpu_layers"] == 0
        assert params["n_threads"] == params["n_threads_batch"] == 1  # prompt evaluation too, not every core
        assert adapter.model_config_dict()["num_hidden_layers"] == 2
    finally:
        adapter.close()


def _prompt_ending_in_eos(llm, max_tokens: int) -> tuple[str, int]:
    """A corpus line whose greedy continuation reaches EOS within `max_tokens` (found, not assumed)."""
    import llama_cpp

    from llenergymeasure.models.tiny import corpus_lines

    for line in corpus_lines():
        ids = llm.tokenize(line.encode(), add_bos=True)[:24]
        llm.reset()
        for n, token in enumerate(llm.generate(ids, temp=0.0), start=1):
            if llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):
                return llm.detokenize(ids[1:]).decode(), n
            if n == max_tokens:
                break
    pytest.fail("no corpus line reaches EOS greedily; the tiny model changed")


def test_eos_stops_a_request_counts_as_an_output_token_and_matches_transformers(tiny_model_dir):
    from llem_harness.engines.base import create_adapter

    adapter = create_adapter(_config(tiny_model_dir, max_output_tokens=64, max_input_tokens=24))
    adapter.load()
    try:
        prompt, n_eos = _prompt_ending_in_eos(adapter.llm, 64)
        stopped = adapter.generate_batch([prompt]).requests[0]
        adapter.config = adapter.config.model_copy(update={"decoding": DecodingConfig(ignore_eos=True)})
        forced = adapter.generate_batch([prompt]).requests[0]
    finally:
        adapter.close()
    assert (stopped.output_tokens, stopped.finished_by) == (n_eos, "eos")
    assert (forced.output_tokens, forced.finished_by) == (64, "length")
    hf = create_adapter(ExperimentConfig(model=str(tiny_model_dir), max_output_tokens=64, max_input_tokens=24))
    hf.load()
    try:
        hf_request = hf.generate_batch([prompt]).requests[0]
    finally:
        hf.close()
    assert (hf_request.input_tokens, hf_request.output_tokens, hf_request.finished_by) == \
        (stopped.input_tokens, stopped.output_tokens, "eos")


def test_wrong_model_path_fails_with_a_message_naming_the_fix(tiny_model_dir, tmp_path):
    from llem_harness.engines.llama_cpp import find_gguf

    assert find_gguf(str(tiny_model_dir)) == tiny_model_dir / "model.gguf"
    with pytest.raises(FileNotFoundError, match="holds no .gguf file"):
        find_gguf(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="make-tiny"):
        find_gguf(str(tmp_path / "absent.bin"))


def test_misspelt_llama_cpp_option_exits_2_naming_the_field(tiny_model_dir, tmp_path):
    study = {"name": "bad", "base": {"model": str(tiny_model_dir), "engine": "llama_cpp",
                                     "llama_cpp": {"n_gpu_layer": 3}}}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(study))
    proc = run_llem("run", str(path), "--dry-run", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "n_gpu_layers" in proc.stderr and "Traceback" not in proc.stderr


def test_mixed_engine_example_completes_with_both_engines_in_one_summary(tiny_model_dir, tmp_path):
    data = yaml.safe_load((REPO_ROOT / "examples" / "mixed-engines.yaml").read_text())
    data["base"]["model"] = str(tiny_model_dir)
    data["base"]["measurement"] = small_measurement()
    data["base"]["n_prompts"] = 3
    data["results_dir"] = str(tmp_path / "results")
    data["execution"]["n_cycles"] = 1
    path = tmp_path / "mixed.yaml"
    path.write_text(yaml.safe_dump(data))
    proc = run_llem("run", str(path), "--runner", "local", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    study_dir = next((tmp_path / "results").iterdir())
    manifest = StudyManifest.model_validate_json((study_dir / "manifest.json").read_text())
    assert [(e.engine, e.status) for e in manifest.entries] == [("transformers", "completed"),
                                                                 ("llama_cpp", "completed")]
    for entry in manifest.entries:
        result = ExperimentResult.model_validate_json((study_dir / entry.result_file).read_text())
        assert result.n_requests == 3 and result.output_tokens_total > 0
        assert result.metrics.ttft_s.n == 3 and result.metrics.itl_s.n > 0
    summary = (study_dir / "summary.csv").read_text()
    assert "llama_cpp" in summary and "transformers" in summary
    study_result = json.loads((study_dir / "study_result.json").read_text())
    assert study_result["summary"]["completed"] == 2


def test_every_accepted_kv_cache_type_exists_in_llama_cpp():
    import typing

    import llama_cpp

    from llenergymeasure.domain import LlamaCppConfig

    for field in ("type_k", "type_v"):
        literal = typing.get_args(LlamaCppConfig.model_fields[field].annotation)[0]
        for name in typing.get_args(literal):
            assert hasattr(llama_cpp, f"GGML_TYPE_{name.upper()}"), name
