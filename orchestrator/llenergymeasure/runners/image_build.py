"""Engine images: default tags, where their Dockerfiles live, and building them with the Docker SDK.

The build context is the repository root (the image installs the harness from this source tree),
so building needs a source checkout; an installed wheel has no `images/` directory and says so.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..errors import PreFlightError

IMAGE_REPOSITORY = "llenergymeasure"

# The GPU engines share one Dockerfile (images/gpu/Dockerfile) taking the engine as build argument
# ENGINE; their official base images, pinned by tag, are stated here once (`--base-image` overrides).
GPU_ENGINE_BASE_IMAGES = {
    "vllm": "vllm/vllm-openai:v0.33.0",
    "tensorrt_llm": "nvcr.io/nvidia/tensorrt-llm/release:1.2.1",
}
GPU_DOCKERFILE = "gpu"


def llem_version() -> str:
    from ..version import __version__

    return __version__


def default_image(engine: str) -> str:
    return f"{IMAGE_REPOSITORY}/{engine}:{llem_version()}"


def repo_root() -> Path:
    """The source checkout this package runs from (editable install), or PreFlightError."""
    root = Path(__file__).resolve().parents[3]  # orchestrator/llenergymeasure/runners/ -> root
    if not (root / "images").is_dir() or not (root / "pyproject.toml").is_file():
        raise PreFlightError(
            f"building images needs a source checkout of llenergymeasure (with images/ and pyproject.toml), "
            f"but this package runs from {root}. Clone the repository, `pip install -e '.[transformers]'` "
            f"there, and run `llem images build` from it.")
    return root


def dockerfile_for(engine: str) -> Path:
    """images/gpu/Dockerfile for a GPU engine, else images/<engine>/Dockerfile."""
    return repo_root() / "images" / (GPU_DOCKERFILE if engine in GPU_ENGINE_BASE_IMAGES else engine) / "Dockerfile"


def buildable_engines() -> list[str]:
    root = repo_root()
    own = {p.parent.name for p in (root / "images").glob("*/Dockerfile")} - {GPU_DOCKERFILE}
    gpu = set(GPU_ENGINE_BASE_IMAGES) if (root / "images" / GPU_DOCKERFILE / "Dockerfile").is_file() else set()
    return sorted(own | gpu)


def build_args(base_image: str | None = None, extra: dict[str, str] | None = None,
               engine: str | None = None) -> dict[str, str]:
    """Build arguments every engine image takes: its base, version and contract fingerprint, plus
    the engine's own (`extra`, e.g. VLLM_BACKEND=cpu for vllm), which cannot override those. A GPU
    engine also gets ENGINE and, without `base_image`, its pinned base (GPU_ENGINE_BASE_IMAGES)."""
    from ..domain import contract_fingerprint

    args = {**(extra or {}), "LLEM_VERSION": llem_version(), "LLEM_CONTRACT": contract_fingerprint()}
    if engine in GPU_ENGINE_BASE_IMAGES:
        args["ENGINE"] = engine
        base_image = base_image or GPU_ENGINE_BASE_IMAGES[engine]
    if base_image:
        args["BASE_IMAGE"] = base_image
    return args


def build_image(engine: str, base_image: str | None = None, tag: str | None = None,
                on_line: Callable[[str], None] = print, client=None,
                extra_build_args: dict[str, str] | None = None) -> str:
    """Build the engine's Dockerfile (`dockerfile_for`) from the repo root, streaming the build log. Returns the tag."""
    from .docker_support import docker_client

    dockerfile = dockerfile_for(engine)
    if not dockerfile.is_file():
        raise PreFlightError(f"no Dockerfile for engine '{engine}' ({dockerfile} missing); "
                             f"buildable: {', '.join(buildable_engines()) or 'none'}")
    tag = tag or default_image(engine)
    own_client = client is None
    client = client or docker_client(timeout_s=3600)
    root = repo_root()
    try:
        previous_id = image_id(client, tag)
        stream = client.api.build(path=str(root), dockerfile=str(dockerfile.relative_to(root)), tag=tag,
                                  buildargs=build_args(base_image, extra_build_args, engine), network_mode="host", rm=True,
                                  forcerm=True, decode=True)
        for chunk in stream:
            if "error" in chunk:
                detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
                raise PreFlightError(f"building {tag} failed: {detail.strip()}")
            text = chunk.get("stream")
            if text and text.strip():
                on_line(text.rstrip("\n"))
        remove_replaced(client, previous_id, tag, on_line)
    finally:
        if own_client:
            client.close()
    return tag


def image_id(client, tag: str) -> str | None:
    """The ID `tag` names now, or None where no such image exists."""
    try:
        return client.images.get(tag).id
    except Exception:  # noqa: BLE001 - docker.errors.ImageNotFound; the SDK is imported lazily
        return None


def remove_replaced(client, previous_id: str | None, tag: str, on_line: Callable[[str], None]) -> None:
    """Delete the image a rebuild of `tag` left untagged, so rebuilding never leaks gigabytes.

    An engine image is 1-4 GB; each rebuild of the same tag would otherwise leave the old one on disk
    as a dangling image. The old image is kept where it still has another tag or a container (even a
    stopped one) uses it, and nothing is removed when the build produced the same image again.
    """
    if previous_id is None or image_id(client, tag) == previous_id:
        return
    try:
        old = client.images.get(previous_id)
    except Exception:  # noqa: BLE001 - already gone
        return
    if old.tags:
        return
    if client.containers.list(all=True, filters={"ancestor": previous_id}):
        on_line(f"kept the image this build replaced ({previous_id[:19]}): a container still uses it")
        return
    size_gb = (old.attrs.get("Size") or 0) / 1e9
    try:
        client.images.remove(previous_id, noprune=False)
    except Exception as exc:  # noqa: BLE001 - a race with another build or container: keep it, say so
        on_line(f"could not remove the image this build replaced ({previous_id[:19]}): {exc}")
        return
    on_line(f"removed the image this build replaced ({previous_id[:19]}, {size_gb:.2f} GB)")
