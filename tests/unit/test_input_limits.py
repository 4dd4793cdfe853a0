"""Input refused before anything runs: exit 2, a message naming the field and the fix, no traceback,
no study directory — through the real CLI entry point (in-process; fast)."""
from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest
import yaml

from llenergymeasure.domain import StudyConfig
from llenergymeasure.study.expand import expand, raw_points
from tests.bad_inputs import run_cli_in_process

MAX_CONFIGURATIONS, MAX_RUNS = 100_000, 1_000_000  # study/expand.py, documented in docs/reliability.md


def _cli(tmp_path: Path, text: str, *flags: str):
    path = tmp_path / "study.yaml"
    path.write_text(text)
    return run_cli_in_process(["run", str(path), *flags], tmp_path)


def _refused(outcome, *words: str) -> None:
    assert outcome.exit_code == 2, outcome.output
    assert "Traceback" not in outcome.output, outcome.output
    assert outcome.study_dirs_left == 0
    for word in words:
        assert word in outcome.output, (word, outcome.output)


def _study(model: str = "org/model", **extra) -> str:
    data = {"name": "limits", "results_dir": "results", "base": {"model": model, "n_prompts": 1}, **extra}
    return yaml.safe_dump(data)


# -- grid size ------------------------------------------------------------------------------------

def test_a_huge_grid_is_refused_before_expanding_naming_the_number_and_the_keys(tmp_path):
    sweep = {k: list(range(1, 11)) for k in ("batch_size", "n_prompts", "max_output_tokens", "max_input_tokens",
                                            "random_seed", "decoding.top_k", "warmup_x")}
    sweep["measurement.warmup.max_batches"] = sweep.pop("warmup_x")
    started = time.monotonic()
    outcome = _cli(tmp_path, _study(sweep=sweep), "--dry-run")
    _refused(outcome, "10,000,000 configurations", f"{MAX_CONFIGURATIONS:,}", "batch_size (10 values)",
             "decoding.top_k (10 values)")
    assert time.monotonic() - started < 20  # on 322c1fd: grows to OOM


def test_too_many_runs_over_cycles_is_refused(tmp_path):
    sweep = {"batch_size": list(range(1, 101)), "n_prompts": list(range(1, 101))}  # 10,000 configurations
    outcome = _cli(tmp_path, _study(sweep=sweep, execution={"n_cycles": MAX_RUNS // 10_000 + 1}), "--dry-run")
    _refused(outcome, "execution.n_cycles", f"{MAX_RUNS:,}")


def test_the_streaming_plan_matches_the_plain_expansion(tmp_path):
    """Shared sections and field-by-field hashing give exactly what validating and hashing each point does."""
    from llenergymeasure.domain import ExperimentConfig

    study = StudyConfig.model_validate({
        "base": {"model": "org/m", "measurement": {"baseline": {"duration_s": 2.5}}, "decoding": {"top_k": 3},
                 "transformers": {"use_cache": False}},
        "sweep": {"batch_size": [1, 4], "precision": ["fp32", "bf16"], "decoding.temperature": [0.5, 1.0],
                  "engine": ["transformers", "llama_cpp"]},
        "experiments": [{"engine": "llama_cpp", "llama_cpp": {"n_ctx": 64}}, {"mode": "serving", "engine": "vllm"}]})
    plan = expand(study)
    assert len(plan) == 2 * 2 * 2 * 2 + 2
    for index, raw in enumerate(raw_points(study)):
        try:
            expected = ExperimentConfig.model_validate(raw)
        except ValueError:
            assert not plan[index].valid
            continue
        assert plan[index].config_hash == expected.config_hash(), (index, raw)
        assert plan[index].config == expected
    # the order is itertools.product's: the last sweep key varies fastest
    combos = list(itertools.product([1, 4], ["fp32", "bf16"], [0.5, 1.0], ["transformers", "llama_cpp"]))
    assert [(r["batch_size"], r["precision"], r["decoding"]["temperature"], r["engine"])
            for r in raw_points(study)[:16]] == combos


def test_a_large_allowed_grid_keeps_no_config_per_point():
    study = StudyConfig.model_validate({"base": {"model": "org/m"},
                                        "sweep": {"batch_size": list(range(1, 101)), "n_prompts": list(range(1, 51))}})
    plan = expand(study)
    assert len(plan) == 5000 and len(set(plan.hashes)) == 5000
    assert len(plan._cache) <= 256  # configs are rebuilt on demand, not held per point
    assert plan[4999].config.batch_size == 100 and plan[4999].config.n_prompts == 50


# -- YAML ----------------------------------------------------------------------------------------

def test_a_recursive_alias_is_refused_with_its_line(tmp_path):
    _refused(_cli(tmp_path, "name: rec\nbase: &b {model: m, extra: *b}\n", "--dry-run"), "line 2", "recursive")
    _refused(_cli(tmp_path, "name: rec\nx: &a [1, *a]\nbase: {model: m}\n", "--dry-run"), "recursive")


def test_a_duplicate_key_is_refused_naming_it_and_its_line(tmp_path):
    text = "name: dup\nbase:\n  model: m\n  batch_size: 1\n  n_prompts: 2\n  batch_size: 8\n"
    _refused(_cli(tmp_path, text, "--dry-run"), "line 6", "'batch_size' is given twice", "first on line 4")


def test_merge_keys_are_not_duplicates(tmp_path, tiny_model_dir):
    text = (f"name: merge\nresults_dir: results\ncommon: &c {{model: {tiny_model_dir}, n_prompts: 1}}\n"
            "base:\n  <<: *c\n  n_prompts: 2\n")
    outcome = _cli(tmp_path, text, "--dry-run")
    assert "given twice" not in outcome.output


# -- bounded values -------------------------------------------------------------------------------

@pytest.mark.parametrize("field,value", [("experiment_gap_s", ".inf"), ("cycle_gap_s", ".inf"),
                                         ("cooldown_max_s", ".inf"), ("timeout_s", ".nan"),
                                         ("silence_timeout_s", "1e300"), ("experiment_gap_s", "1e12")])
def test_execution_floats_are_finite_and_bounded(tmp_path, field, value):
    text = f"name: f\nbase: {{model: org/m}}\nexecution: {{{field}: {value}}}\n"
    _refused(_cli(tmp_path, text, "--dry-run"), f"execution.{field}")


@pytest.mark.parametrize("path,value", [("measurement.baseline.duration_s", ".inf"),
                                        ("decoding.temperature", "1e308"),
                                        ("measurement.sampling_period_ms", ".nan"),
                                        ("random_seed", "1e33"), ("random_seed", str(2**40)), ("random_seed", "-1")])
def test_experiment_numbers_are_bounded(tmp_path, path, value):
    parts = path.split(".")
    nested = value
    for part in reversed(parts):
        nested = f"{{{part}: {nested}}}"
    text = f"name: f\nresults_dir: results\nbase: {{model: org/m}}\nexperiments: [{nested}]\n"
    _refused(_cli(tmp_path, text, "--dry-run"), parts[-1])


def test_a_shared_section_of_a_grid_is_checked_too(tmp_path):
    text = "name: f\nbase: {model: org/m, measurement: {baseline: {duration_s: .inf}}}\nsweep: {batch_size: [1, 2]}\n"
    _refused(_cli(tmp_path, text, "--dry-run"), "measurement.baseline.duration_s", "configuration #1")


def test_shm_size_is_validated_in_the_config(tmp_path):
    _refused(_cli(tmp_path, _study(docker={"shm_size": "notasize"}), "--dry-run"), "docker.shm_size", "'8g'")
    assert StudyConfig.model_validate({"docker": {"shm_size": "8g"}}).docker.shm_size == "8g"
    assert StudyConfig.model_validate({"docker": {"shm_size": "1.5GB"}}).docker.shm_size == "1.5GB"


def test_cycles_zero_is_a_config_error(tmp_path):
    _refused(_cli(tmp_path, _study(), "--cycles", "0", "--dry-run"), "--cycles")


def test_a_study_name_too_long_for_a_file_name_is_refused(tmp_path):
    _refused(_cli(tmp_path, _study() .replace("name: limits", "name: " + "n" * 300), "--dry-run"), "name", "100")


def test_an_uncreatable_lock_dir_is_a_config_error(tmp_path, tiny_model_dir, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("LLEM_LOCK_DIR", str(blocker / "locks"))
    text = _study(str(tiny_model_dir))
    _refused(_cli(tmp_path, text), "LLEM_LOCK_DIR", str(blocker / "locks"))
    _refused(_cli(tmp_path, text, "--dry-run"), "LLEM_LOCK_DIR")


# -- local paths, checked before anything starts ---------------------------------------------------

@pytest.mark.parametrize("model", ["./models/nope", "/no/such/dir", "~/no-such-llem-model", "../up/nope",
                                   "a/b/c", "/" + "x" * 5000, "a\\0b", "ünï/cødé", "org/name with spaces"])
def test_a_missing_local_model_is_refused_before_starting(tmp_path, model):
    for flags in ((), ("--dry-run",)):
        _refused(_cli(tmp_path, _study(model), *flags), "model:", "not an existing local directory", "org/name")


def test_a_hub_id_is_not_taken_for_a_missing_path(tmp_path):
    [item] = expand(StudyConfig.model_validate({"base": {"model": "org/name"}}))
    assert item.valid and item.config.model == "org/name"


def test_an_empty_or_missing_dataset_is_refused_before_the_model_loads(tmp_path, tiny_model_dir):
    (tmp_path / "empty.jsonl").write_bytes(b"")
    for dataset, words in (("empty.jsonl", ("dataset.path", "empty")),
                           ("missing.jsonl", ("dataset.path", "not found"))):
        text = _study(str(tiny_model_dir)).replace("n_prompts: 1", f"n_prompts: 1\n  dataset: {dataset}")
        for flags in ((), ("--dry-run",)):
            _refused(_cli(tmp_path, text, *flags), *words)


# -- --dry-run as a validator ---------------------------------------------------------------------

def test_dry_run_exits_2_naming_each_invalid_configuration(tmp_path, tiny_model_dir):
    text = _study(str(tiny_model_dir), sweep={"batch_size": [1, 0, -3]})
    _refused(_cli(tmp_path, text, "--dry-run"), "configuration #2", "configuration #3", "batch_size")


def test_dry_run_exits_0_for_a_study_that_would_start(tmp_path, tiny_model_dir):
    outcome = _cli(tmp_path, _study(str(tiny_model_dir), sweep={"random_seed": [1, 2]}), "--dry-run")
    assert outcome.exit_code == 0, outcome.output
    assert outcome.study_dirs_left == 0


def test_the_documented_limits_are_the_code_s():
    from llenergymeasure.study import expand as module

    assert (module.MAX_CONFIGURATIONS, module.MAX_RUNS) == (MAX_CONFIGURATIONS, MAX_RUNS)


# -- found by fuzzing the loader and the flags ----------------------------------------------------

def test_paths_too_long_for_the_file_system_are_config_errors(tmp_path):
    _refused(_cli(tmp_path, _study(results_dir="r/" * 3000), "--dry-run"), "results_dir")
    text = _study().replace("n_prompts: 1", "n_prompts: 1\n  dataset: {source: jsonl, path: " + "x" * 5000 + "}")
    _refused(_cli(tmp_path, text, "--dry-run"), "dataset.path")


def test_dry_run_names_a_bad_mount_and_an_impossible_parallel_plan(tmp_path):
    _refused(_cli(tmp_path, _study(docker={"extra_mounts": ["nocolon"]}), "--dry-run"), "extra_mounts")
    _refused(_cli(tmp_path, _study(execution={"parallel": 10**14}), "--dry-run"), "parallel")


# -- the streaming plan against plain validation, on random studies ----------------------------------

def _plain(raw):
    from llenergymeasure.domain import ExperimentConfig

    try:
        return ExperimentConfig.model_validate(raw).config_hash()
    except ValueError:
        return None


_FIELDS = {"batch_size": [1, 2, 0], "precision": ["fp32", "bf16", "fp8"], "engine": ["transformers", "llama_cpp",
           "pytorch", "vllm"], "decoding.temperature": [0.5, float("inf")], "decoding.top_k": [0, 5, -1],
           "measurement.warmup.min_batches": [1, 40], "measurement.warmup.max_batches": [2, 30],
           "measurement.baseline.duration_s": [0.5, 1e12], "mode": ["offline", "serving"],
           "llama_cpp.n_ctx": [64, 8], "dataset": ["synthetic", "hf:org/d"], "random_seed": [1, -1]}


def test_random_studies_plan_as_plain_validation_would():
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    keys = st.lists(st.sampled_from(sorted(_FIELDS)), min_size=1, max_size=4, unique=True)

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(sweep_keys=keys, base_keys=keys, data=st.data())
    def check(sweep_keys, base_keys, data):
        from llenergymeasure.study.expand import set_dotted

        base = {"model": "org/m"}
        for key in base_keys:
            if key not in sweep_keys:
                set_dotted(base, key, data.draw(st.sampled_from(_FIELDS[key])))
        sweep = {k: data.draw(st.lists(st.sampled_from(_FIELDS[k]), min_size=1, max_size=3)) for k in sweep_keys}
        try:
            study = StudyConfig.model_validate({"base": base, "sweep": sweep})
        except ValueError:
            return
        plan = expand(study)
        assert [e.config_hash for e in plan] == [_plain(raw) for raw in raw_points(study)]

    check()
