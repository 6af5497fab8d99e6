"""The posterior predictive of a new test's observables (`risk.bayes.physics.predict_observables`, behind the
calorimetry heat quantiles of ``risk predict --tests``): on a linear model with a known answer, its 90 %
intervals cover fresh tests of a calibrated family and of an unseen one at about the nominal rate."""
import numpy as np
import pytest

from risk.bayes import CalibrationData, build_hierarchical_model, sample
from risk.bayes.physics import PhysicsSetup, predict_observables
from risk.bayes.subspace import InformedSubspace

from tests.risk.bayes.linear_test_model import A, NOISE, linear_surrogate

FAMILY_SD, CELL_SD = 0.6, 0.25


def _tests(rng, loc: np.ndarray, n: int) -> np.ndarray:
    """Observables ``(n, 3)`` of ``n`` fresh tests of cells around ``loc`` (c = 0)."""
    u = loc + CELL_SD * rng.standard_normal((n, 2))
    return u @ A.T + NOISE * rng.standard_normal((n, 3))


def _observable_fn(u, c):
    mean = u @ A.T + 0.5 * c[..., :1]
    return mean, np.full_like(mean, np.log(NOISE))


@pytest.mark.slow  # 6 chains × 4000 iterations (~50 s); the calorimetry quick study's CV checks its heat intervals
def test_new_test_intervals_cover_at_the_nominal_rate():
    rng = np.random.default_rng(11)
    families = [f"f{k}" for k in range(6)]
    locs = {f: FAMILY_SD * rng.standard_normal(2) for f in families}
    y = np.concatenate([_tests(rng, locs[f], 8) for f in families])
    fam = np.repeat(families, 8)
    data = CalibrationData(test=np.arange(fam.size), family=fam, conditions=np.zeros((fam.size, 1)), observables=y,
                           condition_names=("dummy",))
    setup = PhysicsSetup(np.zeros(2), np.ones(2), InformedSubspace.full(("k1", "k2"), np.zeros(2)), None)
    model = build_hierarchical_model(data, linear_surrogate, parameter_names=["k1", "k2"], prior_mean=np.zeros(2),
                                     prior_sd=np.ones(2))
    # the true discrepancy is zero, so its posterior sits at the boundary and mixes slowly: 1000 + 1000 draws on 4
    # chains gave R-hat 1.013 / bulk ESS 382 on a clean clone; longer adaptation and 6 chains meet the gate
    tree, diag = sample(model, seed=3, draws=1500, tune=2500, target_accept=0.95, chains=6, attrs=setup.attrs(),
                        posterior_predictive=False)
    assert diag.ok, diag.messages
    # fresh tests: 300 of a calibrated family, 300 of a new family (each its own location from the truth)
    new_locs = FAMILY_SD * rng.standard_normal((300, 2))
    fresh = {"f2": _tests(rng, locs["f2"], 300),
             "new": np.stack([_tests(rng, loc, 1)[0] for loc in new_locs])}
    for family, obs in fresh.items():
        draws = predict_observables(tree, _observable_fn, [family], np.zeros((1, 1)), seed=4)  # (S·cells, 1, 3)
        assert draws.shape[1:] == (1, 3) and draws.shape[0] >= 4000
        lo, hi = np.quantile(draws[:, 0], [0.05, 0.95], axis=0)
        cover = ((obs > lo) & (obs < hi)).mean(axis=0)
        assert np.all((cover > 0.82) & (cover < 0.97)), (family, cover)
    # a known family's interval is narrower than a new family's (no family-level uncertainty)
    width = {f: np.diff(np.quantile(predict_observables(tree, _observable_fn, [f], np.zeros((1, 1)), seed=5)[:, 0],
                                    [0.05, 0.95], axis=0), axis=0) for f in ("f2", "new")}
    assert np.all(width["f2"] < width["new"])


@pytest.mark.slow  # 6 chains × 4000 iterations (~90 s): the calorimetry quick study exercises the term under its gate
def test_family_discrepancy_carries_design_offsets_to_an_unseen_family():
    """Families whose observables sit off the simulator by a family offset (b_f ~ N(m, 0.5²) per observable,
    what a lumped simulator misses about a cell design, with a bias m shared by the designs): with
    ``family_discrepancy_scale`` the model learns the offsets' bias and scale, and its intervals for a new
    family's tests cover at about the nominal rate."""
    rng = np.random.default_rng(21)
    tau_true, bias_true = 0.5, np.array([0.8, -0.5, 0.0])
    families = [f"f{k}" for k in range(8)]
    locs = {f: FAMILY_SD * rng.standard_normal(2) for f in families}
    offsets = {f: bias_true + tau_true * rng.standard_normal(3) for f in families}
    y = np.concatenate([_tests(rng, locs[f], 6) + offsets[f] for f in families])
    fam = np.repeat(families, 6)
    data = CalibrationData(test=np.arange(fam.size), family=fam, conditions=np.zeros((fam.size, 1)), observables=y,
                           condition_names=("dummy",))
    setup = PhysicsSetup(np.zeros(2), np.ones(2), InformedSubspace.full(("k1", "k2"), np.zeros(2)), None,
                         family_discrepancy=0.5)
    model = build_hierarchical_model(data, linear_surrogate, parameter_names=["k1", "k2"], prior_mean=np.zeros(2),
                                     prior_sd=np.ones(2), family_discrepancy_scale=setup.family_discrepancy)
    # cell_sd and the per-test discrepancy are confounded (both per-test spread): 6 chains, long adaptation, as above
    tree, diag = sample(model, seed=5, draws=1500, tune=2500, target_accept=0.95, chains=6, attrs=setup.attrs(),
                        posterior_predictive=False)
    assert diag.ok, diag.messages
    assert PhysicsSetup.from_attrs(tree.attrs).family_discrepancy == 0.5
    tau = tree["posterior"]["family_discrepancy"].values.reshape(-1, 3)
    lo, hi = np.quantile(tau, [0.02, 0.98], axis=0)
    assert np.all((lo < tau_true) & (tau_true < hi + 0.3)), (lo, hi)
    bias = tree["posterior"]["family_discrepancy_mean"].values.reshape(-1, 3)
    lo, hi = np.quantile(bias, [0.02, 0.98], axis=0)
    assert np.all((lo < bias_true) & (bias_true < hi)), (lo, hi)
    # 300 new families, one test each: location and offset drawn from the truth
    obs = np.stack([_tests(rng, FAMILY_SD * rng.standard_normal(2), 1)[0] + bias_true + tau_true * rng.standard_normal(3)
                    for _ in range(300)])
    draws = predict_observables(tree, _observable_fn, ["new"], np.zeros((1, 1)), seed=6)
    lo, hi = np.quantile(draws[:, 0], [0.05, 0.95], axis=0)
    cover = ((obs > lo) & (obs < hi)).mean(axis=0)
    # 8 families inform τ_b loosely (its 98 % interval is checked above); an interval that integrates that
    # uncertainty is conservative for one data set: 0.90 / 0.95 / 0.97 measured (pymc 6.4, numpyro 0.22, jax 0.12),
    # against 0.69 without the family term
    assert np.all((cover > 0.82) & (cover < 0.99)), cover
    # a known family's offset is its posterior one: its tests are centred on it, not on the simulator
    known = predict_observables(tree, _observable_fn, ["f3"], np.zeros((1, 1)), seed=7)[:, 0].mean(axis=0)
    np.testing.assert_allclose(known, locs["f3"] @ A.T + offsets["f3"], atol=0.35)


def test_a_new_replicate_of_a_tested_condition_inherits_its_emulator_error():
    """A new test of a family within ``length`` of a fitted test shares that test's group's posterior error (drawn from
    its conditional posterior per draw, scaled by √ρ, the share of the decoder's variance it carries); an untested condition, or a family without fitted tests,
    gets a fresh standard normal error; a test the fit did not see (dropped from the posterior's ``test`` coord)
    informs nothing."""
    import json

    import xarray as xr

    from risk.bayes.physics import _emulator_errors, emulator_groups

    cond = np.array([[0.0], [0.1], [0.0], [3.0]])
    groups = emulator_groups(cond, ["a", "a", "b", "a"], 0.5)
    assert groups.tolist() == [0, 0, 2, 1]  # numbered family by family
    spec = {"length": 0.5, "loc": [0.0], "scale": [1.0], "test": ["t0", "t1", "t2", "t3"],
            "family": ["a", "a", "b", "a"], "conditions": cond.tolist(), "group": groups.tolist(), "emulated": [1.0, 0.0]}
    S = 400
    err = np.zeros((1, S, 3, 2))
    err[..., 0, 0], err[..., 1, 0], err[..., 2, 0], err[..., 1] = 1.5, -2.0, 0.7, 5.0  # a at c ≈ 0, a at 3 (unseen), b
    sd = np.full_like(err, 0.1)
    dims = ("chain", "draw", "emulator_group", "observable")
    post = xr.Dataset({"emulator_error_mean": (dims, err), "emulator_error_sd": (dims, sd),
                       "emulator_share": (("chain", "draw"), np.full((1, S), 0.64))},
                      coords={"test": ["t0", "t1", "t2"]})  # t3 held out: not in the posterior's tests
    tree = xr.DataTree.from_dict({"posterior": post})
    tree.attrs["emulator_error"] = json.dumps(spec)
    e, share = _emulator_errors(tree, post, np.arange(S), ["a", "a", "new"], np.array([[0.05], [3.0], [0.0]]),
                                np.random.default_rng(0))
    assert e.shape == (S, 3, 2) and np.allclose(share, [0.64, 0.0])
    assert np.all(e[..., 1] == 0)  # an observable that carries no emulator error (no exact value) gets none
    # at the tested condition: that condition's error N(1.5, 0.1²), × √ρ
    assert abs(e[:, 0, 0].mean() - 0.8 * 1.5) < 0.02 and abs(e[:, 0, 0].std() - 0.8 * 0.1) < 0.01
    for i in (1, 2):  # far from family a's fitted tests (t3 unseen), and an unseen family: √ρ N(0, 1)
        assert abs(e[:, i, 0].mean()) < 0.15 and 0.7 < e[:, i, 0].std() < 0.9, (i, e[:, i, 0].mean(), e[:, i, 0].std())


@pytest.mark.slow  # two fits of 4 chains × 3000 iterations: the calorimetry study's CV checks it on real tests
def test_replicates_of_a_tested_condition_share_the_emulator_error():
    """Each family × condition has its own emulator error (a share 0.8 of the surrogate's variance, as a decoder of a
    deterministic simulator errs); replicates scatter by the rest and a small δ. With ``emulator_groups``
    the model learns each condition's error from its replicates: fresh replicates there are covered at about the
    nominal rate by intervals much narrower than the plain model's, which can only spread the scale over every test."""
    from types import SimpleNamespace

    from risk.bayes.physics import emulator_spec

    rng = np.random.default_rng(31)
    SHARE = 0.8  # of the surrogate's variance shared by a condition's replicates (the databank's posterior: 0.79)
    families, conds, reps, spread = [f"f{k}" for k in range(4)], np.array([0.0, 1.0, 2.0]), 4, 0.5 * NOISE
    locs = {f: FAMILY_SD * rng.standard_normal(2) for f in families}
    err = {(f, c): rng.standard_normal(3) for f in families for c in conds}

    def tests(f, c, n):
        u = locs[f] + 0.02 * rng.standard_normal((n, 2))  # nearly identical cells: the scatter is the noise
        return (u @ A.T + 0.5 * c + NOISE * np.sqrt(SHARE) * err[f, c]
                + np.sqrt((1 - SHARE) * NOISE**2 + spread**2) * rng.standard_normal((n, 3)))

    fam = np.repeat(families, conds.size * reps)
    cond = np.tile(np.repeat(conds, reps), len(families))[:, None]
    y = np.concatenate([tests(f, c, reps) for f in families for c in conds])
    data = CalibrationData(test=np.arange(fam.size).astype(str), family=fam, conditions=cond, observables=y,
                           condition_names=("c",))
    layout = SimpleNamespace(condition_loc=(0.0,), condition_scale=(1.0,))  # the decoder's z-scoring of c
    fits = {}
    for name, spec in (("emulated", emulator_spec(data, layout, 0.3)), ("plain", None)):
        setup = PhysicsSetup(np.zeros(2), np.ones(2), InformedSubspace.full(("k1", "k2"), np.zeros(2)), None,
                             emulator=spec)
        groups = None if spec is None else np.asarray(spec["group"])
        model = build_hierarchical_model(data, linear_surrogate, parameter_names=["k1", "k2"], prior_mean=np.zeros(2),
                                         prior_sd=np.ones(2), discrepancy_scale=spread, emulator_groups=groups)
        tree, diag = sample(model, seed=8, draws=2000, tune=1000, target_accept=0.95, chains=4, attrs=setup.attrs(),
                            posterior_predictive=False, allow_bad_diagnostics=True)
        assert diag.ok, (name, diag.messages)
        fits[name] = tree
    cover, width = {}, {}
    for name, tree in fits.items():
        hits, widths = [], []
        for f in families[:2]:
            for c in conds:
                draws = predict_observables(tree, _observable_fn, [f], np.array([[c]]), seed=9)[:, 0]
                lo, hi = np.quantile(draws, [0.05, 0.95], axis=0)
                fresh = tests(f, c, 200)
                hits.append(((fresh > lo) & (fresh < hi)).mean())
                widths.append(np.mean(hi - lo))
        cover[name], width[name] = np.mean(hits), np.mean(widths)
    assert 0.82 < cover["emulated"] < 0.99, cover
    assert width["emulated"] < 0.75 * width["plain"], width


def test_family_logit_offsets_known_family_posterior_unseen_family_its_spread():
    """`family_logit_offsets`: a known family's posterior offset per draw, an unseen family's draws from
    m_η + β_η x + τ_η t₃ at its cell's covariate, shared by its entries; zeros for a posterior without the term."""
    import json

    import xarray as xr

    from risk.bayes.physics import family_logit_offsets

    rng = np.random.default_rng(0)
    chains, draws = 4, 2000
    off = rng.normal(size=(chains, draws, 2))
    post = xr.Dataset({"family_logit_offset": (("chain", "draw", "family"), off),
                       "family_logit_sd": (("chain", "draw"), np.full((chains, draws), 0.8)),
                       "family_logit_mean": (("chain", "draw"), np.full((chains, draws), -1.0)),
                       "family_logit_slope": (("chain", "draw"), np.full((chains, draws), 2.0))},
                      coords={"family": ["a", "b"]})
    tree = xr.DataTree.from_dict({"posterior": post})
    tree.attrs["family_covariate"] = json.dumps({"index": 0, "centre": np.log(2.0)})
    keep = np.arange(0, chains * draws, 2)
    cap = np.array([[4.0], [2.0 * np.e], [1.0], [2.0 * np.e]])  # capacities; "new" at x = 1
    out = family_logit_offsets(tree, keep, ["b", "new", "a", "new"], cap, np.random.default_rng(1))
    flat = off.reshape(-1, 2)[keep]
    np.testing.assert_array_equal(out[:, 0], flat[:, 1])
    np.testing.assert_array_equal(out[:, 2], flat[:, 0])
    np.testing.assert_array_equal(out[:, 1], out[:, 3])  # one draw per unseen family, shared by its tests
    assert out[:, 1].mean() == pytest.approx(-1.0 + 2.0 * 1.0, abs=0.05)
    # τ_η times a Student-t(3) deviate: median absolute deviation 0.8 × 0.765 (the t(3) quartile)
    assert np.median(np.abs(out[:, 1] - np.median(out[:, 1]))) == pytest.approx(0.8 * 0.7649, rel=0.06)
    bare = xr.DataTree.from_dict({"posterior": post.drop_vars(["family_logit_offset", "family_logit_sd"])})
    assert not family_logit_offsets(bare, keep, ["a", "new"], cap[:2], np.random.default_rng(1)).any()


def test_link_scales_known_family_posterior_unseen_family_lognormal_spread():
    """`link_scales`: a known family's posterior ``family_link_scale`` per draw, an unseen family's draws
    s · exp(τ_λ N(0, 1)) shared by its entries; ``link_scale`` for every family without family scales."""
    import xarray as xr

    from risk.bayes.physics import link_scales

    rng = np.random.default_rng(0)
    chains, draws = 4, 2000
    s_f = np.exp(rng.normal(size=(chains, draws, 2)))
    post = xr.Dataset({"family_link_scale": (("chain", "draw", "family"), s_f),
                       "link_scale": (("chain", "draw"), np.full((chains, draws), 1.5)),
                       "family_link_sd": (("chain", "draw"), np.full((chains, draws), 0.6))},
                      coords={"family": ["a", "b"]})
    tree = xr.DataTree.from_dict({"posterior": post})
    keep = np.arange(0, chains * draws, 2)
    out = link_scales(tree, keep, ["b", "new", "a", "new"], np.random.default_rng(1))
    flat = s_f.reshape(-1, 2)[keep]
    np.testing.assert_array_equal(out[:, 0], flat[:, 1])
    np.testing.assert_array_equal(out[:, 2], flat[:, 0])
    np.testing.assert_array_equal(out[:, 1], out[:, 3])  # one draw per unseen family, shared by its tests
    log_new = np.log(out[:, 1])
    assert np.median(log_new) == pytest.approx(np.log(1.5), abs=0.05)
    assert log_new.std() == pytest.approx(0.6, rel=0.06)
    shared = xr.DataTree.from_dict({"posterior": post.drop_vars(["family_link_scale", "family_link_sd"])})
    np.testing.assert_array_equal(link_scales(shared, keep, ["a", "new"], np.random.default_rng(1)), 1.5)
    bare = xr.DataTree.from_dict({"posterior": post.drop_vars(["family_link_scale", "family_link_sd", "link_scale"])})
    np.testing.assert_array_equal(link_scales(bare, keep, ["a"], np.random.default_rng(1)), 1.0)


def test_reference_shift_keeps_the_family_level_at_the_study_wide_scale():
    """`reference_shift`: (s − s_f) · g(location, conditions at SOC_REF) per draw and test, so that s_f · g + shift
    equals s · g_ref + s_f · (g − g_ref) (`risk.bayes.model`); zeros without per-family scales."""
    import json

    import xarray as xr

    from risk.bayes.model import SOC_REF
    from risk.bayes.physics import reference_shift

    s = np.array([[1.0, 2.0]])  # (chain, draw)
    post = xr.Dataset({"link_scale": (("chain", "draw"), s),
                       "family_link_scale": (("chain", "draw", "family"), np.ones((1, 2, 1)))}, coords={"family": ["a"]})
    tree = xr.DataTree.from_dict({"posterior": post})
    tree.attrs["condition_names"] = json.dumps(["capacity", "soc"])
    logit_fn = lambda u, c: u[..., 0] + 10.0 * c[..., 1] + c[..., 0]  # noqa: E731
    scale = np.array([[3.0, 0.5], [1.0, 4.0]])  # (S, n)
    loc = np.array([[[0.2], [0.4]], [[-1.0], [0.0]]])  # (S, n, n_param)
    cond = np.array([[2.0, 0.9], [5.0, 0.1]])  # the tests' own SOC is replaced by SOC_REF
    got = reference_shift(tree, np.array([0, 1]), scale, loc, cond, logit_fn)
    g_ref = loc[..., 0] + 10.0 * SOC_REF + cond[:, 0]
    np.testing.assert_allclose(got, (s[0][:, None] - scale) * g_ref)
    bare = xr.DataTree.from_dict({"posterior": post.drop_vars("family_link_scale")})
    assert not reference_shift(bare, np.array([0, 1]), scale, loc, cond, logit_fn).any()
