"""llama.cpp in its own container, beside transformers in its own: one study, two images."""
from __future__ import annotations

from pathlib import Path

import yaml

from llenergymeasure.domain import ExperimentResult, StudyManifest
from tests.helpers import REPO_ROOT, run_llem, small_measurement


def test_mixed_engine_study_runs_each_engine_in_its_own_image(docker_client, llem_image, llama_image,
                                                               tiny_model_dir, tmp_path):
    data = yaml.safe_load((REPO_ROOT / "examples" / "mixed-engines.yaml").read_text())
    data["base"].update(model=str(tiny_model_dir), n_prompts=2, max_output_tokens=6, measurement=small_measurement())
    data["results_dir"] = str(tmp_path / "results")
    data["execution"]["n_cycles"] = 1
    path = tmp_path / "mixed.yaml"
    path.write_text(yaml.safe_dump(data))
    proc = run_llem("run", str(path), cwd=tmp_path, docker=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    study_dir = next((tmp_path / "results").iterdir())
    manifest = StudyManifest.model_validate_json((study_dir / "manifest.json").read_text())
    assert [(e.engine, e.status, e.runner) for e in manifest.entries] == [
        ("transformers", "completed", "docker"), ("llama_cpp", "completed", "docker")]
    results = {e.engine: ExperimentResult.model_validate_json((study_dir / e.result_file).read_text())
               for e in manifest.entries}
    llama = results["llama_cpp"]
    assert llama.environment.in_container is True and llama.environment.engine_version == "0.3.36"
    assert llama.effective["batching"] == "sequential"
    assert Path(llama.effective["model_file"]).name == "model.gguf"
    # Same weights, tokenizer, prompts and greedy decoding: the two engines count the same tokens.
    assert [(r.input_tokens, r.output_tokens) for r in llama.requests] == \
        [(r.input_tokens, r.output_tokens) for r in results["transformers"].requests]
    assert llama.metrics.ttft_s.n == 2 and llama.metrics.itl_s.n > 0
    assert docker_client.containers.list(all=True, filters={"label": f"llem.study_id={manifest.study_id}"}) == []
