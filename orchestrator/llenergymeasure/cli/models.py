"""`llem models ...`: model helpers. `make-tiny` writes an offline random-weight test model."""
from __future__ import annotations

import click


@click.group("models")
def models_group() -> None:
    """Model helpers (no model hub needed)."""


@models_group.command("make-tiny")
@click.argument("directory", type=click.Path(file_okay=True, dir_okay=True, path_type=str))
@click.option("--seed", type=int, default=0, show_default=True, help="torch seed for the random weights.")
@click.option("--force", is_flag=True, help="Rebuild even if DIRECTORY already holds a tiny model.")
def make_tiny_cmd(directory: str, seed: int, force: bool) -> None:
    """Write a tiny random-weight Llama model + tokenizer to DIRECTORY (kept if already there).

    Loadable with AutoModelForCausalLM / AutoTokenizer.from_pretrained(DIRECTORY) (transformers)
    and as DIRECTORY/model.gguf (llama.cpp; `model: DIRECTORY` works for both engines). Its
    weights are random: it measures the tool, not a language model.
    """
    click.echo(f"Making the tiny model in {directory} unless it is there (torch import, tokenizer training: "
               "about 10 s on an idle machine)...", err=True)
    from ..models.tiny import make_tiny_model, read_provenance

    path = make_tiny_model(directory, seed=seed, force=force)
    info = read_provenance(path)
    click.echo(f"Tiny model: {path} (GGUF for llama.cpp: {path / 'model.gguf'})")
    click.echo(
        f"Parameters: {info['parameter_count']:,} ({info['provenance']}, seed {info['seed']})"
    )
