"""`llem images ...`: build and list the per-engine Docker images.

`build` uses the Docker SDK with the repository root as build context (the image installs the
harness from this source tree) and passes the version and contract fingerprint as build
arguments, which the image records as OCI labels for the runner's preflight check.
"""
from __future__ import annotations

import click


@click.group("images")
def images_group() -> None:
    """Build and list the per-engine Docker images."""


@images_group.command("build")
@click.argument("engine", required=False, default="transformers")
@click.option("--base-image", default=None, metavar="IMG",
              help="Base image (default: the Dockerfile's pinned PyTorch/CUDA image). Needs Python>=3.11.")
@click.option("--tag", default=None, metavar="TAG", help="Image tag (default: llenergymeasure/<engine>:<version>).")
@click.option("--build-arg", "build_arg", multiple=True, metavar="KEY=VALUE",
              help="Engine build argument, repeatable (e.g. VLLM_BACKEND=cpu for vLLM's CPU build).")
@click.option("-q", "--quiet", is_flag=True, help="Print only the resulting tag.")
def build_cmd(engine: str, base_image: str | None, tag: str | None, build_arg: tuple[str, ...], quiet: bool) -> None:
    """Build the Docker image of ENGINE (default: transformers) from this source checkout.

    The image this build replaces under the same tag is removed (the log says so), unless another
    tag or a container still uses it: rebuilding does not pile up gigabytes of untagged images.
    """
    from ..domain.config import ENGINE_ALIASES
    from ..errors import ConfigError
    from ..runners.image_build import build_image, default_image

    extra = {}
    for item in build_arg:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--build-arg '{item}' is not KEY=VALUE (e.g. --build-arg VLLM_BACKEND=cpu)")
        extra[key] = value

    engine = ENGINE_ALIASES.get(engine.lower(), engine.lower())
    target = tag or default_image(engine)
    if not quiet:
        click.echo(f"Building {target}" + (f" from {base_image}" if base_image else ""), err=True)
    built = build_image(engine, base_image=base_image, tag=tag, extra_build_args=extra,
                        on_line=(lambda line: None) if quiet else (lambda line: click.echo(line, err=True)))
    click.echo(built)


@images_group.command("list")
def list_cmd() -> None:
    """List local llenergymeasure images, their version and whether their contract matches this llem."""
    from ..domain import contract_fingerprint
    from ..runners.docker_support import CONTRACT_LABEL, VERSION_LABEL, docker_client

    client = docker_client(timeout_s=10)
    expected = contract_fingerprint()
    rows = []
    for image in client.images.list(filters={"label": CONTRACT_LABEL}):
        labels = image.labels or {}
        ok = "yes" if labels.get(CONTRACT_LABEL) == expected else "NO (rebuild)"
        for tag in image.tags:  # untagged: superseded builds, not worth a row
            rows.append((tag, labels.get(VERSION_LABEL, "?"), labels.get(CONTRACT_LABEL, "?"), ok,
                         f"{image.attrs.get('Size', 0) / 1e9:.2f} GB"))
    client.close()
    if not rows:
        click.echo("No llenergymeasure images found. Build one with: llem images build transformers")
        return
    header = ("IMAGE", "VERSION", "CONTRACT", "MATCHES", "SIZE")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    for row in [header] + sorted(rows):
        click.echo("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip())
    click.echo(f"(this llem's contract: {expected})")


@images_group.command("contract")
def contract_cmd() -> None:
    """Print this llem's contract fingerprint (the LLEM_CONTRACT build argument for compose builds)."""
    from ..domain import contract_fingerprint

    click.echo(contract_fingerprint())
