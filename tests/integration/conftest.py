"""Fixtures of the Docker tests: a real daemon, the real transformers image, real run directories.

The image is built once per session from this source tree, FROM `$LLEM_TEST_BASE_IMAGE`
(default: the local CI base `llem-ci-base:py311-torch-cpu` when it exists, else the
Dockerfile's own pinned base). Docker tests are skipped cleanly when no daemon answers, unless
LLEM_REQUIRE_DOCKER=1 (CI), where that is a failure.
After the pytest run, no container carrying llem's labels that it started may remain (checked,
then removed); a container whose llem is still running and was not started by this pytest run
(a user's study, a second pytest run) is left alone.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

CI_BASE_IMAGE = "llem-ci-base:py311-torch-cpu"
CI_PLAIN_BASE_IMAGE = "llem-ci-base:py311"  # no torch: the llama_cpp image needs none
LABEL_KEY = "llem.study_id"
REQUIRED = os.environ.get("LLEM_REQUIRE_DOCKER") == "1"  # CI: a missing daemon fails instead of skipping


def _docker_client():
    try:
        import docker

        client = docker.from_env(timeout=120)
        client.ping()
        return client
    except Exception:
        return None


def _is_docker_test(item) -> bool:
    return Path(str(item.fspath)).name.startswith("test_docker_")


def pytest_collection_modifyitems(config, items):
    docker_items = [item for item in items if _is_docker_test(item)]
    for item in docker_items:
        item.add_marker(pytest.mark.docker)
    if docker_items and _docker_client() is None and not REQUIRED:
        skip = pytest.mark.skip(reason="no reachable Docker daemon (start Docker to run the Docker tests)")
        for item in docker_items:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def docker_client():
    client = _docker_client()
    if client is None:
        if REQUIRED:
            pytest.fail("LLEM_REQUIRE_DOCKER=1 but no Docker daemon is reachable")
        pytest.skip("no reachable Docker daemon")
    yield client
    client.close()


def _started_by_this_pytest(pid: int) -> bool:
    """`pid` is this pytest process or was started (transitively) by it: its parent chain in /proc."""
    me, seen = os.getpid(), 0
    while pid > 1 and seen < 64:
        if pid == me:
            return True
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            return False
        seen += 1
    return False


def _ours(client) -> dict[str, str]:
    """Containers these tests may have left: llem-labelled ones, except those of an llem that is alive
    and not started by this pytest process (a user's study running meanwhile, a second pytest run)."""
    from llenergymeasure.runners.docker_support import LABEL_PID
    from llenergymeasure.runners.local_orphans import pid_alive

    found = {}
    for container in client.containers.list(all=True, filters={"label": LABEL_KEY}):
        owner = (container.labels or {}).get(LABEL_PID, "")
        if owner.isdigit() and pid_alive(int(owner)) and not _started_by_this_pytest(int(owner)):
            continue
        found[container.id] = container.name
    return found


@pytest.fixture(scope="session", autouse=True)
def no_container_left_behind(request):
    """Session-end check: every container with our labels that appeared during the tests is gone."""
    if not any(_is_docker_test(item) for item in request.session.items):
        yield
        return
    client = _docker_client()
    if client is None:
        yield
        return
    before = set(_ours(client))
    yield
    left = {cid: name for cid, name in _ours(client).items() if cid not in before}
    for cid in left:
        client.containers.get(cid).remove(force=True)
    client.close()
    assert not left, f"containers with llem labels left behind by the tests: {sorted(left.values())}"


def base_image_for_tests(client) -> str | None:
    """The base the test image is built FROM (None: the Dockerfile's default)."""
    import docker

    chosen = os.environ.get("LLEM_TEST_BASE_IMAGE")
    if chosen:
        return chosen
    try:
        client.images.get(CI_BASE_IMAGE)
        return CI_BASE_IMAGE
    except docker.errors.ImageNotFound:
        return None



@pytest.fixture(scope="session")
def plain_base_image(docker_client) -> str:
    """The local base without torch (CI builds it), for tests that build tiny images of their own."""
    import docker

    try:
        docker_client.images.get(CI_PLAIN_BASE_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.skip(f"no local base image {CI_PLAIN_BASE_IMAGE} (CI builds it with ../shared/ci/docker-up.sh)")
    return CI_PLAIN_BASE_IMAGE


@pytest.fixture(scope="session")
def llem_image(docker_client) -> str:
    """The transformers image under its default tag, built from this source tree (layer-cached)."""
    from llenergymeasure.runners.image_build import build_image

    lines: list[str] = []
    try:
        return build_image("transformers", base_image=base_image_for_tests(docker_client), on_line=lines.append,
                           client=docker_client)
    except Exception as exc:
        tail = "\n".join(lines[-30:])
        pytest.fail(f"building the transformers image failed: {exc}\n{tail}")


@pytest.fixture(scope="session")
def llama_image(docker_client) -> str:
    """The llama_cpp image under its default tag, FROM $LLEM_TEST_LLAMA_BASE_IMAGE or the CI base."""
    import docker

    from llenergymeasure.runners.image_build import build_image

    base = os.environ.get("LLEM_TEST_LLAMA_BASE_IMAGE")
    if not base:
        try:
            docker_client.images.get(CI_PLAIN_BASE_IMAGE)
            base = CI_PLAIN_BASE_IMAGE
        except docker.errors.ImageNotFound:
            base = None
    lines: list[str] = []
    try:
        return build_image("llama_cpp", base_image=base, on_line=lines.append, client=docker_client)
    except Exception as exc:
        tail = "\n".join(lines[-30:])
        pytest.fail(f"building the llama_cpp image failed: {exc}\n{tail}")


@pytest.fixture
def make_run(tmp_path):
    """Factory: a run directory with a hand-written experiment.json, as the study loop writes it."""
    from llenergymeasure.domain import RUN_SPEC_FILE, ExperimentConfig, RunSpec

    def factory(model: str, run_id: str = "001_c1_test", gpu_ids=None, image: str | None = None,
                **config) -> tuple[Path, RunSpec]:
        measurement = {"baseline": {"duration_s": 0.5},
                       "warmup": {"min_batches": 1, "max_batches": 2, "window": 2}}
        measurement.update(config.pop("measurement", {}))
        fields = {"n_prompts": 2, "max_input_tokens": 16, "max_output_tokens": 4, **config}
        cfg = ExperimentConfig(model=model, measurement=measurement, **fields)
        run_dir = tmp_path / "runs" / run_id
        run_dir.mkdir(parents=True)
        spec = RunSpec(study_id=f"test-{tmp_path.name}"[:40], run_id=run_id, experiment_index=0, cycle=1,
                       config=cfg, config_hash=cfg.config_hash(), gpu_ids=gpu_ids, runner="docker", image=image)
        (run_dir / RUN_SPEC_FILE).write_text(spec.model_dump_json(indent=2))
        return run_dir, spec

    return factory
