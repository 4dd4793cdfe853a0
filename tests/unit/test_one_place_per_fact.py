"""Facts written once: the precision -> dtype table, and the energy normalisations (Wh per 1000 requests).

Why: a copy that drifts is a figure that means one thing on one engine or mode and another thing on
the next. These tests find a second copy by its shape in the source, and check that the one copy
gives every engine and both modes the same answer.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from llenergymeasure.domain import EnergyResult, ExperimentConfig, RequestRecord, ServingWindow, compute_metrics
from llenergymeasure.domain.config import PRECISION_DTYPES, dtype_name

REPO = Path(__file__).resolve().parents[2]
SOURCES = [REPO / "harness" / "llem_harness", REPO / "orchestrator" / "llenergymeasure"]
DTYPE_NAMES = {"float32", "float16", "bfloat16"}
TABLE_HOME = REPO / "orchestrator" / "llenergymeasure" / "domain" / "config.py"


def _strings(node: ast.AST) -> set[str]:
    return {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def dtype_tables(path: Path) -> list[int]:
    """Lines of dict literals that map precision options or dtype names to dtype names or sizes."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Dict) and node.keys:
            keys = {k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
            values = set().union(*(_strings(v) for v in node.values))
            if (keys & (set(PRECISION_DTYPES) | DTYPE_NAMES)) and ((keys | values) & DTYPE_NAMES):
                found.append(node.lineno)
    return found


def test_the_precision_dtype_table_is_written_once():
    copies = [f"{p.relative_to(REPO)}:{line}" for root in SOURCES for p in sorted(root.rglob("*.py"))
              for line in dtype_tables(p)]
    assert copies == [f"{TABLE_HOME.relative_to(REPO)}:{dtype_tables(TABLE_HOME)[0]}"]


def test_the_table_finder_finds_an_engine_copy(tmp_path):
    engine = tmp_path / "engine.py"
    engine.write_text('_DTYPES = {"auto": "auto", "fp32": "float32", "bf16": "bfloat16"}\n'
                      'fixed = {"fp32": 4, "float32": 4}\nOTHER = {"fp16": "F16"}\n')
    assert dtype_tables(engine) == [1, 2]


@pytest.mark.parametrize("precision", ["auto", "fp32", "fp16", "bf16"])
def test_every_engine_and_server_takes_the_same_dtype(precision, tmp_path):
    from llem_harness.engines import tensorrt_llm, vllm
    from llem_harness.serving.servers import server_spec

    want = dtype_name(precision)
    assert want == ("auto" if precision == "auto" else PRECISION_DTYPES[precision][0])
    config = ExperimentConfig(model="m", engine="vllm", precision=precision)
    assert vllm.engine_kwargs(config)["dtype"] == want
    assert tensorrt_llm.engine_kwargs(ExperimentConfig(model="m", engine="tensorrt_llm", precision=precision))["dtype"] == want
    argv = server_spec(ExperimentConfig(model="m", engine="vllm", precision=precision, mode="serving"), 8000,
                       files_dir=tmp_path).argv
    assert argv[argv.index("--dtype") + 1] == want


def test_wh_per_1000_requests_has_one_formula():
    """No other 3600 or 3.6 (J per Wh) in the harness or the domain than the one conversion constant."""
    hits = []
    for root in (SOURCES[0], SOURCES[1] / "domain"):
        for path in sorted(root.rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and node.value in (3600, 3600.0, 3.6):
                    hits.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert len(hits) == 1 and hits[0].startswith("orchestrator/llenergymeasure/domain/metrics.py"), hits


def test_offline_and_serving_normalise_energy_alike():
    """The same joules over the same tokens and requests give the same energy figures in both modes."""
    from llem_harness.serving.report import serving_metrics

    energy = EnergyResult(method="counter", gpu_energy_raw_j=1234.567, gpu_energy_adjusted_j=987.654)
    records = [RequestRecord(index=i, batch_index=i, input_tokens=8, output_tokens=t) for i, t in enumerate((7, 11, 13))]
    offline = compute_metrics(records, [], 2.0, energy)
    window = ServingWindow(definition="d", start_s=0.0, end_s=2.0, duration_s=2.0, run_s=3.0, steady_state_share=2 / 3,
                           output_tokens=31, requests_completed=3)
    serving = serving_metrics(records, [], window, energy)
    fields = ["energy_per_output_token_j", "energy_per_output_token_adjusted_j", "energy_per_request_j",
              "energy_per_request_adjusted_j", "energy_wh_per_1000_requests", "energy_wh_per_1000_requests_adjusted"]
    assert {f: getattr(serving, f) for f in fields} == {f: getattr(offline, f) for f in fields}
    assert offline.energy_wh_per_1000_requests == pytest.approx(1234.567 / 3 / 3.6)
    assert serving.energy_wh_per_1000_requests_adjusted == pytest.approx(987.654 / 3 / 3.6)
