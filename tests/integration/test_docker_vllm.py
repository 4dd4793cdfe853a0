"""The vLLM image, CPU variant, for real: built FROM the local torch-CPU base with vLLM's CPU build
(images/gpu/Dockerfile, ENGINE=vllm VLLM_BACKEND=cpu; wheels from scripts/setup-vllm.sh's wheelhouse), its
environment checked (the runner's `python`, the engine's pinned packages intact, no host stack),
then an offline and a serving experiment through `llem-docker`."""
from __future__ import annotations

import json
import os

import pytest

from llenergymeasure.domain import ExperimentResult, StudyManifest
from tests.helpers import run_llem
from tests.vllm_support import CPU_ENGINE, REQUIRED, WHEELHOUSE, serve_wheelhouse, write_study

pytestmark = pytest.mark.slow
HOST_STACK = ("pandas", "matplotlib", "docker", "scipy")  # host-only (rich, click come with vLLM itself)


@pytest.fixture(scope="module")
def vllm_cpu_image(docker_client) -> str:
    from llenergymeasure.runners.image_build import IMAGE_REPOSITORY, build_image, llem_version

    if not (WHEELHOUSE.is_dir() or REQUIRED):
        pytest.skip("no vLLM wheelhouse (.wheels-vllm): run scripts/setup-vllm.sh to test the vLLM CPU image")
    base = os.environ.get("LLEM_TEST_BASE_IMAGE") or "llem-ci-base:py311-torch-cpu"  # Python 3.11 + CPU torch
    try:
        docker_client.images.get(base)
    except Exception:  # noqa: BLE001
        pytest.fail(f"no base image {base} for the vLLM CPU variant (CI builds it before the tests; LLEM_TEST_BASE_IMAGE names another)")
    tag = f"{IMAGE_REPOSITORY}/vllm:{llem_version()}-cpu"
    lines: list[str] = []
    args = {"VLLM_BACKEND": "cpu"}
    try:
        if WHEELHOUSE.is_dir():
            with serve_wheelhouse(WHEELHOUSE) as url:
                return build_image("vllm", base_image=base, tag=tag, on_line=lines.append, client=docker_client,
                                   extra_build_args={**args, "LLEM_WHEELHOUSE": url})
        return build_image("vllm", base_image=base, tag=tag, on_line=lines.append, client=docker_client,
                           extra_build_args=args)
    except Exception as exc:
        pytest.fail(f"building the vLLM CPU image failed: {exc}\n" + "\n".join(lines[-40:]))


CHECK_ENVIRONMENT = """
import importlib.util, json, shutil, subprocess, sys
import vllm, llem_harness
freeze = open('/usr/local/share/llem/engine-freeze.txt').read().split()
now = subprocess.run([sys.executable, '-m', 'pip', 'list', '--format=freeze'], capture_output=True, text=True).stdout.split()
print(json.dumps({'python': shutil.which('python'), 'executable': sys.executable, 'vllm': vllm.__version__,
                  'changed': sorted(set(freeze) - set(now)), 'n_frozen': len(freeze),
                  'host_stack': [m for m in %r if importlib.util.find_spec(m)]}))
""" % (HOST_STACK,)


def test_image_runs_the_harness_with_python_in_the_engines_untouched_environment(docker_client, vllm_cpu_image):
    labels = docker_client.images.get(vllm_cpu_image).labels
    assert labels["org.llenergymeasure.device"] == "cpu" and labels["org.llenergymeasure.engine"] == "vllm"
    out = docker_client.containers.run(vllm_cpu_image, ["python", "-c", CHECK_ENVIRONMENT], remove=True,
                                       user=f"{os.getuid()}:{os.getgid()}")
    facts = json.loads(out.decode().strip().splitlines()[-1])
    assert facts["vllm"] == "0.32.0" and facts["python"] and facts["executable"]
    assert facts["n_frozen"] > 50 and facts["changed"] == []  # every package vLLM's install chose is still there
    assert facts["host_stack"] == []                           # only the harness's requirements were added


@pytest.fixture(scope="module")
def docker_runs(vllm_cpu_image, tiny_model_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vllm-docker")
    serving = {"mode": "serving", "serving": {"n_requests": 6, "concurrency": 2, "streaming": True,
                                              "ready_timeout_s": 600}}
    # No prefix_caching in the study: off (the measurement default), read back from the live engine.
    study = write_study(tmp / "vllm-docker.yaml", tiny_model_dir, tmp / "results", experiments=[{}, serving],
                        images={"vllm": vllm_cpu_image})
    proc = run_llem("run", str(study), docker=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    study_dir = next((tmp / "results").iterdir())
    manifest = StudyManifest.model_validate_json((study_dir / "manifest.json").read_text())
    assert [e.status for e in manifest.entries] == ["completed", "completed"]
    results = [ExperimentResult.model_validate_json(p.read_text()) for p in sorted(study_dir.glob("runs/*/result.json"))]
    return {r.config.mode: r for r in results}


def test_offline_experiment_in_the_image(docker_runs):
    res = docker_runs["offline"]
    assert res.environment.in_container and res.environment.device == "cpu"
    assert res.environment.engine_version == "0.32.0"
    assert res.n_requests == 4 and res.output_tokens_total > 0 and res.metrics.ttft_s.n == 4
    assert res.effective["enable_prefix_caching"] is False  # the study's default, read back from the engine
    assert res.prompt_cache.cached_prompt_tokens_total == 0
    assert res.effective["max_num_seqs"] == CPU_ENGINE["max_num_seqs"] and "unreadable" not in res.effective
    assert res.energy.gpu_energy_raw_j is None and res.energy.unavailable_reason


def test_serving_experiment_in_the_image(docker_runs):
    res = docker_runs["serving"]
    s = res.serving
    assert s.n_ok == 6 and s.n_errors == 0 and s.server_command_verified
    assert "usage" in s.output_tokens_source and res.output_tokens_total > 0
    assert res.metrics.ttft_s.n == 6 and res.environment.engine_version == "0.32.0"
