"""Bridge: θ ↔ u transform, exact prior density in u, ensemble and real data → one layout with masks."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from sim2real.bridge import ThetaTransform, build_layout, ensemble_to_batch, real_to_batch
from simulators import Prior

PRIORS = {
    "a": Prior("loguniform", low=1e11, high=1e14),
    "b": Prior("uniform", low=1.3e5, high=1.5e5),
    "c": Prior("normal", mu=2.0, sigma=0.5),
    "d": Prior("lognormal", mu=0.0, sigma=0.3),
    "e": Prior("truncnormal", mu=1.0, sigma=1.0, low=0.0, high=3.0),
}


@pytest.mark.parametrize("name", list(PRIORS))
def test_transform_roundtrip_zscore_and_density_integrates_to_one(name):
    tr = ThetaTransform.from_priors([name], [PRIORS[name]])
    rng = np.random.default_rng(0)
    theta = PRIORS[name].sample(rng, 20000)[:, None]
    u = tr.to_unconstrained(theta)
    np.testing.assert_allclose(tr.from_unconstrained(u), theta, rtol=1e-9)
    assert abs(u.mean()) < 0.03 and abs(u.std() - 1) < 0.03  # z-scored under the prior
    grid = np.linspace(-12, 12, 24001)[:, None]
    dens = np.exp(tr.log_prior_u(torch.as_tensor(grid)).numpy())
    assert abs(np.trapezoid(dens, grid[:, 0]) - 1.0) < 1e-3
    # density matches the histogram of transformed prior draws
    hist, edges = np.histogram(u[:, 0], bins=20, range=(-2, 2), density=True)
    mid = torch.as_tensor(0.5 * (edges[1:] + edges[:-1]))[:, None]
    np.testing.assert_allclose(np.exp(tr.log_prior_u(mid).numpy()), hist / (np.mean((u > -2) & (u < 2)) ** -1), atol=0.03)


def test_ensemble_layout_normalisers_and_outcome(ensemble, oven_sim):
    lay = build_layout(ensemble)
    names = [c.name for c in lay.channels]
    assert names[0] == "temperature_surface" and "thermal_runaway" not in names
    tr = ThetaTransform.from_priors(oven_sim.parameter_names, [p.prior for p in oven_sim.parameters])
    b = ensemble_to_batch(ensemble, lay, tr)
    assert b.x.shape == (500, lay.n_obs) and b.u.shape == (500, 3) and b.c.shape == (500, 2)
    sl = lay.slices()["temperature_surface"]
    # curves: per-point offset, one pooled scale: normalised curves have mean 0 and pooled sd 1
    assert abs(float(b.x[:, sl].mean())) < 1e-5 and abs(float(b.x[:, sl].std()) - 1) < 1e-2
    # time_to_runaway is NaN without runaway → masked exactly there
    j = lay.slices()["time_to_runaway"].start
    np.testing.assert_array_equal(b.mask[:, j].numpy() > 0, ensemble["thermal_runaway"].values)
    np.testing.assert_array_equal(b.y.numpy(), ensemble["thermal_runaway"].values.astype(float))


def test_real_curves_interpolated_and_masked_outside_measured_range(ensemble):
    lay = build_layout(ensemble)
    t_sim = ensemble["time"].values
    t_real = np.linspace(0.0, 0.6 * t_sim[-1], 301)  # finer grid, stops at 60 % of the sim range
    T = 300.0 + 0.02 * t_real
    T[100:120] = np.nan  # a logging gap
    real = xr.Dataset({"temperature_surface": (("test", "time"), T[None]), "soc": ("test", [0.5]),
                       "hazard_level": ("test", [6.0])}, coords={"test": ["X1"], "time": t_real})
    b = real_to_batch(real, lay, conditions={"temperature_oven": 440.0})
    sl = lay.slices()["temperature_surface"]
    m = b.mask[0, sl].numpy() > 0
    gap = (t_sim >= t_real[99]) & (t_sim <= t_real[120])
    np.testing.assert_array_equal(m, (t_sim <= t_real[-1]) & ~gap)
    x = lay.denormalise(np.where(b.mask.numpy() > 0, b.x.numpy(), np.nan))[0, sl]
    np.testing.assert_allclose(x[m], 300.0 + 0.02 * t_sim[m], rtol=1e-5)
    assert b.mask[0, lay.slices()["temperature_peak"]].sum() == 0  # missing channel
    np.testing.assert_allclose(b.c.numpy()[0], [440.0, 0.5])
    assert float(b.y[0]) == 1.0 and float(b.y_mask[0]) == 1.0  # hazard level 6 ⇒ runaway


def test_real_without_any_observable_is_an_error(ensemble):
    lay = build_layout(ensemble)
    with pytest.raises(ValueError, match="none of the simulator's observables"):
        real_to_batch(xr.Dataset({"soc": ("test", [0.5])}, coords={"test": ["a"]}), lay)


def test_logit_share_channel_roundtrips_and_keeps_predictions_in_the_unit_interval():
    """A share declared ``transform: logit`` is z-scored on the logit scale; denormalising any normalised
    value (a wide Gaussian predictive included) gives a share in (0, 1), and the layout survives JSON."""
    from sim2real.bridge import SHARE_EPS, ObservableLayout

    rng = np.random.default_rng(0)
    n = 200
    share = rng.beta(4, 2, n)
    ens = xr.Dataset(
        {"theta": (("sample", "parameter"), rng.random((n, 1))),
         "condition": (("sample", "condition_name"), rng.random((n, 1))),
         "heat": ("sample", rng.normal(5e4, 1e4, n), {"units": "J"}),
         "share": ("sample", share, {"units": "1", "transform": "logit"})},
        coords={"parameter": ["a"], "condition_name": ["soc"]})
    layout = build_layout(ens)
    assert [c.transform for c in layout.channels] == ["identity", "logit"]
    logit = np.log(share / (1 - share))
    assert np.isclose(layout.offset[1], logit.mean()) and np.isclose(layout.scale[1], logit.std(), rtol=1e-2)
    x = np.column_stack([ens["heat"].values, share])
    assert np.allclose(layout.denormalise(layout.normalise(x)), x)
    wide = layout.denormalise(rng.normal(0, 10, (1000, 2)))
    assert (wide[:, 1] > 0).all() and (wide[:, 1] < 1).all()
    assert np.isclose(layout.normalise([[5e4, 1.0]])[0, 1], layout.normalise([[5e4, 1 - SHARE_EPS]])[0, 1])
    again = ObservableLayout.from_json(layout.to_json())
    assert again == layout
    # sd in SI: the delta method through expit (p (1 - p) × sd on the logit scale)
    sd = layout.sd_si(np.zeros((1, 2)), np.zeros((1, 2)))
    p = 1 / (1 + np.exp(-layout.offset[1]))
    assert np.isclose(sd[0, 0], layout.scale[0]) and np.isclose(sd[0, 1], layout.scale[1] * p * (1 - p))


def test_log_heat_channel_is_relative_above_its_shift_and_never_negative():
    """A heat declared ``transform: log`` with ``transform_shift`` s is z-scored on log(Q + s): heats of 40 and
    80 kJ are as far apart as 80 and 160 kJ would be on a relative scale, to within s; any normalised value maps
    back to Q ≥ 0; the shift survives JSON; a log transform without a shift is an error."""
    from sim2real.bridge import Channel, ObservableLayout

    rng = np.random.default_rng(1)
    n = 300
    heat = np.concatenate([rng.uniform(0, 5e3, n // 3), rng.lognormal(np.log(5e4), 0.4, n - n // 3)])
    ens = xr.Dataset(
        {"theta": (("sample", "parameter"), rng.random((n, 1))),
         "condition": (("sample", "condition_name"), rng.random((n, 1))),
         "heat": ("sample", heat, {"units": "J", "transform": "log", "transform_shift": 2e3})},
        coords={"parameter": ["a"], "condition_name": ["soc"]})
    layout = build_layout(ens)
    (ch,) = layout.channels
    assert (ch.transform, ch.shift) == ("log", 2e3)
    y = np.log(heat + 2e3)
    assert np.isclose(layout.offset[0], y.mean()) and np.isclose(layout.scale[0], y.std(), rtol=1e-2)
    assert np.allclose(layout.denormalise(layout.normalise(heat[:, None])), heat[:, None])
    z = layout.normalise(np.array([[40e3], [80e3], [160e3]]))[:, 0]
    assert np.isclose(z[1] - z[0], z[2] - z[1], rtol=0.05)
    assert (layout.denormalise(rng.normal(0, 10, (1000, 1))) >= 0).all()
    assert layout.normalise([[-5.0]])[0, 0] == layout.normalise([[0.0]])[0, 0]  # clipped at 0, not NaN
    assert ObservableLayout.from_json(layout.to_json()) == layout
    sd = layout.sd_si(np.zeros((1, 1)), np.zeros((1, 1)))  # delta method: d(exp y)/dy = exp(y)
    assert np.isclose(sd[0, 0], layout.scale[0] * np.exp(layout.offset[0]))
    with pytest.raises(ValueError, match="needs a shift"):
        Channel("heat", "J", transform="log")


def test_unknown_transform_is_an_error():
    from sim2real.bridge import Channel

    with pytest.raises(ValueError, match="transform 'sqrt'"):
        Channel("share", "1", transform="sqrt")


def test_categorical_condition_default_is_a_level_not_a_median_between_codes():
    """Half LCO (0), a quarter each NMC (1) and LFP (2): the median is 0.5, no chemistry; a real test that
    states none takes the most common level, or the one the caller states (the study's chemistry)."""
    rng = np.random.default_rng(1)
    chem = np.repeat([0.0, 1.0, 2.0], [50, 25, 25])
    ens = xr.Dataset(
        {"theta": (("sample", "parameter"), rng.random((100, 1))),
         "condition": (("sample", "condition_name"), np.column_stack([rng.random(100), chem])),
         "heat": ("sample", rng.normal(5e4, 1e4, 100), {"units": "J"})},
        coords={"parameter": ["a"], "condition_name": ["soc", "chemistry"]})
    assert np.median(chem) == 0.5
    layout = build_layout(ens)
    assert layout.condition_default[1] == 0.0
    assert np.isclose(layout.condition_default[0], np.median(ens["condition"].values[:, 0]))
    assert build_layout(ens, condition_defaults={"chemistry": 2.0}).condition_default[1] == 2.0
    real = xr.Dataset({"heat": ("test", [4e4, 6e4]), "chemistry": ("test", [1.0, np.nan])})
    assert real_to_batch(real, layout).c[:, 1].tolist() == [1.0, 0.0]


def test_simulated_runaway_is_hazard_level_six_or_more_where_the_simulator_scores_levels(ensemble, oven_sim):
    """TR ≡ level ≥ 6 for simulations as for the real tests: a level-6 simulation (pouch rupture at a bulk
    temperature ≥ 160 °C, no cell runaway) is a runaway in the decoder's training outcome; a simulator without
    levels keeps its flag."""
    from sim2real.bridge import simulated_runaway

    ds = xr.Dataset({"hazard_level": ("sample", np.array([1, 5, 6, 7, 0])),
                     "thermal_runaway": ("sample", np.array([False, False, False, True, False]))})
    np.testing.assert_array_equal(simulated_runaway(ds), [0.0, 0.0, 1.0, 1.0, np.nan])
    np.testing.assert_array_equal(simulated_runaway(ds.drop_vars("hazard_level")), [0, 0, 0, 1, 0])
    assert np.isnan(simulated_runaway(xr.Dataset({"x": ("sample", np.zeros(2))}))).all()
    assert float(simulated_runaway(ds.isel(sample=2))) == 1.0  # one simulation's dataset (the predict checks)
    lay = build_layout(ensemble)
    tr = ThetaTransform.from_priors(oven_sim.parameter_names, [p.prior for p in oven_sim.parameters])
    levels = xr.DataArray(np.where(ensemble["thermal_runaway"].values, 7, 6), dims="sample")
    np.testing.assert_array_equal(ensemble_to_batch(ensemble.assign(hazard_level=levels), lay, tr).y.numpy(), 1.0)
