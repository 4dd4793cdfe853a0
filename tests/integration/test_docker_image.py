"""Image-level checks of the built transformers image, with testcontainers.

The containers of the study run as the invoking user's uid, which on a user's machine is not the
uid that built the image: the harness and the engine must import for an arbitrary uid with
HOME=/tmp and every capability dropped, and the image must carry the host's contract label.
"""
from __future__ import annotations

import pytest

from llenergymeasure.domain import contract_fingerprint
from llenergymeasure.runners.docker_support import CONTRACT_LABEL, VERSION_LABEL
from llenergymeasure.runners.image_build import llem_version

UNPRIVILEGED_UID = "4242:4242"  # a uid that exists nowhere in the image


@pytest.fixture(scope="module")
def harness_container(llem_image):
    from testcontainers.core.config import testcontainers_config
    from testcontainers.core.container import DockerContainer

    testcontainers_config.ryuk_disabled = True  # no registry to pull the reaper from; `with` removes it
    container = (DockerContainer(llem_image, user=UNPRIVILEGED_UID, cap_drop=["ALL"],
                                 security_opt=["no-new-privileges"], init=True)
                 .with_env("HOME", "/tmp")
                 .with_command("python -c 'import time; time.sleep(600)'"))
    with container:
        yield container


def test_image_carries_the_version_and_this_hosts_contract(docker_client, llem_image):
    labels = docker_client.images.get(llem_image).labels
    assert labels[CONTRACT_LABEL] == contract_fingerprint()
    assert labels[VERSION_LABEL] == llem_version()


def test_harness_and_engine_import_for_an_arbitrary_uid(harness_container):
    code, output = harness_container.exec(
        ["python", "-c", "import os, llem_harness.process_entry, transformers, torch, llenergymeasure.domain as d; "
                         "print(os.getuid(), transformers.__version__, torch.__version__, d.contract_fingerprint())"])
    text = output.decode()
    assert code == 0, text
    uid, transformers_version, _torch_version, fingerprint = text.split()
    assert uid == UNPRIVILEGED_UID.split(":")[0]
    assert transformers_version == "5.23.0"
    assert fingerprint == contract_fingerprint()


def test_harness_entrypoint_answers_with_its_usage(harness_container):
    code, output = harness_container.exec(["python", "-m", "llem_harness"])
    assert code == 2
    assert "usage: python -m llem_harness RUN_DIR" in output.decode()
