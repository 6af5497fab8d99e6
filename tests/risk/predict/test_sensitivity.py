"""Sobol indices against analytic values."""
import numpy as np

from risk.predict.sensitivity import sobol_indices


def test_additive_model_analytic_indices():
    # f = 1 x1 + 2 x2 + 0 x3, x ~ U(0,1): S_i = a_i² / Σ a_j², no interactions (S1 = ST)
    a = np.array([1.0, 2.0, 0.0])
    ds = sobol_indices(lambda x: x @ a, ["k1", "k2", "k3"], [(0, 1)] * 3, n_base=1024, seed=0)
    np.testing.assert_allclose(ds["S1"].values, a**2 / np.sum(a**2), atol=0.05)
    np.testing.assert_allclose(ds["ST"].values, a**2 / np.sum(a**2), atol=0.05)
    assert ds.attrs["n_evaluations"] == 1024 * 5
    assert ds["S1"].attrs["units"] == "1"


def test_interaction_shows_in_total_not_first_order():
    # f = x1 x2 on U(-1,1)²: all variance is interaction → S1 ≈ 0, ST ≈ 1
    ds = sobol_indices(lambda x: x[:, 0] * x[:, 1], ["a", "b"], [(-1, 1)] * 2, n_base=2048, seed=1)
    assert np.all(np.abs(ds["S1"].values) < 0.05)
    np.testing.assert_allclose(ds["ST"].values, 1.0, atol=0.1)
