"""Rebuilding an image under the same tag removes the image it replaced, unless something still needs it.

Engine images are 1-4 GB; without this, every rebuild of a tag left the old one on disk as a
dangling image. Real daemon, real (tiny) images: each differs from the base by one label only.
"""
from __future__ import annotations

import io
import uuid

import docker
import pytest

from llenergymeasure.runners.image_build import image_id, remove_replaced



@pytest.fixture
def tiny(docker_client, plain_base_image):
    """Build tiny images FROM a local base; every image and container made here is removed afterwards."""
    made: list[str] = []
    containers: list = []
    repository = f"llem-test-rebuild-{uuid.uuid4().hex[:8]}"

    def build(tag: str = "t", label: str | None = None) -> str:
        dockerfile = f"FROM {plain_base_image}\nLABEL llem.test.rebuild={label or uuid.uuid4().hex}\n"
        image, _ = docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=f"{repository}:{tag}", rm=True)
        made.append(image.id)
        return image.id

    build.repository = repository
    build.containers = containers
    yield build
    for container in containers:
        container.remove(force=True)
    for ident in made:
        try:
            docker_client.images.remove(ident, force=True, noprune=False)
        except docker.errors.ImageNotFound:
            pass


def _exists(client, ident: str) -> bool:
    try:
        client.images.get(ident)
        return True
    except docker.errors.ImageNotFound:
        return False


def test_the_replaced_image_is_removed(docker_client, tiny):
    tag = f"{tiny.repository}:t"
    old = tiny()
    new = tiny()
    assert old != new and image_id(docker_client, tag) == new
    lines: list[str] = []
    remove_replaced(docker_client, old, tag, lines.append)
    assert not _exists(docker_client, old)
    assert _exists(docker_client, new)
    assert lines and lines[0].startswith("removed the image this build replaced")


def test_an_image_a_container_uses_is_kept_and_said(docker_client, tiny):
    tag = f"{tiny.repository}:t"
    old = tiny()
    tiny.containers.append(docker_client.containers.create(old, command="true"))  # stopped containers count
    tiny()
    lines: list[str] = []
    remove_replaced(docker_client, old, tag, lines.append)
    assert _exists(docker_client, old)
    assert lines == [f"kept the image this build replaced ({old[:19]}): a container still uses it"]


def test_an_image_with_another_tag_and_an_identical_rebuild_are_left_alone(docker_client, tiny):
    tag = f"{tiny.repository}:t"
    old = tiny(tag="t", label="same")
    docker_client.images.get(old).tag(tiny.repository, "pinned")
    tiny(tag="t")
    lines: list[str] = []
    remove_replaced(docker_client, old, tag, lines.append)
    assert _exists(docker_client, old) and lines == []
    again = tiny(tag="again", label="same2")
    assert tiny(tag="again", label="same2") == again  # layer cache: the same image ID
    remove_replaced(docker_client, again, f"{tiny.repository}:again", lines.append)
    assert _exists(docker_client, again) and lines == []
