"""Serving mode in the llama_cpp image through the Docker runner: llama.cpp's OpenAI server and the
load generator in the run's own container, on the tiny model's GGUF."""
from __future__ import annotations

import json
from pathlib import Path

from llenergymeasure import run_study
from llenergymeasure.domain import ExperimentResult, StudyConfig
from tests.helpers import small_measurement

def test_serving_study_in_the_llama_cpp_image(llama_image, tiny_model_dir, tmp_path):
    study = StudyConfig.model_validate({
        "name": "docker-serving", "results_dir": str(tmp_path),
        "base": {"model": str(tiny_model_dir), "engine": "llama_cpp", "mode": "serving", "n_prompts": 4,
                 "max_input_tokens": 16, "max_output_tokens": 8, "serving": {"n_requests": 12},
                 "measurement": small_measurement()},
        "sweep": {"serving.concurrency": [1, 4]},
        "runners": {"llama_cpp": "docker"}, "images": {"llama_cpp": llama_image}})
    result = run_study(study)
    assert result.summary.completed == 2 and result.summary.failed == 0
    for rel in result.result_files:
        run_dir = (Path(result.study_dir) / rel).parent
        res = ExperimentResult.model_validate_json((Path(result.study_dir) / rel).read_text())
        assert res.environment.in_container and res.environment.engine_version == "0.3.36"
        assert res.serving.n_ok == 12 and res.serving.n_errors == 0
        w = res.serving.window
        assert 0 <= w.start_s < w.end_s <= w.run_s and w.output_tokens > 0
        requests = [json.loads(line) for line in (run_dir / "requests.jsonl").read_text().splitlines()]
        # Tokens from the server's usage (llem's llama.cpp launcher streams it), not a count of chunks.
        assert res.output_tokens_total == sum(r["usage"]["completion_tokens"] for r in requests)
        # every chunk with a choice is a token event, llama.cpp's closing one (only finish_reason) too
        assert all(r["stream_token_events"] <= r["usage"]["completion_tokens"] + 1 for r in requests)
        assert "Uvicorn running" in (run_dir / "server.log").read_text()
