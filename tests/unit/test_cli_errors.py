"""CLI exit codes and messages: config errors exit 2 naming the field and the fix."""
from __future__ import annotations

from tests.helpers import run_llem


def _write(tmp_path, text: str):
    path = tmp_path / "study.yaml"
    path.write_text(text)
    return path


def test_misspelled_field_exits_2_naming_field_and_closest_valid_name(tmp_path):
    path = _write(tmp_path, "name: s\nbase:\n  model: m\n  batch_sise: 4\n")
    proc = run_llem("run", str(path))
    assert proc.returncode == 2
    assert "batch_sise" in proc.stderr and "did you mean 'batch_size'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_misspelled_top_level_section(tmp_path):
    proc = run_llem("run", str(_write(tmp_path, "name: s\nbase: {model: m}\nexecutoin: {n_cycles: 2}\n")))
    assert proc.returncode == 2
    assert "did you mean 'execution'" in proc.stderr


def test_bad_value_names_field(tmp_path):
    proc = run_llem("run", str(_write(tmp_path, "name: s\nbase: {model: m}\nexecution: {cycle_order: random}\n")))
    assert proc.returncode == 2
    assert "execution.cycle_order" in proc.stderr


def test_missing_file_and_invalid_yaml_exit_2(tmp_path):
    assert run_llem("run", str(tmp_path / "nope.yaml")).returncode == 2
    proc = run_llem("run", str(_write(tmp_path, "name: [unclosed\n")))
    assert proc.returncode == 2 and "not valid YAML" in proc.stderr


def test_verbose_shows_the_traceback(tmp_path):
    proc = run_llem("run", str(_write(tmp_path, "name: s\nbase: {model: m, n_promts: 3}\n")), "--verbose")
    assert proc.returncode == 2 and "Traceback" in proc.stderr


def test_no_config_and_no_model_is_a_usage_error(tmp_path):
    proc = run_llem("run")
    assert proc.returncode == 2 and "--model" in proc.stderr


def test_unknown_option_exits_2():
    assert run_llem("run", "--no-such-flag").returncode == 2


def test_dry_run_lists_experiments_and_order(tmp_path):
    path = _write(tmp_path, "name: s\nbase: {model: m}\nsweep: {batch_size: [1, 2, 0]}\n"
                            "execution: {n_cycles: 2, cycle_order: sequential}\n")
    proc = run_llem("run", str(path), "--dry-run")
    assert proc.returncode == 2, proc.stderr  # a validator: the invalid configuration is named, exit 2
    assert "configuration #3" in proc.stderr and "batch_size" in proc.stderr
    assert "3 configurations (2 valid, 1 skipped) × 2 cycles = 4 runs" in proc.stdout
    assert "SKIPPED" in proc.stdout and "#1c1 #1c2 #2c1 #2c2" in proc.stdout
    assert "estimate" in proc.stdout


def test_flags_override_yaml_and_sweep(tmp_path):
    (tmp_path / "m").mkdir()  # a local model directory: a hub id would be looked up in the cache and on the hub
    path = _write(tmp_path, "name: s\nbase: {model: m}\nsweep: {batch_size: [1, 2]}\n")
    proc = run_llem("run", str(path), "--batch-size", "8", "--dry-run", "-b", "pytorch")
    assert proc.returncode == 0, proc.stderr
    assert "1 configurations" in proc.stdout and "bs=8" in proc.stdout and "transformers" in proc.stdout


def test_version_and_help():
    assert run_llem("--version").stdout.startswith("llem, version")
    out = run_llem("--help").stdout
    for command in ("run", "config", "models", "images", "results"):
        assert command in out
