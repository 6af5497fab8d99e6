"""Fixtures for sim2real tests: ensembles of the `OvenCell` simulator (tests/sim2real/oven.py)."""
from __future__ import annotations

import pytest
import torch
import xarray as xr

from tests.sim2real.oven import OvenCell, make_real, run_ensemble  # noqa: F401


@pytest.fixture(autouse=True)
def _torch_threads():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def oven_sim() -> OvenCell:
    return OvenCell()


@pytest.fixture(scope="session")
def ensemble(oven_sim) -> xr.Dataset:
    return run_ensemble(oven_sim, 600, seed=1)


@pytest.fixture(scope="session")
def real_sims(oven_sim) -> xr.Dataset:
    return run_ensemble(oven_sim, 80, seed=2)
