"""`llem models ...`: model helpers. `make-tiny` writes an offline random-weight test model; `make`
writes a random-weight model in the real shape of a published architecture."""
from __future__ import annotations

import click

from ..models.shapes import DTYPES, SHAPES


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


@models_group.command("make")
@click.argument("directory", type=click.Path(file_okay=True, dir_okay=True, path_type=str))
@click.option("--shape", required=True, type=click.Choice(list(SHAPES)),
              help="Published architecture whose shape to reproduce (llama-test: a toy layout for tests).")
@click.option("--dtype", type=click.Choice(list(DTYPES)), default="bf16", show_default=True)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="Where the random values are generated (cuda is faster; files are written chunk by chunk).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--force", is_flag=True, help="Replace a model already in DIRECTORY.")
@click.option("--dry-run", is_flag=True, help="Print the files and sizes that would be written; write nothing.")
def make_cmd(directory: str, shape: str, dtype: str, device: str, seed: int, force: bool, dry_run: bool) -> None:
    """Write a random-weight model in the real shape of a published architecture to DIRECTORY.

    Config from public hyper-parameters (no model hub), the project's own tokenizer, weights
    streamed to safetensors in the target dtype with bounded memory. Loadable with
    from_pretrained(DIRECTORY) and usable as `model: DIRECTORY`. The outputs are random text.
    """
    from ..models.shapes import plan_model

    plan = plan_model(shape, dtype)
    click.echo(f"{shape} ({plan.shape.description}), {dtype}: {plan.parameter_count:,} parameters, "
               f"{plan.total_bytes / 1e9:.2f} GB in {len(plan.shards)} file(s)")
    if dry_run:
        for shard in plan.shards:
            click.echo(f"  {shard.file}: {len(shard.tensors)} tensors, {shard.nbytes / 1e9:.2f} GB")
        return
    from ..models.writer import make_shaped_model

    path = make_shaped_model(directory, shape, dtype=dtype, device=device, seed=seed, force=force)
    click.echo(f"Model: {path} (RANDOM WEIGHTS: outputs are random text; see {path / 'README.md'})")
