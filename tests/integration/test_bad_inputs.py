"""Bad-input corpus (issue 9): malformed data files through the real CLI.

Each case gives exit code 2 and a one-line error naming the file (and the field where there is one),
and leaves no artefact that looks complete (no real.nc, no finished `ingest` record). Together with the
malformed studies in tests/risk/studies/bad/ (run by test_study_schema.py) the corpus has > 30 cases.
A folder without tests.csv is not an error: its tests are read as unlabelled (hazard level NaN).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import openpyxl
import pytest

REPO = Path(__file__).resolve().parents[2]
GOOD_RAW = "SNL_LMO-LNO_Graphite_33Ah_50SOC_b.xlsx"
STUDY = """
study: {{name: bad-data, seed: 1}}
cell: {{chemistry: LCO, format: pouch, capacity: 2 A h}}
simulator: {{name: "tests.helpers_sims:NewtonCooling"}}
ensemble: {{size: 2, workers: 1}}
data: {{kind: {kind}, path: {path}}}
"""


def _folder(tmp: Path, shared_data: Path) -> Path:
    """A small indentation dataset: the real tests.csv and one real Sandia workbook."""
    root = tmp / "indentation"
    (root / "raw").mkdir(parents=True)
    shutil.copy(shared_data / "indentation" / "tests.csv", root / "tests.csv")
    shutil.copy(shared_data / "indentation" / "raw" / GOOD_RAW, root / "raw" / GOOD_RAW)
    return root


def _workbook(path: Path, header: list, rows: list[list]):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(header)
    for r in rows:
        ws.append(r)
    wb.save(path)


ORNL_HEADER = ["Time (second)", "Load (lb)", "Voltage (V)"]


def _case_truncated(root, shared):
    data = (shared / "indentation" / "raw" / GOOD_RAW).read_bytes()
    (root / "raw" / "LCO-truncated-100SOC.xlsx").write_bytes(data[: len(data) // 3])
    return "LCO-truncated-100SOC.xlsx"


def _case_garbage(root, shared):
    (root / "raw" / "LCO-garbage-100SOC.xlsx").write_bytes(bytes(range(256)) * 40)
    return "LCO-garbage-100SOC.xlsx"


def _case_empty_file(root, shared):
    (root / "raw" / "LCO-empty-100SOC.xlsx").write_bytes(b"")
    return "LCO-empty-100SOC.xlsx"


def _case_zip_not_xlsx(root, shared):
    with zipfile.ZipFile(root / "raw" / "LCO-zip-100SOC.xlsx", "w") as z:
        z.writestr("hello.txt", "not a workbook")
    return "LCO-zip-100SOC.xlsx"


def _case_unknown_layout(root, shared):
    _workbook(root / "raw" / "LCO-layout-100SOC.xlsx", ["alpha", "beta", "gamma"], [[1, 2, 3], [4, 5, 6]])
    return "LCO-layout-100SOC.xlsx"


def _case_wrong_force_unit(root, shared):
    _workbook(root / "raw" / "LCO-unit-100SOC.xlsx", ["Time (second)", "Load (furlong)", "Voltage (V)"],
              [[0, 1, 4.1], [1, 2, 4.1], [2, 3, 4.0]])
    return "LCO-unit-100SOC.xlsx"


def _case_nan_force(root, shared):
    _workbook(root / "raw" / "LCO-nanforce-100SOC.xlsx", ORNL_HEADER,
              [[0, None, 4.1], [1, None, 4.1], [2, None, 4.0]])
    return "LCO-nanforce-100SOC.xlsx"


def _case_header_only(root, shared):
    _workbook(root / "raw" / "LCO-header-100SOC.xlsx", ORNL_HEADER, [])
    return "LCO-header-100SOC.xlsx"


def _case_text_in_numbers(root, shared):
    _workbook(root / "raw" / "LCO-text-100SOC.xlsx", ORNL_HEADER, [["a", "b", "c"], ["d", "e", "f"]])
    return "LCO-text-100SOC.xlsx"


def _case_soc_over_100(root, shared):
    text = (root / "tests.csv").read_text().splitlines()
    text[1] = ",".join(text[1].split(",")[:-1] + ["150"])
    (root / "tests.csv").write_text("\n".join(text) + "\n")
    return "tests.csv"


def _case_negative_capacity(root, shared):
    lines = (root / "tests.csv").read_text().splitlines()
    parts = lines[1].split(",")
    parts[-2] = "-4960"
    lines[1] = ",".join(parts)
    (root / "tests.csv").write_text("\n".join(lines) + "\n")
    return "tests.csv"


def _case_csv_missing_column(root, shared):
    lines = (root / "tests.csv").read_text().splitlines()
    (root / "tests.csv").write_text("\n".join(",".join(l.split(",")[1:]) for l in lines[:1]) + "\n")
    return "tests.csv"


def _case_csv_empty(root, shared):
    (root / "tests.csv").write_text("")
    return "tests.csv"


INDENTATION_CASES = [_case_truncated, _case_garbage, _case_empty_file, _case_zip_not_xlsx, _case_unknown_layout,
                     _case_wrong_force_unit, _case_nan_force, _case_header_only, _case_text_in_numbers,
                     _case_soc_over_100, _case_negative_capacity, _case_csv_missing_column, _case_csv_empty]


def _ingest(tmp_path: Path, kind: str, path: Path):
    tmp_path.mkdir(parents=True, exist_ok=True)
    study = tmp_path / "study.yaml"
    study.write_text(STUDY.format(kind=kind, path=json.dumps(str(path))))
    out = tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "risk.cli", "ingest", str(study), "--out", str(out)],
                         capture_output=True, text=True, cwd=REPO, timeout=300)
    return res, out


def _assert_clean_failure(res, out, name):
    assert res.returncode == 2, (res.returncode, res.stderr[-2000:])
    lines = [l for l in res.stderr.strip().splitlines() if l.strip()]
    msg = " ".join(res.stderr.split())
    assert name in msg, msg
    assert "Traceback" not in res.stderr
    assert len(lines) <= 3, res.stderr  # one message (rich may wrap it)
    assert not (out / "real.nc").exists()
    stages = json.loads((out / "stages.json").read_text()) if (out / "stages.json").exists() else {}
    assert "ingest" not in stages


@pytest.mark.parametrize("case", INDENTATION_CASES, ids=[c.__name__.removeprefix("_case_") for c in INDENTATION_CASES])
def test_bad_indentation_input_exit_2_naming_the_file(case, tmp_path, shared_data):
    root = _folder(tmp_path, shared_data)
    name = case(root, shared_data)
    res, out = _ingest(tmp_path, "indentation", root)
    _assert_clean_failure(res, out, name)


def test_bad_databank_workbooks(tmp_path, shared_data):
    src = shared_data / "bfd" / "BatteryFailureDatabankV2_train.xlsx"
    truncated = tmp_path / "truncated.xlsx"
    truncated.write_bytes(src.read_bytes()[:5000])
    res, out = _ingest(tmp_path, "ftrc", truncated)
    _assert_clean_failure(res, out, "truncated.xlsx")

    no_sheet = tmp_path / "nosheet.xlsx"
    _workbook(no_sheet, ["Read-Me"], [["nothing here"]])
    res, out = _ingest(tmp_path / "b", "ftrc", no_sheet)
    _assert_clean_failure(res, out, "nosheet.xlsx")

    res, out = _ingest(tmp_path / "c", "ftrc", tmp_path / "missing.xlsx")
    _assert_clean_failure(res, out, "missing.xlsx")
