"""Expected information gain of candidate tests against closed-form answers."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from risk.predict.design import candidate_grid, expected_information


def _h(p):
    return float(stats.bernoulli(p).entropy())


def test_two_point_epistemic_matches_closed_form():
    # two equally likely physics draws; candidate 0 separates them, candidate 1 cannot
    pc = np.array([[0.1, 0.7], [0.4, 0.4]])
    ps = np.array([[0.02, 0.3]])
    info = expected_information(pc, ps)
    assert info["eig"][0] == pytest.approx(_h(0.4) - 0.5 * (_h(0.1) + _h(0.7)), rel=1e-12)
    assert info["eig"][1] == pytest.approx(0.0, abs=1e-12)
    assert info["variance_reduction"][1] == pytest.approx(0.0, abs=1e-12)
    # by hand: y=1 has p=0.4 and weights (0.1, 0.7)/0.8; y=0 has p=0.6 and weights (0.9, 0.3)/1.2
    def var(w):
        m = w @ ps[0]
        return w @ ps[0] ** 2 - m**2
    expected = 0.4 * var(np.array([0.125, 0.875])) + 0.6 * var(np.array([0.75, 0.25]))
    assert info["sd_after"][0, 0] ** 2 == pytest.approx(expected, rel=1e-10)


def test_perfect_test_removes_all_uncertainty_and_gains_log2():
    pc = np.array([[0.0, 1.0]])
    info = expected_information(pc, pc)
    assert info["eig"][0] == pytest.approx(np.log(2))
    assert info["variance_reduction"][0] == pytest.approx(1.0)


def test_law_of_total_variance_and_more_cells_help(rng):
    S = 4000
    pc = rng.beta(2, 5, size=(6, S))
    ps = 0.5 * pc[:3] + 0.1 * rng.random((3, S))
    one, five = expected_information(pc, ps, n_cells=1), expected_information(pc, ps, n_cells=5)
    assert np.all(one["sd_after"] <= one["sd_before"][None] + 1e-12)
    assert np.all(five["eig"] > one["eig"])
    assert np.all(five["variance_reduction"] > one["variance_reduction"])
    # Monte Carlo preposterior: simulate outcomes, reweight, compare with the exact answer
    y = rng.binomial(1, pc[0])
    w1 = pc[0] / pc[0].sum()
    w0 = (1 - pc[0]) / (1 - pc[0]).sum()
    var_w = lambda w: w @ ps[0] ** 2 - (w @ ps[0]) ** 2  # noqa: E731
    mc = y.mean() * var_w(w1) + (1 - y.mean()) * var_w(w0)
    assert one["sd_after"][0, 0] ** 2 == pytest.approx(mc, rel=0.05)


def test_candidate_grid_covers_the_ranges_and_keeps_fixed_conditions():
    vec, labels = candidate_grid({"temperature_oven": (403.15, 448.15), "soc": (0.5, 1.0), "h": 7.0},
                                 ["temperature_oven", "soc", "h", "other"], [400.0, 1.0, 10.0, 3.0], points=3)
    assert vec.shape == (9, 4)
    assert set(np.round(vec[:, 0], 2)) == {403.15, 425.65, 448.15}
    assert np.all(vec[:, 2] == 7.0) and np.all(vec[:, 3] == 3.0)
    assert labels[0] == {"temperature_oven": 403.15, "soc": 0.5}


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="same S"):
        expected_information(np.ones((2, 3)), np.ones((1, 4)))
