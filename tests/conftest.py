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
