"""Indentation workbooks: every real file read or skipped with a reason; SI units; errors name the file."""
import json
import zipfile

import numpy as np
import pytest
import xarray as xr

from risk.data.indentation import raw_files, read_folder, read_workbook
from risk.errors import DataError


def test_every_raw_file_is_read_or_skipped_with_reason(folder_read, indentation_folder):
    files = {p.name for p in raw_files(indentation_folder)}
    read = {ds.attrs["source_file"] for ds in folder_read.tests}
    skipped = {s["file"] for s in folder_read.skipped}
    assert read | skipped == files and not (read & skipped)
    assert all(s["reason"] for s in folder_read.skipped)
    assert len(read) == 151 and sorted(skipped) == sorted([
        "Copy of SNL_LMO-LNO_Graphite_33Ah_50SOC_b-copy.xlsx", "SNL_LMO-LNO_Graphite_33Ah_50SOC_b-copy.xlsx",
        "OE-LFP10Ah-100SOC-Cell16-original.xlsx", "OE-LFP10Ah-80SOC-Cell15-origina.xlsx",
        "OE-LFP10Ah-80SOC-Cell15-original.xlsx"])


def test_summary_join_reports_unmatched(folder_read):
    assert folder_read.unmatched_summary_rows == []  # 2017ChevyVolt-... matches ChevyVolt-60SOC-6mm-cell1
    assert "OE-10Ahr-NMC-40SOC-cell5" in folder_read.unmatched_files
    assert sum(f.startswith("SNL_") for f in folder_read.unmatched_files) == 23


def test_typo_stems_join_tests_csv(tests_by_name):
    # "Sorteria", "S0C", "OE-LCo" vs "OE-LCO", "2017ChevyVolt" all find their tests.csv row
    assert tests_by_name["Sorteria-Control-100SOC-cell2"].attrs["hazard_level"] == 7
    assert tests_by_name["500mAh1-20S0C"].attrs["hazard_level"] == 2
    assert tests_by_name["OE-LCo-6470mAh-60SOC"].attrs["hazard_level"] == 6
    assert tests_by_name["2017ChevyVolt-60SOC-6mm-cell1"].attrs["in_summary"] == 1
    assert np.isnan(tests_by_name["SNL_NMC-LMO_Graphite_26Ah_50SOC_a"].attrs["hazard_level"])


def test_units_and_layouts(tests_by_name):
    ornl = tests_by_name["500mAh1-20S0C"]
    assert ornl.attrs["layout"] == "ornl"
    for name, var in ornl.variables.items():
        assert "units" in var.attrs and "long_name" in var.attrs, name
    # lb → N, compression positive; the N column agrees
    assert 1300 < float(ornl.force_indenter.max()) < 1700
    assert ornl.attrs["force_check"] == "Penetrator Force (N): consistent"
    assert ornl.attrs["displacement_measured"] == 0 and np.isnan(ornl.displacement_indenter).all()
    assert 290 < float(ornl.temperature_tc1.min()) < 300  # K
    assert ornl.sizes["time_thermocouple"] < ornl.sizes["time"]  # sparser thermocouple time base
    snl = tests_by_name["SNL_NMC-LMO_Graphite_26Ah_50SOC_a"]
    assert snl.attrs["layout"] == "sandia"
    assert snl.force_indenter.attrs["source_column"] == "Penetrator Force [mm]"  # mislabelled, read as N
    assert 1000 < float(snl.force_indenter.max()) < 1200
    assert 0.005 < float(snl.displacement_indenter.max()) < 0.012  # m
    assert len([v for v in snl.data_vars if v.startswith("temperature_tc")]) == 6


def test_unconverted_newton_column_is_detected(tests_by_name):
    ds = tests_by_name["1500mAh1-100S0C"]
    assert "unit conversion missing" in ds.attrs["force_check"]
    assert float(ds.force_indenter.max()) > 1500  # taken from the lb column, converted


def test_restarting_time_is_joined(tests_by_name):
    ds = tests_by_name["OE-10Ahr-NMC-70SOC-cell7"]
    assert np.all(np.diff(ds.time.values) >= 0)
    assert "segments joined" in ds.attrs["notes"]


def test_families(combined):
    fams = set(combined.cell_family.values)
    for f in ["LCO pouch 0.5 Ah", "LCO pouch 1.5 Ah", "LCO pouch 2 Ah", "LCO 6.4 Ah", "Soteria control",
              "Soteria SCC", "LFP 10 Ah", "NMC 10 Ah", "Chevy Volt", "Nissan Leaf", "Sandia NMC-LMO 26 Ah",
              "Sandia LMO-LNO 33 Ah"]:
        assert f in fams, f


def test_chemistry_codes_per_family(combined):
    """Every test carries its family's chemistry as the simulators' code (0 LCO, 1 NMC, 2 LFP); a chemistry the
    simulators do not have (the Chevy Volt's NMC-LMO blend) or that the data do not state (Soteria) is NaN."""
    code = dict(zip(combined.cell_family.values, combined.chemistry.values))
    assert code["LCO pouch 2 Ah"] == 0 and code["LCO 6.4 Ah"] == 0
    assert code["NMC 10 Ah"] == 1 and code["LFP 10 Ah"] == 2
    assert np.isnan(code["Chevy Volt"]) and np.isnan(code["Soteria control"])
    assert combined.chemistry.attrs["units"] == "1"


def _xlsx_with_header(path, header, rows):
    import openpyxl
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(header)
    for r in rows:
        ws.append(r)
    wb.save(path)


def test_missing_file_error(tmp_path):
    with pytest.raises(DataError, match="missing.xlsx.*not found"):
        read_workbook(tmp_path / "missing.xlsx")


def test_corrupt_workbook_error(tmp_path):
    bad = tmp_path / "corrupt.xlsx"
    bad.write_bytes(b"this is not a workbook")
    with pytest.raises(DataError, match="corrupt.xlsx"):
        read_workbook(bad)
    truncated = tmp_path / "truncated.xlsx"
    with zipfile.ZipFile(truncated, "w") as z:
        z.writestr("xl/nothing.xml", "<x/>")
    with pytest.raises(DataError, match="truncated.xlsx"):
        read_workbook(truncated)


def test_unknown_layout_error(tmp_path):
    p = tmp_path / "other-lab.xlsx"
    _xlsx_with_header(p, ["Zeit [s]", "Kraft [kN]", "Spannung [V]"], [[0, 1, 4.1], [1, 2, 4.1]])
    with pytest.raises(DataError, match="other-lab.xlsx.*unknown workbook layout"):
        read_workbook(p)


def test_folder_with_corrupt_file(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    _xlsx_with_header(raw / "NMC10Ah-50SOC-cell1.xlsx", ["Time (second)", "Load (lb)", "Voltage (V)"],
                      [[0.1 * i, -10.0 * i, 3.7 if i < 50 else 0.1] for i in range(100)])
    (raw / "broken.xlsx").write_bytes(b"garbage")
    with pytest.raises(DataError, match="broken.xlsx"):
        read_folder(tmp_path)
    r = read_folder(tmp_path, on_error="skip")
    assert [s["file"] for s in r.skipped] == ["broken.xlsx"]
    ds = r.tests[0]
    assert ds.attrs["cell_family"] == "NMC 10 Ah" and ds.attrs["soc"] == 0.5
    assert np.isclose(float(ds.force_indenter.max()), 990 * 0.45359237 * 9.80665, rtol=1e-6)


def test_workbooks_read_in_worker_processes_equal_one_process(indentation_folder, tmp_path):
    """`read_workbooks` in two spawned processes: the same datasets, in order, and a broken file's DataError
    (with its fields, pickled back) in its place."""
    import pickle

    from risk.data.indentation import read_workbooks
    from risk.data.limits import LimitError
    err = LimitError("too big", path=tmp_path / "x.xlsx", field="sheet1", line=3)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is LimitError and (back.problem, back.path, back.field, back.line) == \
        ("too big", tmp_path / "x.xlsx", "sheet1", 3) and str(back) == str(err)
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"garbage")
    paths = raw_files(indentation_folder)[:3] + [broken]
    serial = read_workbooks(paths, workers=1)
    parallel = read_workbooks(paths, workers=2, min_files=2)
    for a, b in zip(serial[:3], parallel[:3], strict=True):
        xr.testing.assert_identical(a, b)
    assert isinstance(parallel[3], DataError) and parallel[3].path == broken and \
        parallel[3].problem == serial[3].problem
