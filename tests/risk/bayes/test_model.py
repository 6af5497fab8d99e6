"""Hierarchical model + NumPyro sampling + diagnostics on a linear-Gaussian surrogate."""
import json

import numpy as np
import pytest

from risk.bayes import CalibrationData, DiagnosticsFailed, Thresholds, build_hierarchical_model, sample, summarize
from risk.bayes.model import prior_moments_u
from risk.bayes.sampling import load_posterior, stack_draws
from simulators.priors import Prior

from tests.risk.bayes.linear_test_model import A, NOISE, linear_surrogate


def _data(seed=0, n_per_family=8):
    rng = np.random.default_rng(seed)
    mu_true = {"a": np.array([1.0, -0.5]), "b": np.array([-0.8, 0.7])}
    fam = np.repeat(["a", "b"], n_per_family)
    c = rng.uniform(0, 1, (fam.size, 1))
    u = np.stack([mu_true[f] for f in fam]) + 0.2 * rng.standard_normal((fam.size, 2))
    y = u @ A.T + 0.5 * c + NOISE * rng.standard_normal((fam.size, 3))
    y[0, 1] = y[5, 2] = np.nan  # masked entries must simply drop out
    level = np.where(rng.uniform(size=fam.size) < 0.5, 7.0, 2.0)
    level[:2] = np.nan
    runaway = (rng.uniform(size=fam.size) < 0.5).astype(float)
    data = CalibrationData(test=np.arange(fam.size), family=fam, conditions=c, observables=y,
                           hazard_level=level, runaway=runaway)
    return data, mu_true


def test_prior_moments_u_lognormal():
    m, s = prior_moments_u([Prior("lognormal", mu=1.0, sigma=0.5), Prior("uniform", low=0, high=1)],
                           to_unconstrained=lambda t: np.column_stack([np.log(t[:, 0]), t[:, 1]]))
    np.testing.assert_allclose(m, [1.0, 0.5], atol=0.02)
    np.testing.assert_allclose(s, [0.5, np.sqrt(1 / 12)], atol=0.02)


def test_model_structure_masks_missing_entries():
    data, _ = _data()
    model = build_hierarchical_model(data, linear_surrogate, parameter_names=["k1", "k2"],
                                     prior_mean=np.zeros(2), prior_sd=np.ones(2))
    assert {v.name for v in model.observed_RVs} == {"observables", "hazard_level", "runaway"}
    n_obs = int(np.isfinite(data.observables).sum())
    assert model["observables"].eval().shape == (n_obs,)
    # levels where observed (14 tests), runaway only where no level (2 tests)
    assert model["hazard_level"].eval().shape == (14,)
    assert model["runaway"].eval().shape == (2,)


def test_fit_recovers_family_locations_and_writes_outputs(tmp_path):
    data, mu_true = _data()
    model = build_hierarchical_model(data, linear_surrogate, parameter_names=["k1", "k2"],
                                     prior_mean=np.zeros(2), prior_sd=np.ones(2) * 2)
    th = Thresholds(rhat_max=1.05, ess_min=100, divergences_max=10)
    tree, diag = sample(model, seed=11, draws=250, tune=300, out_dir=tmp_path, input_hash="h1", thresholds=th,
                        var_names=["mu_family", "cell_sd"])
    assert diag.ok, diag.messages
    for g in ("posterior", "posterior_predictive", "observed_data", "sample_stats", "log_likelihood"):
        assert g in tree.children, g
        # host NumPy arrays, not PyMC's JAX arrays (every reduction on those is a device transfer)
        assert all(type(v.data) is np.ndarray for v in tree[g].to_dataset().data_vars.values()), g
    mu = stack_draws(tree, "mu_family")  # (S, family, parameter)
    for k, f in enumerate(["a", "b"]):
        err = (mu[:, k].mean(0) - mu_true[f]) / mu[:, k].std(0)
        assert np.all(np.abs(err) < 3.5), (f, err)  # truth within 3.5 posterior sd
    # ordinal and binary outcome agree: the 5|6 cutpoint is pinned at 0
    np.testing.assert_array_equal(stack_draws(tree, "cutpoints")[:, 4], 0.0)
    on_disk = json.loads((tmp_path / "diagnostics.json").read_text())
    assert set(on_disk) == {"ok", "rhat_max", "ess_bulk_min", "ess_tail_min", "divergences", "bfmi_min", "messages",
                            "rhat_by_variable"}
    per_var = on_disk["rhat_by_variable"]  # worst first, and its worst is the overall maximum
    assert set(per_var) == {"mu_family", "cell_sd"} and list(per_var.values())[0] == on_disk["rhat_max"]
    assert per_var == dict(sorted(per_var.items(), key=lambda kv: -kv[1]))
    saved = load_posterior(tmp_path / "posterior.nc")
    assert saved.attrs["input_hash"] == "h1"
    # checkpoint: same hash → loaded, not re-sampled (identical draws even with another seed)
    again, _ = sample(model, seed=99, draws=250, tune=300, out_dir=tmp_path, input_hash="h1", thresholds=th,
                      var_names=["mu_family", "cell_sd"])
    np.testing.assert_array_equal(stack_draws(again, "mu_pop"), stack_draws(tree, "mu_pop"))
    # failing diagnostics are loud, carry the summary, and are allowed on request
    strict = Thresholds(ess_min=1e9)
    with pytest.raises(DiagnosticsFailed) as err:
        from risk.bayes.diagnostics import check
        check(summarize(tree, ["mu_family"], strict))
    assert not err.value.summary.ok and "bulk ESS" in str(err.value)
    assert not summarize(tree, ["mu_family"], strict).ok
    # an R-hat failure names the variables that disagree between chains
    assert "(mu_family " in summarize(tree, ["mu_family"], Thresholds(rhat_max=0.5)).messages[0]


def test_fewer_than_four_chains_rejected():
    data, _ = _data()
    model = build_hierarchical_model(data, linear_surrogate, parameter_names=["k1", "k2"],
                                     prior_mean=np.zeros(2), prior_sd=np.ones(2))
    with pytest.raises(ValueError, match="at least 4 chains"):
        sample(model, seed=0, chains=2)


def test_design_region_is_the_central_prior_box_and_its_wall_enters_the_log_density():
    from risk.bayes.model import design_penalty, design_region_u

    lo, hi = design_region_u([Prior("uniform", low=0.0, high=1.0), Prior("lognormal", mu=0.0, sigma=1.0)],
                             to_unconstrained=lambda t: np.column_stack([t[:, 0], np.log(t[:, 1])]), tail=0.025)
    np.testing.assert_allclose(lo, [0.025, -1.96], atol=0.06)  # 8192 draws: quantile sd ≈ 0.03
    np.testing.assert_allclose(hi, [0.975, 1.96], atol=0.06)
    bounds = (np.array([-1.0, -1.0]), np.array([1.0, 1.0]))
    u = np.array([[0.0, 0.5], [1.5, 0.0], [-1.25, 2.0]])
    np.testing.assert_allclose(design_penalty(u, bounds, wall=0.5), [0.0, -0.5, -0.125 - 2.0])
    # the model's log density carries exactly that penalty for the cells of the tests it sees
    data, _ = _data()
    box = (np.full(2, -0.4), np.full(2, 0.4))
    kw = dict(parameter_names=["k1", "k2"], prior_mean=np.zeros(2), prior_sd=np.ones(2))
    walled = build_hierarchical_model(data, linear_surrogate, design_bounds=box, design_wall=0.05, **kw)
    free = build_hierarchical_model(data, linear_surrogate, **kw)
    assert "design_region" in {v.name for v in walled.potentials}
    point = walled.initial_point()
    point["z_family"] = np.array([[3.0, -1.0], [0.2, 0.1]])  # family a's cells beyond the box, b's inside
    tau, cell_sd = np.exp(point["tau_family_log__"]), np.exp(point["cell_sd_log__"])  # identity basis, anchor 0
    u = (point["a_pop"] + tau * point["z_family"])[data.family_index] + cell_sd * point["z_test"]
    expected = design_penalty(u, box, wall=0.05).sum()
    assert expected < -1.0
    gap = walled.compile_logp()(point) - free.compile_logp()(point)
    np.testing.assert_allclose(gap, expected, rtol=1e-6)


def test_lower_and_upper_bounds_enter_the_log_density_as_survival_and_cdf():
    """A censored entry's likelihood: +1 (lower bound) log P(Y > y), -1 (upper bound) log P(Y < y), with
    Y ~ Normal(mean, sqrt(noise² + δ²)); checked against scipy at one point of the model."""
    from scipy import stats

    from risk.bayes.model import censor_sign

    assert censor_sign(np.array([True, False])).tolist() == [1, 0]
    assert censor_sign(np.array([-1, 0, 1], np.int8)).tolist() == [-1, 0, 1]
    data, _ = _data()
    sign = np.zeros(data.observables.shape, np.int8)
    sign[3, 0], sign[4, 0], sign[6, 2] = 1, -1, -1
    kw = dict(parameter_names=["k1", "k2"], prior_mean=np.zeros(2), prior_sd=np.ones(2))
    exact = build_hierarchical_model(data, linear_surrogate, **kw)
    bounded = build_hierarchical_model(data, linear_surrogate, censored=sign, **kw)
    point = exact.initial_point()
    point["z_test"] = np.random.default_rng(1).standard_normal(point["z_test"].shape)
    tau, cell_sd = np.exp(point["tau_family_log__"]), np.exp(point["cell_sd_log__"])
    u = (point["a_pop"] + tau * point["z_family"])[data.family_index] + cell_sd * point["z_test"]
    mean = u @ A.T + 0.5 * data.conditions[:, :1]
    delta = np.exp(point["discrepancy_log__"])
    sd = np.sqrt(NOISE**2 + delta**2)
    gap = 0.0
    for (i, j), s in ((idx, sign[idx]) for idx in zip(*np.nonzero(sign))):
        y = data.observables[i, j]
        exact_term = stats.norm.logpdf(y, mean[i, j], sd[j])
        bound_term = stats.norm.logsf(y, mean[i, j], sd[j]) if s > 0 else stats.norm.logcdf(y, mean[i, j], sd[j])
        gap += bound_term - exact_term
    np.testing.assert_allclose(bounded.compile_logp()(point) - exact.compile_logp()(point), gap, rtol=1e-6)


def test_family_offset_only_on_observables_with_exact_values():
    """An observable known only by bounds (every entry censored) carries no family offset: its family spread
    must come from the physics (the family locations), not a free offset its signs cannot inform."""
    data, _ = _data()
    sign = np.zeros(data.observables.shape, np.int8)
    sign[:, 2] = np.where(np.arange(len(sign)) % 2, 1, -1)  # observable 2: signs only
    model = build_hierarchical_model(data, linear_surrogate, parameter_names=["k1", "k2"], prior_mean=np.zeros(2),
                                     prior_sd=np.ones(2), censored=sign, family_discrepancy_scale=0.5)
    point = model.initial_point()
    point["z_family_discrepancy"] = np.array([[1.0, -2.0, 1.0], [0.5, 0.0, 3.0]])
    point["family_discrepancy_mean"] = np.array([0.3, -0.2, 0.7])
    point["family_discrepancy_log__"] = np.log([0.5, 2.0, 1.0])
    [value] = model.replace_rvs_by_values([model["family_offset"]])
    offset = model.compile_fn(value, inputs=model.value_vars, on_unused_input="ignore")(point)
    # b_fj = m_b,j + τ_b,j z_fj where an exact value exists, 0 on the censored-only observable
    np.testing.assert_allclose(offset, [[0.8, -4.2, 0.0], [0.55, -0.2, 0.0]], rtol=1e-12)


def test_centred_family_locations_are_the_same_model():
    """Centring the family locations along a direction changes the geometry, not the posterior: the centred log
    density at a = a_pop + β x d + τ z equals the non-centred one at z minus the Jacobian log τ per family (λ log τ
    where partially centred with weight λ)."""
    data, _ = _data()
    kw = dict(parameter_names=["k1", "k2"], prior_mean=np.zeros(2), prior_sd=np.ones(2),
              family_covariate=np.array([-0.3, 0.3]), covariate_direction=np.array([0.6, 0.8]))
    nc = build_hierarchical_model(data, linear_surrogate, **kw)
    ce = build_hierarchical_model(data, linear_surrogate, centred_families=[True, False], **kw)
    point = nc.initial_point()
    rng = np.random.default_rng(3)
    for name in point:
        point[name] = point[name] + 0.3 * rng.standard_normal(np.shape(point[name]))
    tau = np.exp(point["tau_family_log__"])
    z = point["z_family"]
    centre = point["a_pop"] + point["family_slope"] * np.array([-0.3, 0.3])[:, None] * np.array([0.6, 0.8])
    point_c = dict(point, z_family=np.where([True, False], centre + tau * z, z))
    lp_nc, lp_c = nc.compile_logp()(point), ce.compile_logp()(point_c)
    np.testing.assert_allclose(lp_c, lp_nc - 2 * np.log(tau[0]), rtol=1e-9)
    def mu_family(model, at):
        out = model.replace_rvs_by_values([model["mu_family"]])[0]
        return model.compile_fn(out, inputs=model.value_vars, on_unused_input="ignore")(at)

    mu, mu_nc = mu_family(ce, point_c), mu_family(nc, point)
    np.testing.assert_allclose(mu, mu_nc, rtol=1e-9, atol=1e-12)
    # per family: family a centred along d2 only, b non-centred (an unnamed family is non-centred)
    pf = build_hierarchical_model(data, linear_surrogate, centred_families={"a": [False, True]}, **kw)
    point_f = dict(point, z_family=np.where([[False, True], [False, False]], centre + tau * z, z))
    np.testing.assert_allclose(pf.compile_logp()(point_f), lp_nc - np.log(tau[1]), rtol=1e-9)
    np.testing.assert_allclose(mu_family(pf, point_f), mu_nc, rtol=1e-9, atol=1e-12)
    # partially centred, λ = (0.3, 0.7) for family a: z = λ c + τ^λ z_nc, the log density minus λ log τ
    lam = np.array([[0.3, 0.7], [0.0, 0.0]])
    pp = build_hierarchical_model(data, linear_surrogate, centred_families={"a": [0.3, 0.7]}, **kw)
    point_p = dict(point, z_family=lam * centre + tau**lam * z)
    np.testing.assert_allclose(pp.compile_logp()(point_p), lp_nc - (lam[0] * np.log(tau)).sum(), rtol=1e-9)
    np.testing.assert_allclose(mu_family(pp, point_p), mu_nc, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="centred_families"):
        build_hierarchical_model(data, linear_surrogate, centred_families=[True], **kw)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        build_hierarchical_model(data, linear_surrogate, centred_families=[1.5, 0.0], **kw)
    with pytest.raises(ValueError, match="family 'b'"):
        build_hierarchical_model(data, linear_surrogate, centred_families={"b": [True]}, **kw)


def test_a_family_a_fit_does_not_see_stays_non_centred():
    """In the weighted model (one graph for every cross-validation fold) a family whose tests all have weight 0 is
    sampled non-centred whatever the centring says (a prior-only centred location is a funnel in τ): with family b
    unseen, the log density of the all-centred model is the non-centred one minus family a's Jacobian alone; with b
    seen, minus both families'."""
    data, _ = _data()
    kw = dict(parameter_names=["k1", "k2"], prior_mean=np.zeros(2), prior_sd=np.ones(2), weighted=True)
    nc = build_hierarchical_model(data, linear_surrogate, **kw)
    ce = build_hierarchical_model(data, linear_surrogate, centred_families={"a": [True, True], "b": [True, True]},
                                  **kw)
    point = nc.initial_point()
    rng = np.random.default_rng(5)
    for name in point:
        point[name] = point[name] + 0.3 * rng.standard_normal(np.shape(point[name]))
    tau, z = np.exp(point["tau_family_log__"]), point["z_family"]
    loc = point["a_pop"] + tau * z
    b_seen = np.ones(len(data.test))
    b_unseen = np.where(data.family == "b", 0.0, 1.0)
    for w, centred_rows, jacobian in ((b_unseen, [True, False], np.log(tau).sum()),
                                      (b_seen, [True, True], 2 * np.log(tau).sum())):
        for m in (nc, ce):
            m["test_weight"].set_value(w)
        point_c = dict(point, z_family=np.where(np.array(centred_rows)[:, None], loc, z))
        np.testing.assert_allclose(ce.compile_logp()(point_c), nc.compile_logp()(point) - jacobian, rtol=1e-9)


def test_centred_families_from_advi_scales():
    """λ (how far to centre a family location) from the non-centred ADVI fit: the shrinkage factor averaged over log τ
    in the range about ADVI's τ̂, so that the partially centred z has the same conditional sd at both ends of the
    range (the rule's purpose); 0 for a location the data do not inform, larger the tighter the tests pin it."""
    from risk.bayes.physics import CENTRING_TAU_RANGE, centred_families, centring_from_json, centring_json

    sd = np.array([[0.1, 0.9, 0.3], [0.2, 0.7, 0.35], [0.5, 1.0, 0.2]] * 2)  # 6 families × 3 directions
    tau = np.array([0.2, 0.8, 1.5])
    fams = [f"f{i}" for i in range(6)]
    params = {"z_family_auto_scale": sd, "tau_family_log___auto_loc": np.log(tau)}
    lam = np.array([centred_families(params, fams)[f] for f in fams])
    assert lam[2, 1] == 0.0  # sd 1: the data do not inform the location
    assert np.all((lam >= 0) & (lam <= 1))
    assert lam[0, 0] > lam[1, 0] > lam[2, 0] and lam[1, 1] > lam[0, 1]  # tighter pinned, more centred
    # the conditional sd of z = λ c + τ^(λ-1) (a - c) given τ, a normal location with data-only sd σ_f:
    # τ^(λ-1) (1/τ² + 1/σ_f²)^(-1/2), equal at both ends of the range
    with np.errstate(divide="ignore"):
        var_f = tau**2 * sd**2 / (1 - sd**2)
    for lo, hi in ((tau / CENTRING_TAU_RANGE[0], tau * CENTRING_TAU_RANGE[1]),):
        with np.errstate(divide="ignore", invalid="ignore"):
            s_lo = lo ** (lam - 1) / np.sqrt(1 / lo**2 + 1 / var_f)
            s_hi = hi ** (lam - 1) / np.sqrt(1 / hi**2 + 1 / var_f)
        finite = np.isfinite(var_f)
        np.testing.assert_allclose(s_lo[finite], s_hi[finite], rtol=1e-9)
    got = centred_families(params, fams)
    assert centring_from_json(json.loads(json.dumps(centring_json(got)))) == {
        f: tuple(round(v, 4) for v in r) for f, r in got.items()}  # the posterior attr round trip (4 decimals)
    assert centring_from_json([True, False]) == (1.0, 0.0)  # an older posterior's booleans
    small = {"z_family_auto_scale": sd[:4], "tau_family_log___auto_loc": np.log(tau)}
    assert centred_families(small, fams[:4]) == {f: (0.0,) * 3 for f in fams[:4]}
    assert centred_families({}, fams) == {}
    with pytest.raises(ValueError, match="6 family locations, expected 5"):
        centred_families(params, fams[:5])


def test_advi_inverse_mass_follows_the_value_variables_order_numpyro_receives():
    from risk.bayes.sampling import advi_fit, advi_inverse_mass

    data, _ = _data()
    model = build_hierarchical_model(data, linear_surrogate, parameter_names=["k1", "k2"],
                                     prior_mean=np.zeros(2), prior_sd=np.ones(2))
    fit = advi_fit(model, seed=3, steps=300)
    inv = advi_inverse_mass(model, fit)
    point = model.initial_point(0)
    sizes = [int(np.size(point[v.name])) for v in model.value_vars]
    assert inv.shape == (sum(sizes),) and np.all(inv > 0)
    offsets = np.cumsum([0] + sizes)
    for k, v in enumerate(model.value_vars):  # each value variable's block holds its own ADVI variances
        np.testing.assert_allclose(inv[offsets[k]:offsets[k + 1]],
                                   np.ravel(np.asarray(fit[1][f"{v.name}_auto_scale"])) ** 2)


def test_pymc_jax_graphs_are_jitted_only_inside_the_context():
    import pymc.sampling.jax as pmjax

    from risk.bayes.sampling import jitted_pymc_graphs

    data, _ = _data()
    model = build_hierarchical_model(data, linear_surrogate, parameter_names=["k1", "k2"],
                                     prior_mean=np.zeros(2), prior_sd=np.ones(2))
    original = pmjax.get_jaxified_graph
    outputs = [model.logp()]
    with jitted_pymc_graphs():
        fn = pmjax.get_jaxified_graph(inputs=model.value_vars, outputs=outputs)
        assert hasattr(fn, "lower")  # a jax.jit-wrapped function: one XLA program
        point = model.initial_point(0)
        np.testing.assert_allclose(float(fn(*[point[v.name] for v in model.value_vars])[0]),
                                   float(model.compile_logp()(point)), rtol=1e-10)
    assert pmjax.get_jaxified_graph is original
    with pytest.raises(RuntimeError), jitted_pymc_graphs():
        raise RuntimeError("sampling failed")
    assert pmjax.get_jaxified_graph is original


def test_emulator_error_is_the_decoders_scale_shared_by_a_group_and_integrated_out():
    """With ``emulator_groups`` a group's exact values of an observable are jointly normal, covariance
    ``D + a aᵀ`` with ``a = √ρ s`` and ``D = diag((1 − ρ) s² + δ²)`` (s the surrogate's scale, ρ = ``emulator_share``):
    the model's log likelihood against scipy's multivariate normal group by group, with all weights and with some
    tests weighted out; a bound is conditioned on its group's exact values; ``emulator_error_mean`` and ``_sd`` are the
    posterior of the group's standard error; an observable known only by bounds carries no error."""
    from scipy import stats

    from risk.bayes.physics import emulator_groups

    data, _ = _data()
    groups = emulator_groups(np.round(data.conditions * 3) / 3, data.family, 0.1)  # thirds of c, per family
    assert 2 < groups.max() + 1 < len(groups)
    sign = np.zeros(data.observables.shape, np.int8)
    sign[:, 2] = np.where(np.arange(len(sign)) % 2, 1, -1)  # observable 2: signs only
    bound = next(i for i in range(len(groups))
                 if (groups == groups[i]).sum() > 2 and np.isfinite(data.observables[i, 1]))
    sign[bound, 1] = 1  # one lower bound of an observable with exact values, in a group with exact siblings
    kw = dict(parameter_names=["k1", "k2"], prior_mean=np.zeros(2), prior_sd=np.ones(2), censored=sign)
    model = build_hierarchical_model(data, linear_surrogate, emulator_groups=groups, **kw)
    rng = np.random.default_rng(4)
    point = model.initial_point()
    point["z_test"] = rng.standard_normal(point["z_test"].shape)
    point["emulator_share_logodds__"] = np.array(0.4)
    rho = 1 / (1 + np.exp(-0.4))
    tau, cell_sd = np.exp(point["tau_family_log__"]), np.exp(point["cell_sd_log__"])
    u = (point["a_pop"] + tau * point["z_family"])[data.family_index] + cell_sd * point["z_test"]
    mean = u @ A.T + 0.5 * data.conditions[:, :1]
    delta = np.exp(point["discrepancy_log__"])
    y = data.observables
    ok = np.isfinite(y) & (sign == 0)
    a, dvar = np.sqrt(rho) * NOISE, (1 - rho) * NOISE**2 + delta**2

    def expected(keep):  # joint log density of the kept tests' exact values, and e_g's posterior (mean, sd)
        logp, post = 0.0, np.zeros((groups.max() + 1, 2, 2))
        for g in range(groups.max() + 1):
            for j in (0, 1):
                idx = np.flatnonzero((groups == g) & ok[:, j] & keep)
                cov = np.diag(np.full(idx.size, dvar[j])) + a**2
                r = y[idx, j] - mean[idx, j]
                logp += stats.multivariate_normal(np.zeros(idx.size), cov).logpdf(r) if idx.size else 0.0
                inv = np.linalg.inv(cov) if idx.size else np.zeros((0, 0))
                post[g, j] = a * inv.sum(0) @ r, np.sqrt(1 - a**2 * inv.sum())
        return logp, post

    logp, post = expected(np.ones(len(y), bool))
    np.testing.assert_allclose(model.compile_logp(vars=[model["observables"]])(point), logp, rtol=1e-8)
    outs = model.replace_rvs_by_values([model["emulator_error_mean"], model["emulator_error_sd"]])
    got = model.compile_fn(outs, inputs=model.value_vars, on_unused_input="ignore")(point)
    np.testing.assert_allclose(got[0][:, :2], post[..., 0], rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(got[1][:, :2], post[..., 1], rtol=1e-8)
    np.testing.assert_allclose(got[1][:, 2], 1.0)  # the signs-only observable: no error, its prior
    # the bound given its group's exact values; the signs-only observable at the full scale
    m, sd = post[groups[bound], 1]
    expected_bound = stats.norm.logsf(y[bound, 1], mean[bound, 1] + a * m, np.sqrt(dvar[1] + a**2 * sd**2))
    signs_only = (sign[:, 2] != 0) & np.isfinite(y[:, 2])
    expected_bound += stats.norm.logsf(sign[signs_only, 2] * (y[signs_only, 2] - mean[signs_only, 2]), 0,
                                       np.sqrt(NOISE**2 + delta[2] ** 2)).sum()
    [censored_term] = model.replace_rvs_by_values([model["observables_censored"]])
    got_bound = model.compile_fn(censored_term, inputs=model.value_vars, on_unused_input="ignore")(point)
    np.testing.assert_allclose(got_bound, expected_bound, rtol=1e-8)
    # weights 0/1 (cross-validation folds): the joint density of the weight-1 tests
    weighted = build_hierarchical_model(data, linear_surrogate, emulator_groups=groups, weighted=True, **kw)
    keep = np.arange(len(y)) % 3 != 1
    weighted.set_data("test_weight", keep.astype(float))
    [term] = weighted.replace_rvs_by_values([weighted["observables"]])
    got_w = weighted.compile_fn(term, inputs=weighted.value_vars, on_unused_input="ignore")(point)
    np.testing.assert_allclose(got_w, expected(keep)[0], rtol=1e-8)
    with pytest.raises(ValueError, match="emulator_groups"):
        build_hierarchical_model(data, linear_surrogate, emulator_groups=groups[:-1], **kw)


@pytest.mark.parametrize("folds", [None, 2])
def test_family_logit_discrepancy_adds_a_family_offset_to_the_runaway_logit(folds):
    """η_i = s · g(u_i, c_i) + τ_η z_η,f(i) (``family_logit_scale``), in one model and in batched fold copies."""
    data, _ = _data()
    mask = None if folds is None else np.ones((folds, len(data.test)), bool)
    kw = dict(parameter_names=["k1", "k2"], prior_mean=np.zeros(2), prior_sd=np.ones(2), train_mask=mask)
    plain = build_hierarchical_model(data, linear_surrogate, **kw)
    model = build_hierarchical_model(data, linear_surrogate, family_logit_scale=1.0, **kw)
    assert {"family_logit_sd", "family_logit_mean", "z_family_logit"} <= {v.name for v in model.free_RVs}
    assert "family_logit_sd" not in {v.name for v in plain.free_RVs}
    point = model.initial_point()
    rng = np.random.default_rng(5)
    for name in point:
        point[name] = point[name] + 0.3 * rng.standard_normal(np.shape(point[name]))
    z = np.array([1.5, -0.5]) if folds is None else np.array([[1.5, -0.5], [0.2, 2.0]])
    point["z_family_logit"], point["family_logit_sd_log__"] = z, np.log(np.full(() if folds is None else folds, 0.7))
    point["family_logit_mean"] = np.full(() if folds is None else folds, -0.4)

    def logit(m, at):
        [out] = m.replace_rvs_by_values([m["logit_runaway"]])
        return m.compile_fn(out, inputs=m.value_vars, on_unused_input="ignore")(at)

    base = logit(plain, {k: v for k, v in point.items() if k in {v.name for v in plain.value_vars}})
    fam = data.family_index
    np.testing.assert_allclose(logit(model, point), base - 0.4 + 0.7 * z[..., fam], rtol=1e-10, atol=1e-12)
    # with a family covariate x the offsets' centre moves along it: m_η + β_η x_f
    cov = build_hierarchical_model(data, linear_surrogate, family_logit_scale=1.0, family_covariate=np.array([-0.5, 0.5]),
                                   **kw)
    at = cov.initial_point() | {k: point[k] for k in point if k in {v.name for v in cov.value_vars}}
    at["family_logit_slope"] = np.full(() if folds is None else folds, 1.2)
    shift = logit(cov, at) - logit(cov, at | {"family_logit_slope": np.zeros(() if folds is None else folds)})
    np.testing.assert_allclose(shift, 1.2 * np.array([-0.5, 0.5])[fam] * np.ones_like(shift), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("folds", [None, 2])
def test_family_link_scale_stretches_the_runaway_logit_about_the_family_reference(folds):
    """η_i = s · g_ref,i + s_f(i) · (g_i − g_ref,i), g_ref,i = g(μ_f(i), c_i at SOC_REF), s_f = s · exp(τ_λ z_λ,f)
    (``family_link_scale``), in one model and in batched fold copies; the family scales are recorded as
    ``family_link_scale (family)``."""
    from dataclasses import replace

    from risk.bayes.model import SOC_REF

    data, _ = _data()
    data = replace(data, condition_names=("soc",))
    mask = None if folds is None else np.ones((folds, len(data.test)), bool)
    kw = dict(parameter_names=["k1", "k2"], prior_mean=np.zeros(2), prior_sd=np.ones(2), train_mask=mask)
    plain = build_hierarchical_model(data, linear_surrogate, **kw)
    model = build_hierarchical_model(data, linear_surrogate, family_link_scale=0.5, **kw)
    assert {"family_link_sd", "z_family_link"} <= {v.name for v in model.free_RVs}
    assert "family_link_sd" not in {v.name for v in plain.free_RVs}
    point = model.initial_point()
    rng = np.random.default_rng(6)
    for name in point:
        point[name] = point[name] + 0.3 * rng.standard_normal(np.shape(point[name]))
    z = np.array([1.5, -0.5]) if folds is None else np.array([[1.5, -0.5], [0.2, 2.0]])
    tau = np.full(() if folds is None else folds, 0.7)
    point["z_family_link"], point["family_link_sd_log__"] = z, np.log(tau)

    def value(m, name, at):
        [out] = m.replace_rvs_by_values([m[name]])
        return m.compile_fn(out, inputs=m.value_vars, on_unused_input="ignore")(at)

    s = np.exp(point["link_scale_log__"])
    s_ = s[..., None] if folds else s
    g = value(plain, "logit_runaway", {k: v for k, v in point.items() if k in {v.name for v in plain.value_vars}}) / s_
    mu_f = value(model, "mu_family", point)  # (..., family, parameter)
    fam = data.family_index
    g_ref = 2.0 * mu_f[..., fam, 0] + 3.0 * SOC_REF - 1.0  # linear_surrogate at the family location, SOC_REF
    s_f = s_ * np.exp(0.7 * z)
    np.testing.assert_allclose(value(model, "family_link_scale", point), s_f, rtol=1e-10)
    np.testing.assert_allclose(value(model, "logit_runaway", point), s_ * g_ref + s_f[..., fam] * (g - g_ref),
                               rtol=1e-10, atol=1e-12)
