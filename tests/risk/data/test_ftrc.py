"""Battery Failure Databank reader: published anchors, cleaning, joins, registry and CLI."""
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from risk.data import read
from risk.data.cli import data_app
from risk.data.families import parse_test_name, summary_key
from risk.errors import DataError


@pytest.mark.parametrize("cell,mean_kj,n", [("LG 18650-MJ1 (Korean)", 88.3, 11), ("Samsung 18650-30Q", 67.7, 8),
                                             ("LG 21700-M50 (BV)", 98.7, 14)])
def test_published_anchors(bfd, cell, mean_kj, n):
    sel = bfd.heat_total.where((bfd.cell_type == cell) & (bfd.soc == 1.0), drop=True)
    assert sel.size == n
    assert abs(float(sel.mean()) / 1e3 - mean_kj) <= 0.5


def test_cleaning_and_joins(bfd):
    assert bfd.sizes["test"] == 293 and bfd.heat_total.attrs["units"] == "J"
    missing = json.loads(bfd.attrs["missing_counts"])
    assert missing["Pre-Test-Cell-Open-Circuit-Voltage-V"] == 63  # '-' cells
    assert missing["Avg-Cell-Temp-At-Trigger-degC"] == 43
    assert set(bfd.trigger.values) == {"Heater (ISC)", "Heater (Non-ISC)", "Nail"}
    assert "Top Vent and Bottum Rupture" not in set(bfd.failure_mechanism.values)
    assert int(bfd.bottom_rupture.sum()) == 10  # 8 + 1 typo + 1 breach
    assert np.nanmax(bfd.temperature_trigger) > 373 and np.nanmin(bfd.soc) == 0.0
    mj1 = bfd.where(bfd.cell_type == "LG 18650-MJ1 (Korean)", drop=True)
    assert np.allclose(mj1.capacity_nominal, 3.5 * 3600)
    frac = bfd.fraction_body + bfd.fraction_positive_ejecta + bfd.fraction_negative_ejecta
    assert int((np.abs(frac - 1) < 0.01).sum()) == 291  # two published rows do not sum to 100 %


def test_runaway_label_separates_heat_by_the_stored_electrical_energy(bfd):
    """25 'No Ejection' tests (all nail, SOC <= 60 %) are no-runaway; each released less heat than the cell's
    stored electrical energy at its SOC (the five SOC 0 % nail tests: under 3 kJ), and less than any ejecting
    test at SOC >= 40 %."""
    tr = bfd.thermal_runaway.values
    assert int((tr == 0).sum()) == 25 and int((tr == 1).sum()) == 268 and "rule" in bfd.thermal_runaway.attrs
    quiet = bfd.where(bfd.thermal_runaway == 0, drop=True)
    assert set(quiet.trigger.values) == {"Nail"} and float(quiet.soc.max()) <= 0.6
    stored = quiet.soc * quiet.energy_nominal  # [J]
    assert bool((quiet.heat_total < np.maximum(stored, 3e3)).all())
    ran = bfd.where((bfd.thermal_runaway == 1) & (bfd.soc >= 0.4), drop=True)
    assert float(quiet.heat_total.max()) < float(ran.heat_total.min())


def test_names():
    assert parse_test_name("OE-10AHr-NMC-40SOC-Cell4").cell_family == "NMC 10 Ah"
    assert parse_test_name("Soetria-Control-45SOC-cell1").cell_family == "Soteria control"
    n = parse_test_name("500mAh1-20S0C")
    assert (n.cell_family, n.soc, n.capacity_nominal_ah) == ("LCO pouch 0.5 Ah", 0.2, 0.5)
    assert summary_key("Copy of SNL_X_b-copy") == summary_key("SNL_X_b")


def test_registry_errors(tmp_path):
    with pytest.raises(DataError, match="unknown data kind"):
        read("xrd", tmp_path)
    with pytest.raises(DataError, match="nope.xlsx"):
        read("ftrc", tmp_path / "nope.xlsx")


def test_cli_summary_json(bfd_path, tmp_path):
    runner = CliRunner()
    res = runner.invoke(data_app, ["summary", str(bfd_path), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["kind"] == "ftrc" and out["tests"] == 293 and out["families"]["Samsung 18650-30Q"] == 8
    assert out["skipped"] == []
    res = runner.invoke(data_app, ["summary", str(tmp_path / "missing.xlsx")])
    assert res.exit_code == 2 and "missing.xlsx" in res.output


def test_ejecta_heat_share(bfd):
    """``heat_fraction_ejecta`` = positive + negative ejecta shares (else 1 - body share) of runaway tests, within
    [0, 1], NaN without runaway; the Samsung 30Q ejects most of its heat (mean 0.90 over its 8 tests, as the
    workbook's percentages give)."""
    ej = bfd["heat_fraction_ejecta"].values
    tr = bfd["thermal_runaway"].values.astype(bool)
    assert bfd["heat_fraction_ejecta"].attrs["units"] == "1"
    ok = np.isfinite(ej)
    assert ok.sum() > 200 and np.all((ej[ok] >= 0) & (ej[ok] <= 1))
    assert not ok[~tr].any() and 0 < (~tr).sum()
    both = tr & np.isfinite(bfd["fraction_positive_ejecta"].values) & np.isfinite(bfd["fraction_negative_ejecta"].values)
    np.testing.assert_allclose(ej[both], np.clip(bfd["fraction_positive_ejecta"].values[both]
                                                 + bfd["fraction_negative_ejecta"].values[both], 0, 1))
    q30 = bfd["cell_type"].values == "Samsung 18650-30Q"
    assert np.nanmean(ej[q30]) == pytest.approx(0.904, abs=0.01)
