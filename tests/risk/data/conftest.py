"""Fixtures locating the real data in ../shared/data (CI clones the repo with shared/ beside it)."""
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"real data folder not found: {SHARED_DATA} (clone the repo with shared/ beside it)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def indentation_folder(shared_data) -> Path:
    return shared_data / "indentation"


@pytest.fixture(scope="session")
def bfd_path(shared_data) -> Path:
    return shared_data / "bfd" / "BatteryFailureDatabankV2_train.xlsx"


@pytest.fixture(scope="session")
def folder_read(indentation_folder):
    """Every workbook of the real indentation folder, read once per session."""
    from risk.data.indentation import read_folder
    return read_folder(indentation_folder)


@pytest.fixture(scope="session")
def tests_by_name(folder_read):
    return {ds.attrs["test"]: ds for ds in folder_read.tests}


@pytest.fixture(scope="session")
def combined(folder_read, indentation_folder):
    from risk.data.indentation import combine
    return combine(folder_read, indentation_folder)


@pytest.fixture(scope="session")
def bfd(bfd_path):
    from risk.data.ftrc import read_ftrc
    return read_ftrc(bfd_path)
