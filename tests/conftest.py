"""Shared test fixtures: repository paths, the real data folder, seeds."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

import risk  # noqa: F401  (sets PyTensor's BLAS flags before anything imports pymc)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# Dask workers and CLI subprocesses must import `tests.helpers_sims` too.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real test data (../shared/data beside the repository); fails loudly if absent."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"real data folder not found at {SHARED_DATA}: clone the project with shared/ beside it")
    return SHARED_DATA


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261122)


#: per-test hang guard of each test package [s] (pytest-timeout; pyproject's 1800 s is the fallback): several
#: times the slowest test of the package on a loaded 2-core machine. A test's own ``timeout`` marker wins (the
#: quick-run readers in tests/risk/report and tests/integration wait for a whole study build).
PACKAGE_TIMEOUT = {"abuse_fe": 600, "simulators": 900, "sim2real": 900, "risk": 1200, "integration": 1800}


@pytest.hookimpl(trylast=True)  # after the packages' own hooks, which may set a longer timeout
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("timeout") is not None:
            continue
        parts = Path(str(item.fspath)).resolve().relative_to(REPO / "tests").parts
        if len(parts) > 1 and parts[0] in PACKAGE_TIMEOUT:
            item.add_marker(pytest.mark.timeout(PACKAGE_TIMEOUT[parts[0]]))
