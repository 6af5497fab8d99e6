"""Simulation-based calibration (Talts et al. 2018) of the hierarchical model with a linear surrogate.

R independent replicates are the model's own batched copies (``train_mask``: copy k sees only replicate
k's tests; every variable leads with a ``fold`` dim), so one NUTS run and one JAX compilation sample all R
posteriors — the code path the cross-validation folds use. Data and true parameters come from the
model's own prior predictive. Ranks of the true ``mu_pop`` among thinned posterior draws must be
uniform (chi-square over 5 bins, lenient level 0.001). The whole physics model with the real decoder
has its own SBC (test_sbc_pipeline.py, `benchmarks/sbc_pipeline.py`).
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
        stacked = CalibrationData(test=np.arange(4 * R), family=np.array([f"r{k}_{f}" for k in range(R) for f in fam]),
                                  conditions=np.tile(c, (R, 1)), observables=y.reshape(R * 4, 3))
        joint = build_hierarchical_model(stacked, linear_surrogate, train_mask=np.kron(np.eye(R, dtype=bool),
                                                                                       np.ones((1, 4), bool)), **kw)
        with joint:
            tree = pm.sample(draws=draws, tune=300, chains=4, nuts_sampler="numpyro", random_seed=seed + 1,
                             target_accept=0.95, progressbar=False, nuts={"chain_method": "vectorized"},
                             var_names=["mu_pop"], idata_kwargs={"log_likelihood": False},
                             compute_convergence_checks=False)
    post = tree["posterior"]["mu_pop"].values  # (chain, draw, fold, parameter)
    assert int(tree["sample_stats"]["diverging"].sum()) == 0
    ranks = []
    for k in range(R):
        draws_k = post[:, ::thin, k].reshape(-1, 2)
        ranks.extend((draws_k < truth[k]).sum(axis=0))
    return np.array(ranks), draws_k.shape[0]


def _uniform_pvalue(ranks, n_draws, bins=5):
    counts, _ = np.histogram(ranks, bins=bins, range=(0, n_draws + 1))
    return stats.chisquare(counts).pvalue


@pytest.mark.slow  # ~95 s of NUTS on 2 cores; CI checks the rank-uniformity test itself (test_sbc_pipeline.py)
def test_sbc_reduced():
    ranks, n = _sbc_ranks(R=12, seed=5)
    assert _uniform_pvalue(ranks, n) > 1e-3


@pytest.mark.slow
def test_sbc_full():
    ranks, n = _sbc_ranks(R=60, seed=7)
    assert _uniform_pvalue(ranks, n, bins=10) > 1e-3


@pytest.mark.parametrize("scale", [0.3, 2.0])
def test_family_scale_is_the_prior_of_the_family_spread_everywhere(scale):
    """A setup's ``family_scale`` survives the posterior attrs and is the prior mean of ``tau_family``, Gamma(2,
    2 / scale), in the SBC generator (`risk.bayes.sbc.prior_replicates`, the physics model's kwargs): mean of 600
    prior draws within 10 % of scale (its standard error 2.9 %)."""
    from types import SimpleNamespace

    from risk.bayes.physics import PhysicsSetup
    from risk.bayes.sbc import prior_replicates
    from risk.bayes.subspace import InformedSubspace

    setup = PhysicsSetup(np.zeros(2), np.ones(2), InformedSubspace.full(("k1", "k2"), np.zeros(2)), None,
                         family_scale=scale)
    assert PhysicsSetup.from_attrs(setup.attrs()).family_scale == scale
    fam = np.array(["a", "a", "b", "b"])
    design = CalibrationData(test=np.arange(4), family=fam, conditions=np.full((4, 1), 0.5),
                             observables=np.zeros((4, 3)), hazard_level=np.ones(4), condition_names=("c",))
    decoder = SimpleNamespace(parameter_names=["k1", "k2"], pytensor_apply=linear_surrogate)
    truth, _, _ = prior_replicates(design, decoder, setup, 600, seed=3)
    assert abs(truth["tau_family"].mean() / scale - 1) < 0.1
