"""No study value becomes a command: control characters in paths and names are refused (exit 2, the
field named), the Slurm batch script quotes what it interpolates and refuses what it cannot write,
names reach the terminal escaped, and CSV cells a spreadsheet would evaluate are neutralised."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from llenergymeasure.domain import ManifestEntry
from llenergymeasure.errors import ConfigError
from llenergymeasure.executors.slurm import SlurmOptions, batch_script
from tests.helpers import run_llem
from tests.unit.results_factory import make_result, write_study_dir

ESC_TITLE = "\x1b]0;pwned\x07"  # OSC: retitles the terminal


def _script(study_dir: Path, options: SlurmOptions | None = None, time_limit: str = "25") -> str:
    return batch_script(study_dir, "llem-s", 2, Path("/shared/tasks-1.json"), options or SlurmOptions(), 1,
                        time_limit, python="/opt/venv/bin/python")


def test_a_newline_in_the_study_directory_never_becomes_a_line_of_the_batch_script():
    with pytest.raises(ConfigError, match="control character"):
        _script(Path("/shared/r\ntouch /shared/PWNED_SLURM"))


@pytest.mark.parametrize("options, flag", [(SlurmOptions(partition="gpu\ntouch /x"), "--slurm-partition"),
                                           (SlurmOptions(account="lab --qos=high"), "--slurm-account"),
                                           (SlurmOptions(time_limit="10\n#SBATCH --x"), "--slurm-time"),
                                           (SlurmOptions(sbatch_args=["--qos=a\nb"]), "--slurm-sbatch-arg")])
def test_slurm_flags_that_cannot_be_written_safely_are_refused(options, flag):
    with pytest.raises(ConfigError, match=flag):
        _script(Path("/shared/study"), options)


def test_every_interpolated_sbatch_value_is_quoted():
    lines = _script(Path("/shared/my study #1")).splitlines()
    assert r"#SBATCH --output=/shared/my\ study\ \#1/slurm/logs/%A_%a.out" in lines
    assert all(line.startswith(("#", "exec ")) for line in lines if line)


def test_a_newline_in_results_dir_exits_2_naming_the_field(tmp_path, tiny_model_dir):
    study = tmp_path / "study.yaml"
    study.write_text(f'name: s\nresults_dir: "{tmp_path}/r\\ntouch {tmp_path}/PWNED"\nbase: {{model: {tiny_model_dir}}}\n')
    proc = run_llem("run", str(study), "--dry-run")
    assert proc.returncode == 2 and "results_dir" in proc.stderr and "control character" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("args, field", [(("-o", "out\ndir"), "results_dir"),
                                         (("-m", "/models/a\x1b]0;x\x07"), "model")])
def test_control_characters_in_cli_paths_exit_2_naming_the_field(tmp_path, tiny_model_dir, args, field):
    args = args if args[0] == "-m" else ("-m", str(tiny_model_dir), *args)
    proc = run_llem("run", *args, "--dry-run", cwd=tmp_path)
    assert proc.returncode == 2 and field in proc.stderr + proc.stdout and "control character" in proc.stderr + proc.stdout
    assert "\x1b" not in proc.stderr + proc.stdout


def test_a_newline_in_a_slurm_flag_exits_2_naming_the_flag(tmp_path, tiny_model_dir):
    proc = run_llem("run", "-m", str(tiny_model_dir), "--executor", "slurm", "--slurm-partition", "gpu\ntouch /x",
                    cwd=tmp_path)
    assert proc.returncode == 2 and "--slurm-partition" in proc.stderr and "not a Slurm name" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "results").exists()  # refused before anything


def test_run_progress_lines_escape_control_characters(capsys):
    from llenergymeasure.cli.progress import PlainObserver

    entry = ManifestEntry(experiment_index=0, cycle=1, config_hash="0" * 16, status="failed", runner="local",
                          config_summary=f"transformers /m/x{ESC_TITLE} bs1", error_type="OSError",
                          error_message=f"no such model /m/x{ESC_TITLE}\rforged")
    observer = PlainObserver()
    observer.run_started(1, 1, entry)
    observer.run_finished(entry, None)
    out = capsys.readouterr()
    assert "\x1b" not in out.out + out.err and "\x07" not in out.out + out.err and "\r" not in out.err
    assert "\\x1b]0;pwned\\x07" in out.out


def test_results_show_never_sends_a_result_files_control_characters_to_the_terminal(tmp_path):
    import json

    study_dir = write_study_dir(tmp_path, [make_result(1, 1, 1.0, None)])
    path = next(study_dir.glob("runs/*/result.json"))
    data = json.loads(path.read_text())
    data["config"]["model"] = f"/models/x{ESC_TITLE}"
    path.write_text(json.dumps(data))
    proc = run_llem("results", "show", str(study_dir))
    assert "\x1b" not in proc.stdout + proc.stderr and "\x07" not in proc.stdout + proc.stderr


def test_results_show_prints_markup_in_a_model_name_literally(tmp_path):
    result = make_result(1, 1, 1.0, None)
    config = result.config.model_copy(update={"model": "/models/[bold]tiny"})
    result = result.model_copy(update={"config": config, "config_hash": config.config_hash()})
    study_dir = write_study_dir(tmp_path, [result])
    proc = run_llem("results", "show", str(study_dir))
    assert proc.returncode == 0, proc.stderr
    assert "[bold]tiny" in proc.stdout


def test_status_escapes_control_characters_from_the_manifest(tmp_path):
    import json

    study_dir = write_study_dir(tmp_path, [make_result(1, 1, 1.0, None)])
    manifest = json.loads((study_dir / "manifest.json").read_text())
    manifest["entries"][0].update(status="failed", error_type="OSError", error_message=f"bad {ESC_TITLE} [red]x",
                                  result_file=None)
    (study_dir / "manifest.json").write_text(json.dumps(manifest))
    proc = run_llem("status", str(study_dir))
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout and "\\x1b]0;pwned\\x07" in proc.stdout


def test_results_csv_neutralises_cells_a_spreadsheet_would_evaluate(tmp_path):
    from llenergymeasure.results.outputs import write_table

    rows = [{"model": "=cmd|' /C calc'!A0", "name": "+1", "other": "@SUM(A1)", "tab": "\tx",
             "dash": "-2+3", "plain": "tiny", "number": -1.5}]
    path = write_table(rows, tmp_path / "results.csv", "csv")
    row = next(csv.DictReader(path.open(newline="")))
    assert row == {"model": "'=cmd|' /C calc'!A0", "name": "'+1", "other": "'@SUM(A1)", "tab": "'\tx",
                   "dash": "'-2+3", "plain": "tiny", "number": "-1.5"}
    write_table([{"cr": "\rx"}], tmp_path / "cr.csv", "csv")
    assert (tmp_path / "cr.csv").read_bytes() == b"cr\n'\rx\n"


def test_export_csv_is_neutralised_too(tmp_path):
    result = make_result(1, 1, 1.0, None)
    config = result.config.model_copy(update={"model": "=HYPERLINK(\"http://x\")"})
    result = result.model_copy(update={"config": config, "config_hash": config.config_hash()})
    study_dir = write_study_dir(tmp_path, [result])
    proc = run_llem("results", "export", str(study_dir), "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    row = next(csv.DictReader((study_dir / "export" / "runs.csv").open(newline="")))
    assert row["config.model"] == "'=HYPERLINK(\"http://x\")"

