"""`llem config`: what this machine offers (versions, GPUs, energy sources, Docker) and the user
config file; `llem config schema`: the JSON Schema of a study file."""
from __future__ import annotations

import platform

import click


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def _gpus() -> list[str]:
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - any NVML failure means "no GPU we can measure"
        return [f"none visible to NVML ({type(exc).__name__})"]
    try:
        names = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(handle)
            names.append(f"{i}: {name.decode() if isinstance(name, bytes) else name} "
                         f"({pynvml.nvmlDeviceGetUUID(handle)})")
        return names or ["none"]
    finally:
        pynvml.nvmlShutdown()


def _docker() -> str:
    try:
        import docker

        client = docker.from_env(timeout=3)
        info = client.version()
        runtimes = client.info().get("Runtimes", {})
        return f"reachable (engine {info.get('Version')}; nvidia runtime: {'yes' if 'nvidia' in runtimes else 'no'})"
    except Exception as exc:  # noqa: BLE001
        return f"not reachable ({type(exc).__name__})"


@click.group("config", invoke_without_command=True)
@click.pass_context
def config_cmd(ctx: click.Context):
    """Show the environment: versions, GPUs, readable energy sources, Docker, the user config file."""
    if ctx.invoked_subcommand is not None:
        return
    from ..runners.resolve import load_user_config, user_config_path
    from .energy_sources import energy_sources

    click.echo(f"Python           {platform.python_version()} ({platform.platform()})")
    for dist in ("llenergymeasure", "torch", "transformers", "vllm", "tensorrt_llm", "llama-cpp-python",
                 "nvidia-ml-py"):
        click.echo(f"{dist:<16} {_version(dist)}")
    click.echo("GPUs             " + "\n                 ".join(_gpus()))
    click.echo("Energy sources readable here:")
    for source in energy_sources():
        click.echo(f"  {source.line()}")
    click.echo(f"Docker daemon    {_docker()}")
    path = user_config_path()
    click.echo(f"User config      {path} ({'present' if path.is_file() else 'absent'})")
    for key, value in load_user_config().items():
        click.echo(f"  {key}: {value}")


@config_cmd.command("schema")
def schema_cmd():
    """Print the JSON Schema of a study file (for editors with a YAML language server)."""
    from ..domain.schema import schema_json

    click.echo(schema_json(), nl=False)
