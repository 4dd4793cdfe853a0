"""`llem results report` of a real quickstart study, opened in a real headless Chromium.

The study is examples/quickstart.yaml on the tiny model (transformers engine, the real harness,
local runner). GPU readings come from the repository's NVML replay trace when present, so the
energy figures and timelines are drawn (the report labels them as replayed). The page is loaded
through the DevTools protocol: no console error, no network request, every figure an SVG that
lays out, and a screenshot that is not blank. Where Chromium is absent the browser tests skip,
except with LLEM_REQUIRE_BROWSER=1 (CI), where that is a failure.
Set LLEM_REPORT_SCREENSHOT=PATH to keep the screenshot (docs/report-quickstart.png is made so).

docs/report.md shows that screenshot; docs/report-quickstart.png.sha256 holds the hash of the report's
sources it was taken of, and a test fails when they changed since: retake it with
`LLEM_REPORT_SCREENSHOT=docs/report-quickstart.png pytest tests/integration/test_report_browser.py`
(taking it there also writes the new hash).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from llenergymeasure import run_study
from llenergymeasure.domain import StudyConfig, StudyManifest
from llenergymeasure.domain.io import write_json_atomic
from tests.browser import find_chromium, pixel_stats, render
from tests.helpers import REPO_ROOT, quickstart_data, run_llem

pytestmark = pytest.mark.slow

REPLAY_TRACE = REPO_ROOT / "tests" / "fixtures" / "traces" / "ci_idle_load.jsonl"
DOCS_SCREENSHOT = REPO_ROOT / "docs" / "report-quickstart.png"
DOCS_STAMP = REPO_ROOT / "docs" / "report-quickstart.png.sha256"
RESULTS_PACKAGE = REPO_ROOT / "orchestrator" / "llenergymeasure" / "results"


def report_sources_sha256() -> str:
    """What the report looks like is decided by these files: the screenshot is current while they are."""
    digest = hashlib.sha256()
    for path in sorted([*RESULTS_PACKAGE.glob("report*.py"), RESULTS_PACKAGE / "number_format.py"]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()
HOSTILE = '<img src=x onerror="console.error(\'INJECTED\')"><script>console.error("INJECTED")</script>'
DOM = {
    "figures": "document.querySelectorAll('figure').length",
    "svg_sizes": "Array.from(document.querySelectorAll('figure svg')).map(s => "
                 "{const r = s.getBoundingClientRect(); return [r.width, r.height];})",
    "svg_shapes": "Array.from(document.querySelectorAll('figure svg')).map(s => s.querySelectorAll('path').length)",
    "svg_text": "Array.from(document.querySelectorAll('figure svg text')).map(t => t.textContent).join(' | ')",
    "scripts": "document.scripts.length",
    "images": "document.images.length",
    "text": "document.body.innerText",
    "title": "document.title",
}


@pytest.fixture(scope="module")
def chromium() -> str:
    path = find_chromium()
    if path:
        return path
    if os.environ.get("LLEM_REQUIRE_BROWSER") == "1":
        pytest.fail("LLEM_REQUIRE_BROWSER=1 but no chromium was found (install: bash scripts/install-browser.sh)")
    pytest.skip("no chromium executable: the report's browser tests need Debian's `chromium` package "
                "(bash scripts/install-browser.sh)")


@pytest.fixture(scope="module")
def quickstart_study(tiny_model_dir, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report-study")
    study = StudyConfig.model_validate(quickstart_data(tiny_model_dir, root / "results"))
    with pytest.MonkeyPatch.context() as mp:
        if REPLAY_TRACE.is_file():
            mp.setenv("LLEM_NVML_REPLAY", str(REPLAY_TRACE))
        result = run_study(study)
    return Path(result.study_dir)


def test_browser_check_detects_console_errors(chromium, tmp_path):
    """The checks below can fail: a page that logs an error, fetches a URL and draws nothing is caught."""
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><body><script>console.error("boom")</script>'
                    '<img src="http://127.0.0.1:9/x.png"></body></html>')
    seen = render(page, {"figures": "document.querySelectorAll('figure').length"}, chromium=chromium)
    assert any("boom" in e for e in seen.console_errors)
    assert seen.network_requests == ["http://127.0.0.1:9/x.png"]
    variance, inked = pixel_stats(seen.screenshot_png)
    assert inked < 0.01  # a blank page is recognised as blank


def test_quickstart_report_renders_in_chromium(chromium, quickstart_study, tmp_path):
    out = tmp_path / "quickstart-report.html"
    proc = run_llem("results", "report", str(quickstart_study), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {out}" in proc.stdout
    seen = render(out, DOM, chromium=chromium)
    if os.environ.get("LLEM_REPORT_SCREENSHOT"):
        shot = Path(os.environ["LLEM_REPORT_SCREENSHOT"])
        shot.write_bytes(seen.screenshot_png)
        if shot.resolve() == DOCS_SCREENSHOT:
            DOCS_STAMP.write_text(report_sources_sha256() + "\n")
    assert seen.console_errors == []
    assert seen.network_requests == []
    assert seen.values["scripts"] == 0 and seen.values["images"] == 0
    assert seen.values["title"] == "llem report: quickstart"
    sizes, shapes = seen.values["svg_sizes"], seen.values["svg_shapes"]
    assert len(sizes) == seen.values["figures"] >= 2  # at least the throughput/latency bars and one more
    assert all(w > 200 and h > 100 for w, h in sizes), sizes
    assert all(n > 10 for n in shapes), shapes  # axes, ticks, bars, lines: a drawn figure, not an empty frame
    variance, inked = pixel_stats(seen.screenshot_png)
    assert variance > 100 and inked > 0.03, (variance, inked)
    text = seen.values["text"]
    manifest = StudyManifest.model_validate_json((quickstart_study / "manifest.json").read_text())
    runs = [e for e in manifest.entries if e.status == "completed"]
    assert f"{len(runs)} / {len(manifest.entries)}" in text
    n_cycles = manifest.n_cycles
    assert ("n = 2 < 3: no interval" in text) == (n_cycles == 2) and ("95% CI [" in text) == (n_cycles >= 3)
    for heading in ("Which configuration is best for what", "Design", "Summary per configuration", "Energy, throughput and latency",
                    "Power and temperature during each run", "Per-GPU comparison", "Environment",
                    "How each figure was measured", "Warnings"):
        assert heading in text
    assert "transformers" in text and "bs=1" in text and "bs=4" in text
    assert text.index("Which configuration is best for what") < text.index("Summary per configuration")
    assert "bs=1" in seen.values["svg_text"] and "bs=4" in seen.values["svg_text"]  # figures name what was swept
    if REPLAY_TRACE.is_file():  # energy and timelines drawn, and labelled as replayed
        assert "REPLAYED from a recorded trace" in text and "counter" in text
        assert len(sizes) >= 3 + len(runs)  # energy vs throughput, vs latency, adjusted, bars + a timeline per run
    else:
        assert "No GPU energy was measured" in text


def test_the_docs_screenshot_is_of_the_current_report():
    """docs/report.md's screenshot was taken of the report as the code draws it now."""
    taken_of = DOCS_STAMP.read_text().strip() if DOCS_STAMP.is_file() else "(no stamp)"
    assert taken_of == report_sources_sha256(), (
        "docs/report-quickstart.png was taken of an older report; retake it with "
        "LLEM_REPORT_SCREENSHOT=docs/report-quickstart.png pytest tests/integration/test_report_browser.py")


def test_hostile_study_cannot_inject_markup(chromium, quickstart_study, tmp_path):
    study = tmp_path / "hostile"
    shutil.copytree(quickstart_study, study)
    manifest = StudyManifest.model_validate_json((study / "manifest.json").read_text())
    manifest.study_name = HOSTILE
    write_json_atomic(study / "manifest.json", manifest)
    for result_path in study.glob("runs/*/result.json"):
        data = json.loads(result_path.read_text())
        data["config"]["model"] = f"models/{HOSTILE}"
        data["measurement_warnings"].append(HOSTILE)
        result_path.write_text(json.dumps(data))
    out = tmp_path / "hostile.html"
    proc = run_llem("results", "report", str(study), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    seen = render(out, DOM, chromium=chromium)
    assert seen.console_errors == [] and seen.network_requests == []
    assert seen.values["scripts"] == 0 and seen.values["images"] == 0
    assert seen.values["title"] == f"llem report: {HOSTILE}"
    assert HOSTILE in seen.values["text"]  # shown to the reader as the text it is
