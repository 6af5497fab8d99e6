"""The corpus of hostile inputs (issue 18) that the study validator and the data readers are checked against:
used by the tests (tests/risk/test_hostile_inputs.py) and the benchmark (benchmarks/hostile_inputs.py).

Each case is a function ``case(tmp) -> (argv, fragments)`` that writes its inputs into the folder ``tmp``:
the ``risk`` command line that must exit 2 with one line containing every fragment (file name and field
or limit), run with the working directory ``tmp / "work"``. Nothing may be written anywhere (the inputs
are the only files in ``tmp``). `CASES` lists every case, sorted by name.
"""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'


def workbook(path: Path, sheets: list[str] | None = None, n_sheets: int = 1, big_member: int = 0) -> Path:
    """A minimal .xlsx (zip of OOXML parts) with the given sheet XML bodies; ``big_member`` bytes of zeros
    in an extra member (deflated: 300 MB take ~300 kB)."""
    sheets = sheets or [f"<?xml version='1.0'?><worksheet {NS}><sheetData><row r='1'><c r='A1'><v>1</v></c></row>"
                        "</sheetData></worksheet>"]
    n_sheets = max(n_sheets, len(sheets))
    entries = "".join(f'<sheet name="S{i}" sheetId="{i + 1}" r:id="rId{i + 1}"/>' for i in range(n_sheets))
    rels = "".join(f'<Relationship Id="rId{i + 1}" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
                   f'relationships/worksheet" Target="worksheets/sheet{i + 1}.xml"/>' for i in range(n_sheets))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/'
                   'package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/></Types>')
        z.writestr("_rels/.rels", '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/'
                   'package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/'
                   'officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>')
        z.writestr("xl/workbook.xml", f'<?xml version="1.0"?><workbook {NS} xmlns:r="http://schemas.openxmlformats.'
                   f'org/officeDocument/2006/relationships"><sheets>{entries}</sheets></workbook>')
        z.writestr("xl/_rels/workbook.xml.rels", '<?xml version="1.0"?><Relationships xmlns="http://schemas.'
                   f'openxmlformats.org/package/2006/relationships">{rels}</Relationships>')
        for i in range(n_sheets):
            z.writestr(f"xl/worksheets/sheet{i + 1}.xml", sheets[i % len(sheets)])
        if big_member:
            with z.open("xl/media/padding.bin", "w", force_zip64=True) as fh:
                block = bytes(2**20)
                for _ in range(big_member // 2**20 + 1):
                    fh.write(block)
    return path


def _sheet(body: str, dimension: str = "") -> str:
    dim = f'<dimension ref="{dimension}"/>' if dimension else ""
    return f"<?xml version='1.0'?><worksheet {NS}>{dim}<sheetData>{body}</sheetData></worksheet>"


def _prepare(tmp: Path) -> Path:
    (tmp / "work").mkdir(parents=True, exist_ok=True)
    return tmp


def _folder(tmp: Path) -> Path:
    """An indentation folder with a valid tests.csv and no workbook yet."""
    root = _prepare(tmp) / "data"
    (root / "raw").mkdir(parents=True)
    (root / "tests.csv").write_text("FileName,ObservedScoreText,ObservedScore,CalculatedScore,Capacity_mAh,SOC_pct\n"
                                    "LCO-2Ah-1-100SOC,Level 6,6,,2000,100\n", encoding="utf-8")
    return root


def _summary(root: Path) -> list[str]:
    return ["data", "summary", str(root)]


# ------------------------------------------------------------------------------ workbooks (data summary)
def case_xlsx_member_over_256mb(tmp):
    p = workbook(_prepare(tmp) / "big-member.xlsx", big_member=257 * 2**20)
    return _summary(p), ["big-member.xlsx", "xl/media/padding.bin", "MAX_MEMBER_BYTES"]


def case_xlsx_33_sheets(tmp):
    p = workbook(_prepare(tmp) / "many-sheets.xlsx", n_sheets=33)
    return _summary(p), ["many-sheets.xlsx", "sheets", "MAX_SHEETS"]


def case_xlsx_rows_by_dimension(tmp):
    p = workbook(_prepare(tmp) / "dim-rows.xlsx", [_sheet("<row r='1'><c r='A1'><v>1</v></c></row>", "A1:B2000001")])
    return _summary(p), ["dim-rows.xlsx", "rows", "MAX_ROWS"]


def case_xlsx_far_row_reference(tmp):
    p = workbook(_prepare(tmp) / "far-row.xlsx", [_sheet("<row r='2500000'><c r='A2500000'><v>1</v></c></row>", "A1")])
    return _summary(p), ["far-row.xlsx", "rows", "MAX_ROWS"]


def case_xlsx_sparse_corner_cell(tmp):
    """One cell at XFD1048576 in a 1 kB file: calamine would allocate 17 G cells."""
    p = workbook(_prepare(tmp) / "corner.xlsx", [_sheet("<row r='1048576'><c r='XFD1048576'><v>1</v></c></row>")])
    return _summary(p), ["corner.xlsx", "cells", "MAX_CELLS"]


def case_xlsx_columns_beyond_excel(tmp):
    p = workbook(_prepare(tmp) / "wide.xlsx", [_sheet("<row r='1'><c r='ZZZZ1'><v>1</v></c></row>")])
    return _summary(p), ["wide.xlsx", "columns", "MAX_COLUMNS"]


def case_xlsx_many_empty_rows(tmp):
    """2.1 M ``<row/>`` (13 MB of XML, 30 kB zipped) without any row number."""
    p = workbook(_prepare(tmp) / "rows.xlsx", [_sheet("<row/>" * 2_100_000)])
    return _summary(p), ["rows.xlsx", "rows", "MAX_ROWS"]


def case_raw_workbook_corner_cell(tmp):
    """In an indentation folder, where unreadable workbooks are only skipped: limits still stop the read."""
    root = _folder(tmp)
    workbook(root / "raw" / "LCO-2Ah-1-100SOC.xlsx", [_sheet("<row r='1048576'><c r='XFD1048576'><v>1</v></c></row>")])
    return _summary(root), ["LCO-2Ah-1-100SOC.xlsx", "MAX_CELLS"]


# ------------------------------------------------------------------------------------------- tests.csv
def _with_workbook(root: Path) -> Path:
    workbook(root / "raw" / "LCO-2Ah-1-100SOC.xlsx")
    return root


def case_csv_latin1(tmp):
    root = _with_workbook(_folder(tmp))
    (root / "tests.csv").write_bytes("FileName,ObservedScore,Capacity_mAh,SOC_pct\nLCO-2Ah-1-100SOC,6,2000,100\n"
                                     "Zelle-Größe,5,2000,50\n".encode("latin-1"))
    return _summary(root), ["tests.csv", "encoding", "not UTF-8"]


def case_csv_utf16(tmp):
    root = _with_workbook(_folder(tmp))
    (root / "tests.csv").write_bytes("FileName,ObservedScore,Capacity_mAh,SOC_pct\nLCO-2Ah-1-100SOC,6,2000,100\n"
                                     .encode("utf-16"))
    return _summary(root), ["tests.csv", "encoding", "UTF-16"]


def case_csv_duplicate_after_normalisation(tmp):
    root = _with_workbook(_folder(tmp))
    (root / "tests.csv").write_text("FileName,ObservedScore,Capacity_mAh,SOC_pct\nLCO-2Ah-1-100SOC,6,2000,100\n"
                                    "lco_2ah_1_100soc,3,2000,100\n", encoding="utf-8")
    return _summary(root), ["tests.csv:3", "FileName", "line 2"]


def case_csv_duplicate_copy_marker(tmp):
    root = _with_workbook(_folder(tmp))
    (root / "tests.csv").write_text("FileName,ObservedScore,Capacity_mAh,SOC_pct\nLCO-2Ah-1-100SOC,6,2000,100\n"
                                    "Copy of LCO-2Ah-1-100SOC,3,2000,100\n", encoding="utf-8")
    return _summary(root), ["tests.csv:3", "FileName", "line 2"]


def case_predict_tests_csv_not_utf8(tmp):
    _prepare(tmp)
    (tmp / "run").mkdir()
    (tmp / "new.csv").write_bytes("FileName,SOC_pct\nCellé,50\n".encode("cp1252"))
    return ["predict", str(tmp / "run"), "--tests", str(tmp / "new.csv")], ["new.csv", "encoding"]


def case_predict_tests_duplicates(tmp):
    _prepare(tmp)
    (tmp / "run").mkdir()
    (tmp / "new.csv").write_text("FileName,SOC_pct\nLCO-2Ah-1-100SOC,50\nLCO_2Ah_1_100SOC,50\n")
    return ["predict", str(tmp / "run"), "--tests", str(tmp / "new.csv")], ["new.csv:3", "FileName"]


def case_predict_tests_workbook_corner(tmp):
    _prepare(tmp)
    (tmp / "run").mkdir()
    workbook(tmp / "new.xlsx", [_sheet("<row r='1048576'><c r='XFD1048576'><v>1</v></c></row>")])
    return ["predict", str(tmp / "run"), "--tests", str(tmp / "new.xlsx")], ["new.xlsx", "MAX_CELLS"]


# ---------------------------------------------------------------------------------------- data folders
def case_link_out_of_data_folder(tmp):
    root = _with_workbook(_folder(tmp))
    (tmp / "secret.txt").write_text("outside")
    os.symlink(tmp / "secret.txt", root / "raw" / "stolen.xlsx")
    return _summary(root), ["stolen.xlsx", "link", "outside the data folder"]


def case_linked_dir_out_of_data_folder(tmp):
    root = _with_workbook(_folder(tmp))
    os.symlink("/etc", root / "raw" / "etc")
    return _summary(root), ["etc", "link", "outside the data folder"]


def case_broken_link_in_data_folder(tmp):
    root = _with_workbook(_folder(tmp))
    os.symlink(tmp / "missing.xlsx", root / "raw" / "gone.xlsx")
    return _summary(root), ["gone.xlsx", "link"]


def case_fifo_in_data_folder(tmp):
    root = _with_workbook(_folder(tmp))
    os.mkfifo(root / "raw" / "LCO-fifo-100SOC.xlsx")
    return _summary(root), ["LCO-fifo-100SOC.xlsx", "file type"]


def _study(tmp: Path, name: str = "hostile", data: Path | None = None) -> Path:
    """A small valid study (the project's lumped oven simulator) in ``tmp / "study"``, optionally with data."""
    text = (f"study: {{name: {name}, seed: 7}}\n"
            "cell: {chemistry: LCO, format: '18650', capacity: 2.6 A h}\n"
            "simulator: {name: lumped_thermal, options: {t_end: 600.0, n_time: 11}}\n"
            "conditions: {temperature_oven: {low: 130 degC, high: 175 degC}, soc: {low: 0.5, high: 1.0}}\n"
            "ensemble: {size: 8, design: sobol, workers: 1}\n")
    if data is not None:
        text += f"data: {{kind: indentation, path: {str(data)!r}}}\n"
    p = _prepare(tmp) / "study" / "study.yaml"
    p.parent.mkdir(exist_ok=True)
    p.write_text(text)
    return p


def case_ingest_link_out_of_data_folder(tmp):
    root = _with_workbook(_folder(tmp))
    study = _study(tmp, data=root)
    os.symlink(study, root / "raw" / "LCO-2Ah-2-100SOC.xlsx")
    return ["ingest", str(study), "--out", str(tmp / "work" / "run")], ["LCO-2Ah-2-100SOC.xlsx", "link"]


def case_ingest_workbook_too_many_sheets(tmp):
    root = _folder(tmp)
    workbook(root / "raw" / "LCO-2Ah-1-100SOC.xlsx", n_sheets=40)
    study = _study(tmp, data=root)
    return ["ingest", str(study), "--out", str(tmp / "work" / "run")], ["LCO-2Ah-1-100SOC.xlsx", "MAX_SHEETS"]


# ----------------------------------------------------------------------------------- run directories
def case_out_is_working_directory(tmp):
    study = _study(tmp)
    return ["run", str(study), "--out", str(tmp / "work")], ["study.yaml", "--out", "working directory"]


def case_out_is_parent_of_project(tmp):
    study = _study(tmp)
    return ["simulate", str(study), "--out", str(tmp)], ["study.yaml", "--out", "parents"]


def case_out_is_filesystem_root(tmp):
    study = _study(tmp)
    return ["report", str(study), "--out", "/"], ["study.yaml", "--out", "parents"]


def case_out_is_study_folder(tmp):
    study = _study(tmp)
    return ["run", str(study), "--out", str(study.parent)], ["study.yaml", "--out", "study file's folder"]


def case_out_is_dotdot(tmp):
    study = _study(tmp)
    return ["export", str(study), "--out", ".."], ["study.yaml", "--out", "parents"]


def case_out_is_foreign_folder(tmp):
    study = _study(tmp)
    (tmp / "work" / "photos").mkdir()
    (tmp / "work" / "photos" / "holiday.jpg").write_bytes(b"\xff\xd8")
    return ["run", str(study), "--out", str(tmp / "work" / "photos")], ["study.yaml", "--out", "not a run directory"]


def case_out_is_a_file(tmp):
    study = _study(tmp)
    (tmp / "work" / "notes.txt").write_text("mine")
    return ["run", str(study), "--out", str(tmp / "work" / "notes.txt")], ["study.yaml", "--out", "not a folder"]


def case_out_inside_data(tmp):
    root = _with_workbook(_folder(tmp))
    study = _study(tmp, data=root)
    return ["ingest", str(study), "--out", str(root / "raw" / "run")], ["study.yaml", "--out", "inside the data path"]


def case_out_is_data_folder(tmp):
    root = _with_workbook(_folder(tmp))
    study = _study(tmp, data=root)
    return ["ingest", str(study), "--out", str(root)], ["study.yaml", "--out", "data path"]


def case_validate_default_run_dir_is_foreign(tmp):
    study = _study(tmp, name="photos")
    (tmp / "work" / "runs" / "photos").mkdir(parents=True)
    (tmp / "work" / "runs" / "photos" / "holiday.jpg").write_bytes(b"\xff\xd8")
    return ["validate", str(study)], ["study.yaml", "study.name", "not a run directory"]


def case_validate_yaml_bomb(tmp):
    _prepare(tmp)
    p = tmp / "bomb.yaml"
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, cur in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    p.write_text("\n".join(lines) + "\n")
    return ["validate", str(p)], ["bomb.yaml", "aliases", "MAX_YAML_NODES"]


def case_validate_deep_nesting(tmp):
    _prepare(tmp)
    p = tmp / "deep.yaml"
    p.write_text("a: " + "[" * 100_000 + "]" * 100_000 + "\n")
    return ["validate", str(p)], ["deep.yaml", "nesting", "MAX_YAML_DEPTH"]


def case_validate_huge_study_file(tmp):
    _prepare(tmp)
    p = tmp / "huge.yaml"
    p.write_text("study: {name: x, seed: 1}\n" + "# padding\n" * 200_000)
    return ["validate", str(p)], ["huge.yaml", "size", "MAX_STUDY_BYTES"]


def case_validate_giant_integer(tmp):
    _prepare(tmp)
    p = tmp / "int.yaml"
    p.write_text("study: {name: x, seed: " + "9" * 10_000 + "}\n")
    return ["validate", str(p)], ["int.yaml", "4300 digits"]


CASES = [v for k, v in sorted(globals().items()) if k.startswith("case_")]
