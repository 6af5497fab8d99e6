"""Hostile inputs (issue 18) through the real CLI: exit 2, one line naming the file and the field or limit,
nothing written outside the run directory. The cases live in risk/schema/hostile_corpus.py (the benchmark
benchmarks/hostile_inputs.py times the same cases); hostile study files are also in tests/risk/studies/bad/.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from risk.cli import app
from risk.schema import hostile_corpus
from risk.schema.hostile_corpus import CASES

runner = CliRunner()


def _tree(root: Path) -> dict[str, tuple]:
    """Every path under ``root`` (links not followed) with its type and size: a cheap snapshot."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_mode, st.st_size if not p.is_dir() else 0)
    return out


def _outside_run_dir(tree: dict, run_dir: str = os.path.join("work", "run")) -> dict:
    return {k: v for k, v in tree.items() if k != run_dir and not k.startswith(run_dir + os.sep)}


@pytest.mark.parametrize("case", CASES, ids=[c.__name__.removeprefix("case_") for c in CASES])
def test_hostile_input_exit_2_naming_file_and_field(case, tmp_path, monkeypatch):
    argv, fragments = case(tmp_path)
    before = _tree(tmp_path)
    monkeypatch.chdir(tmp_path / "work")
    res = runner.invoke(app, argv)
    assert res.exit_code == 2, (res.exit_code, res.output[-2000:], res.exception)
    msg = " ".join(res.output.split())
    for fragment in fragments:
        assert fragment in msg, (fragment, msg)
    assert "Traceback" not in res.output
    assert len([line for line in res.output.splitlines() if line.strip()]) <= 3, res.output  # one line (wrapped)
    # the working directory is tmp_path/work: a default runs/<name>/ would show here too
    assert _outside_run_dir(_tree(tmp_path)) == _outside_run_dir(before)


def test_a_real_subprocess_rejects_a_yaml_bomb(tmp_path):
    """The same through `python -m risk.cli` (no CliRunner): exit 2, stderr names the file."""
    argv, fragments = hostile_corpus.case_validate_yaml_bomb(tmp_path)
    res = subprocess.run([sys.executable, "-m", "risk.cli", *argv], capture_output=True, text=True,
                         cwd=tmp_path / "work", timeout=120)
    assert res.returncode == 2, res.stderr
    assert all(f in " ".join(res.stderr.split()) for f in fragments), res.stderr


def test_existing_run_directory_and_empty_folder_are_accepted(tmp_path, monkeypatch):
    """The rule's other side: a folder with a run marker, or an empty one, is a valid --out."""
    from risk.rundir import RUN_MARKERS, run_dir
    from risk.study import load_study

    study = load_study(hostile_corpus._study(tmp_path))
    monkeypatch.chdir(tmp_path / "work")
    for marker in RUN_MARKERS:
        d = tmp_path / "work" / f"run-{marker}"
        d.mkdir()
        (d / marker).write_text("{}")
        (d / "ensemble.zarr").mkdir()
        assert run_dir(study, d) == d.resolve()
    (tmp_path / "work" / "empty").mkdir()
    assert run_dir(study, tmp_path / "work" / "empty") == (tmp_path / "work" / "empty").resolve()
    assert run_dir(study) == (tmp_path / "work" / "runs" / "hostile").resolve()


def test_data_folder_may_be_a_link_outside_the_project(tmp_path):
    """A data.path outside the project (here a link to it) is legitimate; links inside that stay inside too."""
    from risk.data.limits import check_data_folder

    root = hostile_corpus._folder(tmp_path / "elsewhere")
    hostile_corpus.workbook(root / "raw" / "LCO-2Ah-1-100SOC.xlsx")
    os.symlink(root / "raw" / "LCO-2Ah-1-100SOC.xlsx", root / "raw" / "LCO-2Ah-1-100SOC-copy.xlsx")
    os.symlink(root, tmp_path / "data-link")
    check_data_folder(tmp_path / "data-link")
    check_data_folder(root)


def test_copy_marker_duplicates_of_raw_files_still_load(tmp_path):
    """A raw workbook and its 'Copy of' twin: the copy is skipped with a reason, as before."""
    from risk.data.indentation import read_folder

    root = hostile_corpus._folder(tmp_path)
    rows = "".join(f"<row r='{i}'><c r='A{i}'><v>{i}</v></c><c r='B{i}'><v>{i}</v></c><c r='C{i}'><v>4</v></c></row>"
                   for i in range(2, 40))
    head = ("<row r='1'><c r='A1' t='inlineStr'><is><t>Time (second)</t></is></c><c r='B1' t='inlineStr'><is>"
            "<t>Load (lb)</t></is></c><c r='C1' t='inlineStr'><is><t>Voltage (V)</t></is></c></row>")
    sheet = hostile_corpus._sheet(head + rows)
    hostile_corpus.workbook(root / "raw" / "LCO-2Ah-1-100SOC.xlsx", [sheet])
    hostile_corpus.workbook(root / "raw" / "Copy of LCO-2Ah-1-100SOC.xlsx", [sheet])
    got = read_folder(root, on_error="skip")
    assert len(got.tests) == 1
    assert [s["file"] for s in got.skipped] == ["Copy of LCO-2Ah-1-100SOC.xlsx"]
    assert "copy of LCO-2Ah-1-100SOC.xlsx" in got.skipped[0]["reason"]


def test_real_workbooks_pass_the_limits(shared_data):
    """The limits leave the real data alone (the largest real workbook is ~18 MB unpacked)."""
    from risk.data.limits import check_workbook

    biggest = max((shared_data / "indentation" / "raw").glob("*.xlsx"), key=lambda p: p.stat().st_size)
    check_workbook(biggest)
    check_workbook(shared_data / "bfd" / "BatteryFailureDatabankV2_train.xlsx")
