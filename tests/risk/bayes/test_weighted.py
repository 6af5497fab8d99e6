"""Per-test likelihood weights (cross-validation folds compiled once): the log density and the posterior a weighted
fit samples are those of a model built on the weight-1 tests alone."""
import os
import subprocess
import sys

import numpy as np
import pymc as pm
import pytest
from scipy import stats

from risk.bayes import CalibrationData, build_hierarchical_model, sample
from risk.bayes.sampling import stack_draws
from risk.bayes.weighted import WeightedFits

from tests.risk.bayes.linear_test_model import A, NOISE, linear_surrogate


def _data(seed=0, n_per_family=6):
    rng = np.random.default_rng(seed)
    fam = np.repeat(["a", "b", "c"], n_per_family)
    loc = {"a": [1.0, -0.5], "b": [-0.8, 0.7], "c": [0.3, 0.2]}
    c = rng.uniform(0, 1, (fam.size, 1))
    u = np.array([loc[f] for f in fam]) + 0.2 * rng.standard_normal((fam.size, 2))
    y = u @ A.T + 0.5 * c + NOISE * rng.standard_normal((fam.size, 3))
    y[0, 1] = np.nan
    censored = np.zeros(y.shape, np.int8)
    censored[[2, 9], 2] = 1  # saturated: lower bounds
    level = np.where(rng.uniform(size=fam.size) < 0.5, 7.0, 2.0)
    level[:2] = np.nan
    runaway = (rng.uniform(size=fam.size) < 0.5).astype(float)
    return CalibrationData(test=np.arange(fam.size), family=fam, conditions=c, observables=y, hazard_level=level,
                           runaway=runaway, censored=censored)


KW = dict(parameter_names=["k1", "k2"], prior_mean=np.zeros(2), prior_sd=np.ones(2),
          design_bounds=(np.full(2, -1.0), np.full(2, 1.0)), family_discrepancy_scale=0.3)
COVARIATE = np.array([-0.4, 0.1, 0.3])  # one per family


def _point(model, rng):
    return {v.name: rng.normal(0.0, 0.7, model.initial_point()[v.name].shape) for v in model.value_vars}


def test_weights_select_the_tests_whose_likelihood_enters():
    data = _data()
    plain = build_hierarchical_model(data, linear_surrogate, family_covariate=COVARIATE, **KW)
    weighted = build_hierarchical_model(data, linear_surrogate, family_covariate=COVARIATE, weighted=True, **KW)
    assert {v.name for v in weighted.free_RVs} == {v.name for v in plain.free_RVs}
    point = _point(plain, np.random.default_rng(3))
    np.testing.assert_allclose(weighted.compile_logp()(point), plain.compile_logp()(point), rtol=1e-10)

    # family c and test 4 unseen: the model of the other tests, plus the prior of the latents only they had
    keep = (np.asarray(data.family) != "c") & (np.arange(len(data.test)) != 4)
    subset = build_hierarchical_model(data.subset(np.flatnonzero(keep)), linear_surrogate,
                                      family_covariate=COVARIATE[:2], **KW)
    pm.set_data({"test_weight": keep.astype(float)}, model=weighted)
    sub_point = dict(point, z_test=point["z_test"][keep], z_family=point["z_family"][:2],
                     z_family_discrepancy=point["z_family_discrepancy"][:2])
    dropped = np.concatenate([point["z_test"][~keep].ravel(), point["z_family"][2:].ravel(),
                              point["z_family_discrepancy"][2:].ravel()])
    expected = subset.compile_logp()(sub_point) + stats.norm.logpdf(dropped).sum()
    np.testing.assert_allclose(weighted.compile_logp()(point), expected, rtol=1e-10)


def test_a_weighted_fit_samples_the_posterior_of_its_tests_and_drops_the_rest():
    data = _data(n_per_family=5)
    keep = np.asarray(data.family) != "c"
    weighted = build_hierarchical_model(data, linear_surrogate, weighted=True, **KW)
    fits = WeightedFits(weighted, draws=300, tune=300, target_accept=0.98, advi_steps=2000)
    families = np.isin(np.asarray(data.families), ["a", "b"])
    tree, diag = fits.fit(keep.astype(float), seed=5, keep={"test": keep, "family": families})
    assert list(tree["posterior"]["family"].values) == ["a", "b"]  # c is a new family to prediction
    assert tree["posterior"].sizes["test"] == keep.sum()
    assert diag.divergences <= 3 and diag.rhat_max < 1.05, diag.messages  # ten tests, two families: a mild funnel
    compiled = fits._compiled
    # resumed from the fit's own final draws with their variances as mass matrix: the same posterior
    resumed, rdiag = fits.fit(keep.astype(float), seed=6, keep={"test": keep, "family": families}, resume=True)
    assert fits._compiled is compiled  # the next fold reuses the compiled programs
    assert rdiag.divergences <= 3 and rdiag.rhat_max < 1.05, rdiag.messages
    assert tree.attrs["chain_method"] == "parallel"  # the test session imported `risk` first (conftest)
    with pytest.raises(ValueError, match="earlier fit"):
        WeightedFits(weighted, draws=10, tune=10).fit(keep.astype(float), seed=0, resume=True)

    subset = build_hierarchical_model(data.subset(np.flatnonzero(keep)), linear_surrogate, **KW)
    ref, _ = sample(subset, seed=7, draws=500, tune=500, target_accept=0.98, posterior_predictive=False,
                    allow_bad_diagnostics=True)
    for fit in (tree, resumed):
        for var in ("mu_family", "mu_pop", "link_scale"):
            got, want = stack_draws(fit, var), stack_draws(ref, var)
            se = np.sqrt(want.var(axis=0) / 200 + got.var(axis=0) / 200)  # loose ESS guesses for both runs
            assert np.all(np.abs(got.mean(axis=0) - want.mean(axis=0)) < 4 * se + 1e-3), var
            np.testing.assert_allclose(got.std(axis=0), want.std(axis=0), rtol=0.35)


def test_chains_run_in_parallel_threads_when_jax_shows_a_device_per_chain():
    """Importing `risk` asks XLA for a CPU device per chain (`risk.HOST_DEVICES`); with them every fit runs its chains
    in parallel threads, with one device vectorised (a user's own XLA_FLAGS win)."""
    from risk import HOST_DEVICES

    script = ("import risk, jax; from risk.bayes.sampling import default_chain_method; "
              f"print(jax.local_device_count(), default_chain_method({HOST_DEVICES}))")
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    run = lambda e: subprocess.run([sys.executable, "-c", script], env=e, capture_output=True, text=True,  # noqa: E731
                                   check=True).stdout.split()
    assert run(env) == [str(HOST_DEVICES), "parallel"]
    assert run(env | {"XLA_FLAGS": "--xla_force_host_platform_device_count=1"}) == ["1", "vectorized"]
