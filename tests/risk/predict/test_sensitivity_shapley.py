"""Shapley effects for dependent Gaussian inputs and grouped indices, against closed forms."""
from itertools import permutations

import numpy as np
import pytest

from risk.predict.sensitivity import shapley_dataset
from risk.predict.shapley import gaussian_shapley_effects, grouped_indices


def _linear_gaussian_shapley(beta, cov):
    """Exact Shapley effects of Y = βᵀX, X ~ N(0, Σ): cost c(J) = E[Var(Y | X_{-J})] = β_Jᵀ Σ_{J|-J} β_J
    (Owen & Prieur 2017; Broto, Bachoc & Depecker 2020, Sect. 4), averaged over all d! orderings
    (Shapley's permutation form; the code under test uses the subset-weight form)."""
    d = len(beta)

    def cost(J):
        J, R = list(J), [j for j in range(d) if j not in J]
        if not J:
            return 0.0
        s = cov[np.ix_(J, J)] - (cov[np.ix_(J, R)] @ np.linalg.pinv(cov[np.ix_(R, R)]) @ cov[np.ix_(R, J)] if R else 0.0)
        return float(beta[J] @ s @ beta[J])

    sh = np.zeros(d)
    perms = list(permutations(range(d)))
    for order in perms:
        for pos, i in enumerate(order):
            sh[i] += cost(order[:pos + 1]) - cost(order[:pos])
    return sh / len(perms)


def test_independent_linear_inputs_give_beta_squared_sigma_squared():
    beta, sd = np.array([1.0, -2.0, 0.5]), np.array([1.0, 0.5, 2.0])
    r = gaussian_shapley_effects(lambda x: x @ beta, np.array([3.0, -1.0, 0.0]), np.diag(sd**2), seed=0,
                                 n_outer=3000, n_var=40000)
    exact = beta**2 * sd**2  # = (1, 1, 1): equal shares
    assert np.all(np.abs(r.effects - exact) < 4 * r.se + 1e-12), (r.effects, r.se)
    np.testing.assert_allclose(r.effects, exact, rtol=0.08)
    assert r.effects.sum() == pytest.approx(r.variance, rel=1e-12)  # efficiency: Σ Sh_i = Var Y by construction
    assert r.calls == 40000 + 6 * 3000 * 3


def test_correlated_pair_closed_form():
    """d = 2: Sh_1 = β1²σ1²(1 − ρ²/2) + ρβ1β2σ1σ2 + β2²σ2²ρ²/2, and symmetrically Sh_2."""
    b1, b2, s1, s2, rho = 1.0, 2.0, 1.0, 1.5, 0.6
    cov = np.array([[s1**2, rho * s1 * s2], [rho * s1 * s2, s2**2]])
    sh1 = b1**2 * s1**2 * (1 - rho**2 / 2) + rho * b1 * b2 * s1 * s2 + b2**2 * s2**2 * rho**2 / 2
    sh2 = b2**2 * s2**2 * (1 - rho**2 / 2) + rho * b1 * b2 * s1 * s2 + b1**2 * s1**2 * rho**2 / 2
    var_y = b1**2 * s1**2 + b2**2 * s2**2 + 2 * rho * b1 * b2 * s1 * s2
    assert sh1 + sh2 == pytest.approx(var_y)
    np.testing.assert_allclose(_linear_gaussian_shapley(np.array([b1, b2]), cov), [sh1, sh2])
    r = gaussian_shapley_effects(lambda x: x @ [b1, b2], np.zeros(2), cov, seed=1, n_outer=4000, n_var=40000)
    np.testing.assert_allclose(r.effects, [sh1, sh2], rtol=0.06)
    assert np.all(np.abs(r.effects - [sh1, sh2]) < 4 * r.se)
    # the correlated input with β = 0 still gets a share (Shapley effects credit dependence), unlike Sobol's S1
    r0 = gaussian_shapley_effects(lambda x: x[:, 0], np.zeros(2), cov, seed=2, n_outer=4000, n_var=40000)
    exact0 = _linear_gaussian_shapley(np.array([1.0, 0.0]), cov)
    assert exact0[1] == pytest.approx(rho**2 / 2 * s1**2)
    np.testing.assert_allclose(r0.effects, exact0, atol=0.04)


def test_correlated_three_inputs_and_a_nonlinear_model_sum_to_the_variance():
    beta = np.array([1.0, -1.0, 2.0])
    a = np.array([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [-0.3, 0.2, 0.9]])
    cov = a @ a.T
    r = gaussian_shapley_effects(lambda x: x @ beta, np.ones(3), cov, seed=3, n_outer=4000, n_var=40000)
    exact = _linear_gaussian_shapley(beta, cov)
    np.testing.assert_allclose(r.effects, exact, rtol=0.08, atol=0.02)
    np.testing.assert_allclose(r.normalised.sum(), 1.0)
    # a logistic P(TR)-like model: shares positive, summing to 1
    rp = gaussian_shapley_effects(lambda x: 1 / (1 + np.exp(-(x @ beta - 2))), np.zeros(3), cov, seed=4, n_outer=2000)
    assert np.all(rp.normalised > -0.02) and rp.normalised.sum() == pytest.approx(1.0)


def test_perfectly_correlated_inputs_share_equally_and_bad_input_is_refused():
    """A rank-1 covariance (the cell-to-cell factor of a 1-direction subspace): X2 = 2 X1, the inputs cannot be
    told apart, Sh_1 = Sh_2 = Var Y / 2 whatever β."""
    cov = np.array([[1.0, 2.0], [2.0, 4.0]])
    r = gaussian_shapley_effects(lambda x: 3 * x[:, 0] + 0.1 * x[:, 1], np.zeros(2), cov, seed=5, n_outer=500)
    np.testing.assert_allclose(r.normalised, [0.5, 0.5], atol=1e-9)
    with pytest.raises(ValueError, match="expected"):
        gaussian_shapley_effects(lambda x: x[:, 0], np.zeros(3), np.eye(2), seed=0)
    with pytest.raises(ValueError, match="n_inner"):
        gaussian_shapley_effects(lambda x: x[:, 0], np.zeros(2), np.eye(2), seed=0, n_inner=1)


def test_grouped_indices_recover_variance_components():
    """y = a + b + a·b with a ~ N(0, 1) per row and b ~ N(0, 4) per column: V_a = 1, V_b = 4, V_ab = 4."""
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal(600), 2 * rng.standard_normal(600)
    y = a[:, None] + b[None, :] + a[:, None] * b[None, :]
    g = grouped_indices(y)
    np.testing.assert_allclose(g["S1"], [1 / 9, 4 / 9], atol=0.04)
    np.testing.assert_allclose(g["ST"], [5 / 9, 8 / 9], atol=0.04)
    np.testing.assert_allclose(g["shapley"], [3 / 9, 6 / 9], atol=0.04)
    assert g["shapley"].sum() == pytest.approx(1.0)
    assert g["variance"] == pytest.approx(9.0, rel=0.25)


def test_shapley_dataset_variables_and_units():
    eff = np.array([[0.02, 0.06], [0.01, 0.01], [0.0, 0.0]])  # last draw: P(TR) does not vary → NaN shares
    ds = shapley_dataset(eff, np.full_like(eff, 1e-3), eff.sum(1), [3, 7, 9],
                         {"S1": np.array([0.2, 0.5]), "ST": np.array([0.5, 0.8]), "shapley": np.array([0.35, 0.65]),
                          "variance": 0.1}, ["strain_critical", "short_resistance"], units=["1", "ohm"])
    np.testing.assert_allclose(ds["shapley_effect"].values, [(0.25 + 0.5) / 2, (0.75 + 0.5) / 2])
    np.testing.assert_allclose(ds["shapley_effect"].sum(), 1.0)
    assert list(ds["group"].values) == ["epistemic", "aleatory"]
    assert list(ds["parameter_units"].values) == ["1", "ohm"]
    for v in ds.data_vars:
        assert ds[v].attrs["units"] == "1" and ds[v].attrs["long_name"]
    assert ds["shapley_effect_draws"].dims == ("shapley_draw", "parameter")
