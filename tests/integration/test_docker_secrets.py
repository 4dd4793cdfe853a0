"""A token given to llem reaches the container as a mode-0600 file, never in its environment,
`docker inspect`, or any file of the study."""
from __future__ import annotations

import json

from tests.helpers import run_llem

TOKEN = "hf_plantedTestToken9876543210abcdef"


def test_token_never_appears_in_inspect_or_study_files(docker_client, llem_image, tmp_path):
    missing_model = tmp_path / "no-model-here"
    missing_model.mkdir()  # a local directory without a model: the harness fails, the container is kept
    proc = run_llem("run", "-m", str(missing_model), "-n", "1", "--max-output-tokens", "2", "-o",
                    str(tmp_path / "results"), "--keep-failed", docker=True,
                    env={"HF_TOKEN": TOKEN, "HF_HUB_OFFLINE": "1"})
    study_dir = next((tmp_path / "results").iterdir())
    manifest = json.loads((study_dir / "manifest.json").read_text())
    kept = docker_client.containers.list(all=True, filters={"label": f"llem.study_id={manifest['study_id']}"})
    try:
        assert proc.returncode == 1 and len(kept) == 1, proc.stderr[-2000:]
        inspect = json.dumps(docker_client.api.inspect_container(kept[0].id))
        assert TOKEN not in inspect
        env = kept[0].attrs["Config"]["Env"]
        assert "HF_TOKEN_PATH=/run/llem-secrets/hf_token" in env and not any(e.startswith("HF_TOKEN=") for e in env)
        mounts = {m["Destination"]: m for m in kept[0].attrs["Mounts"]}
        assert mounts["/run/llem-secrets"]["RW"] is False
        leaked = [p for p in study_dir.rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()]
        assert leaked == []
        assert not any(p.name.startswith("llem-secrets-") for p in __import__("pathlib").Path("/tmp").iterdir()
                       if p.is_dir() and (p / "hf_token").exists() and TOKEN in (p / "hf_token").read_text())
    finally:
        for container in kept:
            container.remove(force=True)
