"""Fixtures for sim2real tests: ensembles of the `OvenCell` simulator (tests/sim2real/oven.py), a trained decoder."""
from __future__ import annotations

import pytest
import torch
import xarray as xr

from tests.sim2real.oven import OvenCell, make_real, run_ensemble

#: small settings so the whole sim2real suite runs in about a minute on one core
FAST_ENCODER = dict(pretrain_steps=300, pretrain_batch=256, steps=150, restarts=1, eval_samples=64)


@pytest.fixture(autouse=True)
def _torch_threads():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def oven_sim() -> OvenCell:
    return OvenCell()


@pytest.fixture(scope="session")
def ensemble(oven_sim) -> xr.Dataset:
    return run_ensemble(oven_sim, 500, seed=1)


@pytest.fixture(scope="session")
def real(oven_sim) -> xr.Dataset:
    """80 real-like tests with known θ (noise 1 K, missing tails and channels)."""
    return make_real(run_ensemble(oven_sim, 80, seed=2), seed=3)


@pytest.fixture(scope="session")
def decoder(oven_sim, ensemble):
    from sim2real import DecoderConfig, FrozenDecoderCVAE

    torch.set_num_threads(1)
    cfg = DecoderConfig(epochs=200, patience=40, seed=0)
    return FrozenDecoderCVAE(oven_sim, config=cfg).append_simulations(ensemble).train(torch.Generator().manual_seed(0))
