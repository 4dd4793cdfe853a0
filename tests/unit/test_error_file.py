"""error.json names the run's lifecycle *stage* a failed run stopped in ("phase" means prefill/decode only).

Files written before the rename say "phase": a resume or a manifest rebuild reads them back, so they
must still load, with the stage they named."""
from __future__ import annotations

import json

from llenergymeasure.domain import ERROR_FILE, HarnessError
from llenergymeasure.runners.base import ExitInfo, collect_outcome


def test_an_error_json_written_before_the_rename_still_names_its_stage(tmp_path):
    old = {"type": "OSError", "message": "no such model", "traceback": "Traceback ...", "phase": "loading"}
    (tmp_path / ERROR_FILE).write_text(json.dumps(old))
    error = HarnessError.model_validate_json((tmp_path / ERROR_FILE).read_text())
    assert error.stage == "loading"
    outcome = collect_outcome(tmp_path, ExitInfo(exit_code=1))
    assert outcome.status == "failed" and outcome.error_type == "OSError"


def test_error_json_is_written_with_stage_and_read_back():
    written = json.loads(HarnessError(type="RuntimeError", message="m", stage="warmup").model_dump_json())
    assert written["stage"] == "warmup" and "phase" not in written
    assert HarnessError.model_validate(written).stage == "warmup"
