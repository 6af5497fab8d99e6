"""Rare-event estimators against closed forms and crude Monte Carlo."""
import numpy as np
import pytest
from scipy import special, stats

from risk.predict.rare_events import (check_failure_samples, crude_monte_carlo, importance_sampling, subset_simulation,
                                      tr_limit_state)

BETA = 4.753  # Φ(-β) = 1.0e-6


def linear_g(x):
    """Linear limit state in standard normal space: P(g ≤ 0) = Φ(-β) exactly."""
    return BETA * np.sqrt(2) - x[:, 0] - x[:, 1]


P_TRUE = stats.norm.cdf(-BETA)


@pytest.mark.parametrize("estimator", [subset_simulation, importance_sampling])
def test_p_1e6_within_factor_1p5_under_2e4_calls(estimator):
    results = [estimator(linear_g, 2, seed=s) for s in range(5)]
    ratio = np.median([r.p for r in results]) / P_TRUE
    assert 1 / 1.5 < ratio < 1.5, ratio
    assert np.median([r.calls for r in results]) <= 2e4


def test_tr_limit_state_matches_expected_sigmoid_and_crude_mc():
    mu, chol = np.array([0.2, -0.1]), np.array([[0.5, 0.0], [0.1, 0.3]])
    logit = lambda u: 2.0 * u[:, 0] - u[:, 1] - 3.0  # noqa: E731
    g = tr_limit_state(logit, mu, chol)
    z = np.random.default_rng(1).standard_normal((400_000, 2))
    p_ref = special.expit(logit(mu + z @ chol.T)).mean()  # E_cell sigmoid(logit)
    mc = crude_monte_carlo(g, 3, seed=2, n_samples=400_000)
    assert abs(mc.p - p_ref) < 4 * mc.cov * p_ref
    ss = subset_simulation(g, 3, seed=3, n_per_level=2000)
    assert abs(np.log(ss.p / p_ref)) < np.log(1.3)


def test_tr_limit_state_rare_regime_subset_vs_importance():
    """p ≈ 1e-5 (below crude MC's reach): the two independent estimators agree within a factor 1.5."""
    logit = lambda u: 1.5 * u[:, 0] - 13.0  # noqa: E731
    g = tr_limit_state(logit, np.zeros(1), np.eye(1))
    p_ss = np.median([subset_simulation(g, 2, seed=s).p for s in range(3)])
    p_is = np.median([importance_sampling(g, 2, seed=s, n_samples=8000).p for s in range(3)])
    z = np.linspace(-10, 10, 20001)
    p_quad = np.trapezoid(special.expit(logit(z[:, None])) * stats.norm.pdf(z), z)
    assert 1e-6 < p_quad < 1e-4
    assert abs(np.log(p_ss / p_quad)) < np.log(1.5), (p_ss, p_quad)
    assert abs(np.log(p_is / p_quad)) < np.log(1.5), (p_is, p_quad)


def test_failure_samples_are_in_the_failure_region_and_checked_against_a_simulator():
    """A 'full simulator' that runs away iff u0 > 2 and a surrogate that agrees (steep logit) or does not."""
    mu, chol = np.zeros(2), np.eye(2)
    steep = lambda u: 40.0 * (u[:, 0] - 2.0)  # noqa: E731
    g = tr_limit_state(steep, mu, chol)
    ss = subset_simulation(g, 3, seed=5, n_per_level=1000)
    assert ss.failure_samples is not None and len(ss.failure_samples) > 50
    assert np.all(g(ss.failure_samples) <= 0)
    assert ss.p == pytest.approx(stats.norm.sf(2.0), rel=0.25)
    runs = []

    def simulate(u):
        runs.append(u)
        return bool(u[0] > 2.0)

    good = check_failure_samples(ss.failure_samples, mu, chol, lambda u: special.expit(steep(u)), simulate, n=20, seed=0)
    assert len(runs) == good["n_runs"] == 20 and good["n_failed_runs"] == 0
    assert good["agreement"] > 0.85
    # a surrogate that wrongly puts half its mass there is caught
    bad = check_failure_samples(ss.failure_samples, mu, chol, lambda u: np.full(len(u), 0.1), simulate, n=20, seed=0)
    assert bad["agreement"] < 0.3
    failed = check_failure_samples(ss.failure_samples, mu, chol, lambda u: np.ones(len(u)), lambda u: None, n=3, seed=0)
    assert failed["n_failed_runs"] == 3 and np.isnan(failed["agreement"])
