"""The report, export and browser tests read the artefacts of a real ``risk run studies/indentation_pouch.yaml
--quick`` (the default study: simulated ensemble, frozen decoder, NUTS calibration that passed its gate,
grouped cross-validation, predictions), built once per source revision and shared with tests/integration
(tests/quick_runs.py). Tests that modify artefacts work on a private copy."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from risk.study import load_study
from tests.quick_runs import quick_run

STUDY = "indentation_pouch"


def pytest_collection_modifyitems(items):
    """The first test here builds the quick run (~10 min on 2 cores, its own 2700 s hang guard): these tests
    get 3600 s instead of the suite's 1800 s default."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.timeout(3600))


@pytest.fixture(scope="session")
def genuine_run() -> tuple[Path, dict]:
    """The real quick run directory and its study as the pipeline passes it (``Study.model_dump``)."""
    run = quick_run(STUDY)
    assert run.returncode == 0, f"{' '.join(run.cmd)} failed:\n{run.stderr[-4000:]}"
    return run.out, load_study(run.study, quick=True).model_dump(mode="json")


@pytest.fixture
def run_copy(genuine_run, tmp_path) -> tuple[Path, dict]:
    """A private copy of the real run, without its report and exports, that a test may modify."""
    src, study = genuine_run
    dst = tmp_path / src.name
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("report.html", "report.pdf", "exports", ".lock"))
    return dst, study
