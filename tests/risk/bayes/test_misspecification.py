"""Misspecification checks (risk.bayes.misspecification) on posterior predictive draws with a known answer."""
import numpy as np
import pytest
import xarray as xr
from scipy import stats

from risk.bayes import misspecification as ms


def _tree(y: np.ndarray, y_rep: np.ndarray, *, discrepancy=None, hazard=None, hazard_rep=None) -> xr.DataTree:
    """A calibrate-stage tree: ``observables`` entries (chain, draw, observed_entry) and their observed values."""
    S, n = y_rep.shape
    pp = {"observables": (("chain", "draw", "observed_entry"), y_rep.reshape(4, S // 4, n))}
    obs = {"observables": (("observed_entry",), y)}
    post = {"discrepancy": (("chain", "draw", "observable"),
                            np.broadcast_to(np.asarray(discrepancy if discrepancy is not None else [0.2, 0.2]),
                                            (4, S // 4, 2)))}
    if hazard is not None:
        pp["hazard_level"] = (("chain", "draw", "test"), hazard_rep.reshape(4, S // 4, -1))
        obs["hazard_level"] = (("test",), hazard)
    return xr.DataTree.from_dict({"posterior": xr.Dataset(post, coords={"observable": ["a", "b"]}),
                                  "posterior_predictive": xr.Dataset(pp), "observed_data": xr.Dataset(obs)})


def test_ppp_values_are_central_for_the_right_model_and_extreme_for_a_shifted_one():
    rng = np.random.default_rng(0)
    y_rep = rng.normal(size=(2000, 60))
    right, shifted = rng.normal(size=60), rng.normal(size=60) + 1.0
    p_right, p_shift = ms.ppp_values(right, y_rep), ms.ppp_values(shifted, y_rep)
    assert all(0.01 < p < 0.99 for p in p_right.values())
    assert p_shift["mean"] < 1e-3 and p_shift["min"] < 0.05  # T(y_rep) rarely reaches the shifted data's T
    # the p-value of the mean is the normal tail of the standardised sample mean
    z = (shifted.mean() - 0.0) / (1 / np.sqrt(60))
    assert p_shift["mean"] == pytest.approx(stats.norm.sf(z), abs=2e-3)


def test_observable_checks_flag_only_the_observable_the_model_misses():
    rng = np.random.default_rng(1)
    n = 40
    entry = np.repeat([0, 1], n)  # entries of observable "a" then "b"
    y_rep = rng.normal(size=(2000, 2 * n))
    y = rng.normal(size=2 * n)
    y[n:] = 2.5 * y[n:]  # "b" is 2.5× more spread than the model predicts
    res = ms.observable_checks(_tree(y, y_rep), ["a", "b"], entry)
    assert res["a"]["extreme"] == [] and not res["a"]["interval"]["extreme"]
    assert "sd" in res["b"]["extreme"]
    assert res["b"]["interval"]["extreme"] and res["b"]["interval"]["share_outside"] > 0.2


def test_outcome_check_counts_thermal_runaway_as_level_6_or_more():
    rng = np.random.default_rng(2)
    rep = rng.choice([0, 6], size=(2000, 30), p=[0.9, 0.1])  # 0-based levels: index 5 is level 6
    observed = np.array([6] * 20 + [0] * 10)  # 67 % runaway where the model predicts 10 %
    tree = _tree(np.zeros(4), np.zeros((2000, 4)), hazard=observed, hazard_rep=rep)
    res = ms.outcome_checks(tree)["hazard_level"]
    assert res["p_values"]["share_tr"] < 1e-3 and "share_tr" in res["extreme"]


def test_simulated_range_treats_censored_values_as_lower_bounds():
    sim = np.array([[0.0], [1.0], [2.0]])
    real = np.array([[-1.0], [-1.0], [3.0], [1.5]])
    cens = np.array([[False], [True], [True], [False]])
    res = ms.simulated_range_checks(real, cens, sim, np.ones_like(sim, bool), ["x"])["x"]
    # -1 exact is below the range; -1 censored (≥ -1) is compatible; 3 censored (≥ 3) is above it
    assert res["n_outside"] == 2 and res["share_outside"] == 0.5 and res["extreme"]


def test_design_check_names_the_tests_outside_the_simulated_conditions():
    sampled = np.array([[0.53, 310.0, 0.05], [0.99, 1190.0, 0.05]])  # a Sobol design rarely reaches its bounds
    bounds = ms.design_bounds({"soc": (0.5, 1.0), "heater_power": (300.0, 1200.0)}, sampled,
                              ["soc", "heater_power", "h_conv"])
    assert bounds == {"soc": (0.5, 1.0), "heater_power": (300.0, 1200.0), "h_conv": (0.05, 0.05)}
    real = np.array([[1.0, 900.0, 0.05], [1.0, 1500.0, 0.05], [0.2, 600.0, 0.07]])
    res = ms.design_checks(real, bounds, ["soc", "heater_power", "h_conv"], ["t1", "t2", "t3"])
    assert res["soc"]["tests"] == ["t3"] and res["heater_power"]["tests"] == ["t2"] and res["h_conv"]["tests"] == ["t3"]
    assert res["soc"]["design_min"] == 0.5 and res["heater_power"]["n_outside"] == 1


def test_discrepancy_beyond_its_prior_is_flagged():
    tree = _tree(np.zeros(4), np.zeros((8, 4)), discrepancy=[0.2, 0.9])
    res = ms.discrepancy_checks(tree, discrepancy_scale=0.2)
    q99 = stats.gamma(a=4, scale=0.05).ppf(0.99)
    assert res["b"]["prior_quantile"] == pytest.approx(q99)
    assert not res["a"]["extreme"] and res["b"]["extreme"]


def test_simulated_range_treats_upper_bounds_as_upper_bounds():
    sim = np.array([[0.0], [1.0], [2.0]])
    real = np.array([[-1.0], [3.0], [1.0]])
    sign = np.array([[-1], [-1], [1]], np.int8)
    res = ms.simulated_range_checks(real, sign, sim, np.ones_like(sim, bool), ["x"])["x"]
    # ≤ -1 lies below every simulation; ≤ 3 and ≥ 1 are compatible with the simulated range
    assert res["n_outside"] == 1


def _calibrated_cells(u: np.ndarray, bounds) -> xr.DataTree:
    """A calibrated tree with ``u_test (chain, draw, test, parameter)`` and its design region."""
    import json

    post = xr.Dataset({"u_test": (("chain", "draw", "test", "parameter"), u)},
                      coords={"parameter": ["kinetics", "energy"]})
    tree = xr.DataTree.from_dict({"posterior": post})
    tree.attrs["design_bounds"] = json.dumps([list(bounds[0]), list(bounds[1])])
    return tree


def test_design_edge_flags_the_parameter_the_data_push_beyond_the_simulated_design():
    rng = np.random.default_rng(3)
    bounds = (np.full(2, -2.576), np.full(2, 2.576))  # the prior's central 99 % of a standard normal
    u = rng.normal(size=(4, 500, 30, 2))  # cells drawn from the prior: ≈ 1 % beyond each parameter's box
    u[..., 1] += 2.5  # the "energy" cells pulled to the upper edge, as a simulator short of energy needs
    res = ms.design_edge_checks(_calibrated_cells(u, bounds))
    assert res["kinetics"]["share_beyond"] == pytest.approx(0.01, abs=0.005) and not res["kinetics"]["extreme"]
    assert res["energy"]["share_above"] > 0.4 and res["energy"]["share_below"] == 0 and res["energy"]["extreme"]
    assert res["kinetics"]["prior_share"] == pytest.approx(0.01) and res["energy"]["design_max"] == pytest.approx(2.576)
    assert ms.design_edge_checks(xr.DataTree.from_dict({"posterior": xr.Dataset()})) == {}


def test_the_report_flags_misspecification_apart_from_tests_outside_the_design():
    rng = np.random.default_rng(4)
    bounds = (np.full(2, -2.576), np.full(2, 2.576))
    u = rng.normal(size=(4, 50, 10, 2))
    u[..., 0] -= 3.0
    tree = _calibrated_cells(u, bounds)
    y_rep = rng.normal(size=(200, 20))
    fit = _tree(rng.normal(size=20), y_rep)
    tree["posterior"] = tree["posterior"].to_dataset().assign(discrepancy=fit["posterior"]["discrepancy"])
    tree["posterior_predictive"], tree["observed_data"] = fit["posterior_predictive"], fit["observed_data"]

    class Data:
        observable_names = ("a", "b")

    res = ms.misspecification_report(tree, Data(), None, None, entry_observable=np.repeat([0, 1], 10),
                                     discrepancy_scale=0.2)
    assert res["flag"] and any(r.startswith("kinetics:") and "below" in r for r in res["reasons"])
    assert not res["extrapolation"] and res["extrapolation_reasons"] == []
