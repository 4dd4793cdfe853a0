"""`llem config` says which energy sources are readable here, and why not."""
from __future__ import annotations

from click.testing import CliRunner

from llenergymeasure.cli.energy_sources import rapl_source
from llenergymeasure.cli.main import cli
from llenergymeasure.runners.gpu_presence import visible_nvidia_gpus


def _zone(root, name, label, energy="123456"):
    zone = root / name
    zone.mkdir(parents=True)
    (zone / "name").write_text(label + "\n")
    if energy is not None:
        (zone / "energy_uj").write_text(energy + "\n")


def test_rapl_readable_zones_are_named(tmp_path):
    _zone(tmp_path, "intel-rapl:0", "package-0")
    _zone(tmp_path, "intel-rapl:0:0", "dram")
    status = rapl_source(tmp_path)
    assert status.readable and "package-0" in status.detail and "dram" in status.detail


def test_rapl_reasons_absent_tree_no_zones_unreadable_counter(tmp_path):
    assert "does not exist" in rapl_source(tmp_path / "absent").detail
    assert "no intel-rapl zones" in rapl_source(tmp_path).detail
    _zone(tmp_path, "intel-rapl:0", "package-0", energy=None)  # energy_uj missing: a read error
    status = rapl_source(tmp_path)
    assert not status.readable and "package-0" in status.detail


def test_llem_config_lists_the_energy_sources_with_reasons(monkeypatch, tmp_path):
    monkeypatch.setenv("LLEM_CONFIG", str(tmp_path / "absent.yaml"))
    out = CliRunner().invoke(cli, ["config"])
    assert out.exit_code == 0, out.output
    section = out.output.split("Energy sources readable here:")[1]
    for name in ("GPU energy counter (NVML)", "GPU instant power (NVML)", "CPU energy (RAPL)"):
        assert name in section
    if visible_nvidia_gpus()[0] == 0:  # this CI host: no GPU, so NVML says why
        assert "no: " in section.split("GPU energy counter (NVML)")[1].splitlines()[0]
