"""Simulation-based calibration (Talts et al. 2018) of the hierarchical model with a linear surrogate.

R independent replicates are nested in ONE PyMC model (``name=f"r{k}"``), so a single NUTS run
samples all R posteriors (the joint posterior factorises). Data and true parameters come from the
model's own prior predictive. Ranks of the true ``mu_pop`` among thinned posterior draws must be
uniform (chi-square over 5 bins, lenient level 0.001).
"""
import numpy as np
import pymc as pm
import pytensor
import pytest
from tests.risk.bayes.linear_test_model import linear_surrogate
from scipy import stats

from risk.bayes import CalibrationData, build_hierarchical_model


def _sbc_ranks(R, seed, draws=200, thin=4):
    rng = np.random.default_rng(seed)
    fam = np.array(["a", "a", "b", "b"])
    c = rng.uniform(0, 1, (4, 1))
    dummy = CalibrationData(test=np.arange(4), family=fam, conditions=c, observables=np.zeros((4, 3)))
    kw = dict(parameter_names=["k1", "k2"], prior_mean=np.zeros(2), prior_sd=np.ones(2))
    with pytensor.config.change_flags(blas__ldflags=""):
        gen = build_hierarchical_model(dummy, linear_surrogate, **kw)
        prior = pm.sample_prior_predictive(draws=R, model=gen, random_seed=seed)
        y = prior["prior_predictive"]["observables"].values[0]  # (R, n_entries)
        truth = prior["prior"]["mu_pop"].values[0]  # (R, 2)
        with pm.Model() as joint:
            for k in range(R):
                d = CalibrationData(test=np.arange(4), family=fam, conditions=c, observables=y[k].reshape(4, 3))
                build_hierarchical_model(d, linear_surrogate, name=f"r{k}", **kw)
        with joint:
            tree = pm.sample(draws=draws, tune=300, chains=4, nuts_sampler="numpyro", random_seed=seed + 1,
                             target_accept=0.95, progressbar=False, nuts={"chain_method": "vectorized"})
    ranks = []
    for k in range(R):
        post = tree["posterior"][f"r{k}::mu_pop"].values[:, ::thin].reshape(-1, 2)
        ranks.extend((post < truth[k]).sum(axis=0))
    return np.array(ranks), post.shape[0]


def _uniform_pvalue(ranks, n_draws, bins=5):
    counts, _ = np.histogram(ranks, bins=bins, range=(0, n_draws + 1))
    return stats.chisquare(counts).pvalue


def test_sbc_reduced():
    ranks, n = _sbc_ranks(R=12, seed=5)
    assert _uniform_pvalue(ranks, n) > 1e-3


@pytest.mark.slow
def test_sbc_full():
    ranks, n = _sbc_ranks(R=60, seed=7)
    assert _uniform_pvalue(ranks, n, bins=10) > 1e-3
