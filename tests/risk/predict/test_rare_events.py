"""Rare-event estimators against closed forms and crude Monte Carlo."""
import numpy as np
import pytest
from scipy import special, stats

import xarray as xr

from risk.predict.rare_events import (check_failure_samples, crude_monte_carlo, importance_sampling,
                                      new_cell_limit_states, posterior_rare_event, subset_simulation, tr_limit_state,
                                      wilson_interval)
from risk.predict.scenarios import Scenario, new_cell_p_tr

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
    cells = mu + ss.failure_samples[:, 1:] @ chol.T
    runs = []

    def simulate(u):
        runs.append(u)
        return bool(u[0] > 2.0)

    good = check_failure_samples(cells, lambda u: special.expit(steep(u)), simulate, n=60, seed=0)
    assert len(runs) == good["n"] == good["n_completed"] == 60 and good["n_failed_runs"] == 0
    assert good["confirmed"] == int(np.sum(np.array(runs)[:, 0] > 2.0))
    assert good["fraction"] == good["confirmed"] / 60
    lo, hi = good["wilson95"]
    assert lo <= good["fraction"] <= hi and (lo, hi) == wilson_interval(good["confirmed"], 60)
    assert good["surrogate_within_wilson95"] and abs(good["surrogate_z"]) < 3
    # a surrogate that puts P(TR) = 0.1 where the simulator says ~0.9 is caught (no "agreement" of 0.2 any more)
    bad = check_failure_samples(cells, lambda u: np.full(len(u), 0.1), simulate, n=60, seed=0)
    assert not bad["surrogate_within_wilson95"] and bad["surrogate_z"] > 5
    assert "agreement" not in bad

    def crashing(u):
        if u[1] > 0:
            raise RuntimeError("solver diverged")
        return True

    mixed = check_failure_samples(cells, lambda u: np.ones(len(u)), crashing, n=40, seed=1)
    assert mixed["n"] == 40 and mixed["n_failed_runs"] == len(mixed["failed_runs"]) > 0
    assert mixed["n_completed"] == 40 - mixed["n_failed_runs"] == mixed["confirmed"]
    assert "solver diverged" in mixed["failed_runs"][0]["error"]
    none = check_failure_samples(cells, lambda u: np.ones(len(u)), lambda u: 1 / 0, n=3, seed=0)
    assert none["n_completed"] == 0 and np.isnan(none["fraction"]) and np.isnan(none["wilson95"][0])


def _crashing_above_zero(u):  # module level: worker processes unpickle it by reference
    if u[1] > 0:
        raise RuntimeError("solver diverged")
    return bool(u[0] > 0.0)


def test_failure_samples_checked_in_worker_processes_give_the_serial_result():
    cells = np.random.default_rng(3).standard_normal((30, 2))
    serial = check_failure_samples(cells, lambda u: np.full(len(u), 0.5), _crashing_above_zero, n=12, seed=2)
    pooled = check_failure_samples(cells, lambda u: np.full(len(u), 0.5), _crashing_above_zero, n=12, seed=2,
                                   workers=2)
    for key in ("n", "n_completed", "n_failed_runs", "confirmed", "wilson95", "surrogate_z"):
        assert pooled[key] == serial[key], key
    assert [f["u"] for f in pooled["failed_runs"]] == [f["u"] for f in serial["failed_runs"]]
    assert pooled["n_failed_runs"] > 0 and "solver diverged" in pooled["failed_runs"][0]["error"]
    # the same cells through a batch runner, in chunks (the simulator's vectorised path): the same numbers
    for workers in (1, 2):
        batched = check_failure_samples(cells, lambda u: np.full(len(u), 0.5), _crashing_above_zero, n=12, seed=2,
                                        workers=workers, simulate_batch=_crashing_above_zero_batch, batch_size=5)
        for key in ("n", "n_completed", "n_failed_runs", "confirmed", "wilson95", "surrogate_z"):
            assert batched[key] == serial[key], (key, workers)
        assert [f["u"] for f in batched["failed_runs"]] == [f["u"] for f in serial["failed_runs"]]


def _crashing_above_zero_batch(us):  # module level: worker processes unpickle it by reference
    return [(None, "RuntimeError: solver diverged", 0.0) if u[1] > 0 else (bool(u[0] > 0.0), None, 0.0) for u in us]


@pytest.mark.parametrize("k, n", [(0, 50), (1, 50), (7, 50), (25, 50), (50, 50), (3, 8)])
def test_wilson_interval_matches_the_closed_form(k, n):
    """Wilson (1927): (p̂ + z²/2n ± z sqrt(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n), z = Φ⁻¹(0.975)."""
    z, ph = stats.norm.ppf(0.975), k / n
    centre, half = ph + z**2 / (2 * n), z * np.sqrt(ph * (1 - ph) / n + z**2 / (4 * n**2))
    lo, hi = wilson_interval(k, n)
    np.testing.assert_allclose([lo, hi], [(centre - half) / (1 + z**2 / n), (centre + half) / (1 + z**2 / n)],
                               atol=1e-12)
    try:  # and statsmodels' implementation when it is installed
        from statsmodels.stats.proportion import proportion_confint
    except ImportError:
        return
    np.testing.assert_allclose([lo, hi], proportion_confint(k, n, alpha=0.05, method="wilson"), atol=1e-12)


def _posterior(S=400, seed=0, location_sd=0.25):
    """A hierarchical posterior like `risk.bayes.physics`: family 'lco' known, its location uncertain."""
    rng = np.random.default_rng(seed)
    mu_pop = rng.normal([-1.0, 0.0], location_sd, (S, 2))
    mu_f = (mu_pop + rng.normal(0.0, 0.1, (S, 2)))[:, None, :]
    chol = np.broadcast_to([[0.5, 0.0], [0.2, 0.4]], (S, 2, 2)) * rng.uniform(0.9, 1.1, (S, 1, 1))
    tau = np.full((S, 2), 0.6)
    scale = rng.uniform(0.9, 1.1, S)

    def da(x, dims):
        return xr.DataArray(np.asarray(x).reshape((4, S // 4) + np.shape(x)[1:]), dims=("chain", "draw") + dims)

    post = xr.Dataset({"mu_pop": da(mu_pop, ("parameter",)), "tau_family": da(tau, ("parameter",)),
                       "mu_family": da(mu_f, ("family", "parameter")), "link_scale": da(scale, ()),
                       "cell_chol": da(chol, ("parameter", "direction"))},
                      coords={"family": ["lco"], "parameter": ["k1", "k2"]})
    return xr.DataTree.from_dict({"posterior": post})


def _logit(u, c):
    return 2.5 * u[..., 0] - u[..., 1] + 3.0 * c[..., 0] - 8.0


def test_rare_event_interval_over_posterior_draws_covers_crude_monte_carlo():
    """Acceptance (issue 17 item 4): the per-draw 90 % interval of a p ≈ 1e-3 covers crude Monte Carlo of the
    posterior predictive (`new_cell_p_tr`, the code behind predictions.nc, an independent path), and each
    draw's subset estimate agrees with crude MC of that draw."""
    tree, sc = _posterior(), Scenario("lco", "lco", 0.5, "punch", (0.5,))
    p_crude = new_cell_p_tr(tree, _logit, [sc], n_cells=4000, seed=1).mean()
    assert 3e-4 < p_crude < 3e-3, p_crude
    states = new_cell_limit_states(tree, _logit, sc, n_draws=30, seed=2)
    assert len(states) == 30 and states[0].dim == 3
    res = posterior_rare_event([(st.g, st.dim) for st in states], seed=3, n_per_level=500)
    assert res["n_draws"] == 30 and len(res["per_draw"]["p"]) == len(res["per_draw"]["cov"]) == 30
    assert res["p_q05"] <= p_crude <= res["p_q95"], (res["p_q05"], p_crude, res["p_q95"])
    assert res["p_q95"] / res["p_q05"] > 2  # the location is uncertain: a real interval, not a point
    for j in (0, 10, 29):  # per draw: subset simulation against crude MC of the same limit state
        mc = crude_monte_carlo(states[j].g, states[j].dim, seed=j, n_samples=200_000)
        assert abs(np.log(res["per_draw"]["p"][j] / mc.p)) < np.log(1.5), (j, res["per_draw"]["p"][j], mc.p)
    # the plug-in value at posterior-mean parameters is a different (smaller, convex tail) number
    post = tree["posterior"]
    plug = tr_limit_state(lambda u: float(post["link_scale"].mean()) * _logit(u, np.full((len(u), 1), 0.5)),
                          post["mu_family"].mean(("chain", "draw")).values[0],
                          post["cell_chol"].mean(("chain", "draw")).values)
    p_plug = crude_monte_carlo(plug, 3, seed=4, n_samples=400_000).p
    assert p_plug < res["p_mean"]
    # failure samples map to cells of the draw's own population
    xi = res["failure_samples"][0]
    assert np.all(states[0].g(xi) <= 0)
    np.testing.assert_allclose(states[0].cells(xi), states[0].location + xi[:, 1:] @ states[0].factor.T)


def test_unseen_family_limit_state_matches_new_cell_p_tr():
    """A family without data: the family-to-family spread enters as extra coordinates of ξ (dim 1 + 2 + 2)."""
    tree, sc = _posterior(S=4000, location_sd=0.05), Scenario("new", "unseen", 1.0, "punch", (2.0,))
    states = new_cell_limit_states(tree, _logit, sc, n_draws=40, seed=0)
    assert states[0].dim == 5
    p_ls = np.mean([crude_monte_carlo(st.g, st.dim, seed=j, n_samples=50_000).p for j, st in enumerate(states)])
    p_ref = new_cell_p_tr(tree, _logit, [sc], n_cells=500, seed=1).mean()  # one new family per draw: many draws
    assert 0.01 < p_ref < 0.5
    assert abs(p_ls - p_ref) < 0.1 * p_ref, (p_ls, p_ref)


def test_crude_monte_carlo_keeps_its_failure_samples_and_names_a_fallback():
    """The crude estimator (the reference, and the fallback where OpenTURNS' subset simulation raises) on a
    closed form: P(ξ0 ≤ -1) = Φ(-1); every kept failure sample lies in the failure region."""
    g = lambda x: x[:, 0] + 1.0  # noqa: E731
    mc = crude_monte_carlo(g, 2, seed=0, n_samples=40_000, batch=10_000, why="subset simulation failed: test")
    assert abs(mc.p - stats.norm.cdf(-1.0)) < 4 * mc.cov * mc.p
    assert mc.method == "crude_monte_carlo (subset simulation failed: test)"
    assert 0 < len(mc.failure_samples) <= 10_000 + 10_000 and (g(mc.failure_samples) <= 0).all()
