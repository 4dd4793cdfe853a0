"""The offline tiny model: real build, real from_pretrained, real generation (CPU, seconds)."""
from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from llenergymeasure.cli.models import models_group  # noqa: E402
from llenergymeasure.errors import ConfigError  # noqa: E402
from llenergymeasure.models import is_tiny_model, make_tiny_model, read_provenance  # noqa: E402


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """Built once under a restrictive umask, so the chmod to world-readable is really exercised."""
    old_umask = os.umask(0o077)
    try:
        return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny", seed=0)
    finally:
        os.umask(old_umask)


def _mtimes(directory):
    return {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}


def test_loads_and_generates_a_left_padded_batch(tiny_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_dir).eval()
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    cfg = model.config
    assert cfg.model_type == "llama" and cfg.num_hidden_layers == 2 and cfg.hidden_size == 128
    assert (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.intermediate_size) == (2, 1, 256)
    assert cfg.hidden_size // cfg.num_attention_heads == 64  # head_dim vLLM's CPU attention accepts
    assert cfg.tie_word_embeddings is False and cfg.max_position_embeddings == 512
    assert cfg.vocab_size == len(tok) == 1000
    assert (tok.bos_token, tok.eos_token, tok.pad_token, tok.unk_token) == ("<s>", "</s>", "<pad>", "<unk>")
    assert (cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id) == (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id)
    assert model.generation_config.eos_token_id == tok.eos_token_id
    assert sum(p.numel() for p in model.parameters()) == read_provenance(tiny_dir)["parameter_count"]
    assert tok.decode(tok("hello world")["input_ids"], skip_special_tokens=True) == "hello world"

    tok.padding_side = "left"
    enc = tok(["hello world", "the weather is fine today"], return_tensors="pt", padding=True)
    assert enc["input_ids"][0, 0].item() == tok.pad_token_id  # shorter prompt padded on the left
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=8, do_sample=False)
    n_in = enc["input_ids"].shape[1]
    assert out.shape[0] == 2 and n_in < out.shape[1] <= n_in + 8  # random weights may emit EOS early
    assert torch.equal(out[:, :n_in], enc["input_ids"])


def test_files_are_world_readable_and_provenance_is_written(tiny_dir):
    assert stat.S_IMODE(tiny_dir.stat().st_mode) == 0o755
    names = {p.name for p in tiny_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json", "llem-tiny.json"} <= names
    for path in tiny_dir.rglob("*"):
        assert stat.S_IMODE(path.stat().st_mode) == (0o755 if path.is_dir() else 0o644), path
    info = read_provenance(tiny_dir)
    assert info["provenance"] == "random weights, not a trained model"
    assert info["seed"] == 0 and info["architecture"] == "LlamaForCausalLM"
    assert info["parameter_count"] > 0 and info["llenergymeasure_version"] and info["created_at"]
    assert not [p for p in tiny_dir.parent.iterdir() if p.name.startswith(".")]  # no staging leftovers


def test_second_call_keeps_the_existing_model(tiny_dir):
    before = _mtimes(tiny_dir)
    assert make_tiny_model(tiny_dir) == tiny_dir
    assert _mtimes(tiny_dir) == before


def test_same_seed_gives_identical_weights_and_tokenizer(tmp_path, tiny_dir):
    again = make_tiny_model(tmp_path / "again", seed=0)
    other = make_tiny_model(tmp_path / "other", seed=1)
    ref, same, diff = (load_file(d / "model.safetensors") for d in (tiny_dir, again, other))
    assert ref.keys() == same.keys() == diff.keys()
    assert all(torch.equal(ref[k], same[k]) for k in ref)
    assert not all(torch.equal(ref[k], diff[k]) for k in ref)
    assert (tiny_dir / "tokenizer.json").read_bytes() == (again / "tokenizer.json").read_bytes()


def test_force_rebuilds(tmp_path):
    target = make_tiny_model(tmp_path / "tiny", seed=3)
    stamp = read_provenance(target)["created_at"]
    make_tiny_model(target, seed=3, force=True)
    assert is_tiny_model(target) and read_provenance(target)["created_at"] != stamp


def test_refuses_a_file_or_a_foreign_directory(tmp_path):
    a_file = tmp_path / "model.bin"
    a_file.write_text("not a directory")
    with pytest.raises(ConfigError, match="not a directory"):
        make_tiny_model(a_file)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    for force in (False, True):
        with pytest.raises(ConfigError, match="not empty"):
            make_tiny_model(foreign, force=force)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_cli_make_tiny_prints_path_and_parameter_count(tiny_dir, tmp_path):
    result = CliRunner().invoke(models_group, ["make-tiny", str(tiny_dir)])
    assert result.exit_code == 0, result.output
    count = read_provenance(tiny_dir)["parameter_count"]
    assert str(tiny_dir) in result.output and f"{count:,}" in result.output

    a_file = tmp_path / "f"
    a_file.write_text("x")
    result = CliRunner().invoke(models_group, ["make-tiny", str(a_file), "--seed", "2"])
    assert isinstance(result.exception, ConfigError) and "not a directory" in str(result.exception)


def test_importing_the_host_modules_does_not_import_torch():
    code = (
        "import sys, llenergymeasure.models, llenergymeasure.cli.models; "
        "heavy = {'torch', 'transformers', 'tokenizers'} & set(sys.modules); assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
