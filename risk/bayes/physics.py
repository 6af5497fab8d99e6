"""The calibrated physics model: fit on real tests, predict hazard levels of new cells and new tests.

One place assembles what the calibrate, crossvalidate and predict stages share:

- `physics_setup` — prior moments in the decoder's ``u`` space and the data-informed subspace
  (`risk.bayes.subspace`) of a set of real tests;
- `fit_physics` — `risk.bayes.model.build_hierarchical_model` sampled with NumPyro NUTS;
- `predict_levels` — hazard-level probabilities ``(n_draw, n_tests, 7)`` of new cells under given
  conditions: a known family at its posterior location, an unknown one drawn from the population over
  families, the cell drawn from the family's cell-to-cell distribution, the directions the data do
  not inform drawn from the prior (per draw, epistemic);
- `predict_observables` — the posterior predictive of a new test's observables (e.g. total heat) under the
  same new-cell draws, with the decoder's scale and the calibrated model discrepancy.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr
from scipy import special, stats

from risk.bayes.model import (FAMILY_LOGIT_NU, FAMILY_SCALE, CalibrationData, build_hierarchical_model, censor_sign,
                              design_region_u, prior_moments_u)
from risk.bayes.subspace import InformedSubspace, informed_subspace


#: the family-level predictor of the hierarchical model: log of the nominal capacity (larger cells feed
#: more current into the same short spot; the real data: ≤ 2 A h LCO pouches never ran away, 5–6.4 A h
#: cells did from 40 % SOC)
COVARIATE_CONDITION = "capacity_nominal"


@dataclass(frozen=True)
class PhysicsSetup:
    """Prior moments of ``u`` (``(n_param,)`` each), the data-informed subspace and the family covariate
    (``{"condition", "index", "centre", "direction"}``: x = log(condition) − centre, regressed along the
    unit ``direction`` ``(k,)`` of the subspace; or None); ``family_discrepancy``: half-t(3) scale of the
    family-level observable discrepancy [normalised] (`risk.bayes.model.build_hierarchical_model`), or None;
    ``design_bounds``: ``(lower, upper)`` ``(n_param,)`` each [u], the decoder's design region
    (`risk.bayes.model.design_region_u`), or None; ``centred``: ``{family: (k,) λ}``, how far each family
    location is sampled centred (λ in [0, 1], `centred_families`; a ``(k,)`` tuple: per direction, every family
    alike), or None (decided by `fit_physics`);
    ``emulator``: the tests and length scale of the correlated emulator error (`emulator_spec`), or None;
    ``family_scale``: HalfNormal scale of the between-family spread ``tau_family`` [u] (the study's
    ``inference.family_scale``; `risk.bayes.model.build_hierarchical_model`); ``family_logit``: HalfNormal scale of
    the family-level discrepancy of the runaway logit (the study's ``inference.family_logit_scale``), or None;
    ``family_link``: HalfNormal scale [log] of the family spread of the logit's sim-to-real scale (the study's
    ``inference.family_link_scale``), or None; ``condition_names``: the decoder's conditions (where `runaway_logits`
    finds the SOC of the reference point)."""

    prior_mean: np.ndarray
    prior_sd: np.ndarray
    subspace: InformedSubspace
    covariate: dict | None = None
    family_discrepancy: float | None = None
    design_bounds: tuple[np.ndarray, np.ndarray] | None = None
    centred: Mapping[str, tuple[bool, ...]] | tuple[bool, ...] | None = None
    emulator: dict | None = None
    family_scale: float = FAMILY_SCALE
    family_logit: float | None = None
    family_link: float | None = None
    condition_names: tuple[str, ...] = ()

    def attrs(self) -> dict[str, str]:
        """Posterior attrs that `predict_levels` and `risk.predict.scenarios` read back."""
        out = {"subspace": self.subspace.to_json(), "prior_mean": json.dumps(self.prior_mean.tolist()),
               "prior_sd": json.dumps(self.prior_sd.tolist()), "family_scale": json.dumps(float(self.family_scale))}
        if self.covariate is not None:
            out["family_covariate"] = json.dumps(self.covariate)
        if self.family_discrepancy is not None:
            out["family_discrepancy_scale"] = json.dumps(float(self.family_discrepancy))
        if self.design_bounds is not None:
            out["design_bounds"] = json.dumps([np.asarray(b, float).tolist() for b in self.design_bounds])
        if self.centred is not None:
            out["centred_families"] = json.dumps(centring_json(self.centred))
        if self.emulator is not None:
            out["emulator_error"] = json.dumps(self.emulator)
        if self.family_logit is not None:
            out["family_logit_scale"] = json.dumps(float(self.family_logit))
        if self.family_link is not None:
            out["family_link_scale"] = json.dumps(float(self.family_link))
        if self.condition_names:
            out["condition_names"] = json.dumps(list(self.condition_names))
        return out

    @classmethod
    def from_attrs(cls, attrs) -> "PhysicsSetup":
        """The setup a physics posterior was sampled with (its attrs, `attrs`)."""
        cov, fd, db = attrs.get("family_covariate"), attrs.get("family_discrepancy_scale"), attrs.get("design_bounds")
        cf, em = attrs.get("centred_families"), attrs.get("emulator_error")
        return cls(np.asarray(json.loads(attrs["prior_mean"]), float), np.asarray(json.loads(attrs["prior_sd"]), float),
                   InformedSubspace.from_json(attrs["subspace"]), None if cov is None else json.loads(cov),
                   None if fd is None else float(json.loads(fd)),
                   None if db is None else tuple(np.asarray(b, float) for b in json.loads(db)),
                   None if cf is None else centring_from_json(json.loads(cf)),
                   None if em is None else json.loads(em), float(json.loads(attrs.get("family_scale", str(FAMILY_SCALE)))),
                   None if attrs.get("family_logit_scale") is None else float(json.loads(attrs["family_logit_scale"])),
                   None if attrs.get("family_link_scale") is None else float(json.loads(attrs["family_link_scale"])),
                   tuple(json.loads(attrs.get("condition_names", "[]"))))

    def family_covariate(self, data: CalibrationData) -> np.ndarray | None:
        """``(n_families,)`` covariate of ``data.families``: log of the family's mean condition − centre."""
        if self.covariate is None:
            return None
        x = np.log(np.asarray(data.conditions, float)[:, self.covariate["index"]]) - self.covariate["centre"]
        fam = data.family_index
        return np.array([x[fam == f].mean() for f in range(len(data.families))])


def _covariate_spec(data: CalibrationData, direction: np.ndarray | None = None) -> dict | None:
    """The covariate of `PhysicsSetup` from the tests' conditions (centre: mean over families of the log
    family-mean capacity) and its unit ``direction`` ``(k,)`` (default: the first); None without that
    condition or with fewer than two families."""
    names = list(data.condition_names)
    if COVARIATE_CONDITION not in names or len(data.families) < 2:
        return None
    j = names.index(COVARIATE_CONDITION)
    logc = np.log(np.asarray(data.conditions, float)[:, j])
    fam = data.family_index
    centre = float(np.mean([logc[fam == f].mean() for f in range(len(data.families))]))
    spec = {"condition": COVARIATE_CONDITION, "index": j, "centre": centre}
    if direction is not None:
        spec["direction"] = [float(v) for v in direction]
    return spec


def runaway_direction(jax_apply, sub: InformedSubspace, conditions: np.ndarray) -> np.ndarray:
    """Unit vector ``(k,)`` of the subspace along which the decoder's runaway logit grows fastest at the
    anchor, averaged over the tests' conditions ``(n, n_cond)``: where family size moves a family."""
    import jax
    import jax.numpy as jnp

    W, u0, c = jnp.asarray(sub.basis), jnp.asarray(sub.anchor), jnp.asarray(conditions, dtype=float)

    def mean_logit(a):
        u = jnp.broadcast_to(u0 + W @ a, (c.shape[0], u0.shape[0]))
        return jax_apply(u, c)["logit_runaway"].mean()

    g = np.asarray(jax.grad(mean_logit)(jnp.zeros(W.shape[1])), dtype=float)
    norm = np.linalg.norm(g)
    if not np.isfinite(norm) or norm == 0:
        return np.eye(W.shape[1])[0]
    return g / norm


def physics_setup(decoder, data: CalibrationData, priors: Sequence, *, seed: int, max_dim: int = 3,
                  n_prior: int = 256, family_discrepancy: float | None = None,
                  emulator_length: float | None = None, family_scale: float = FAMILY_SCALE,
                  family_logit: float | None = None, family_link: float | None = None) -> PhysicsSetup:
    """Prior moments and informed subspace for ``data`` (its conditions, observed channels and which
    tests have an outcome — never the observed values or outcomes themselves); ``family_discrepancy`` is
    passed through (`PhysicsSetup`, the study's ``inference.family_discrepancy_scale``), ``emulator_length``
    (the study's ``inference.emulator_error_length``) gives the correlated emulator error over ``data``'s
    tests (`emulator_spec`), ``family_scale`` is the prior scale of the family spread and ``family_logit`` that of the runaway
    logit's family discrepancy and ``family_link`` that of the family spread of its scale (`PhysicsSetup`); the centring is left to `fit_physics`, which decides it from the data it fits."""
    import jax

    mean, sd = prior_moments_u(list(priors), decoder.to_unconstrained, seed=seed)
    bounds = design_region_u(list(priors), decoder.to_unconstrained, seed=seed)
    rng = np.random.default_rng(seed)
    theta = np.column_stack([p.sample(rng, n_prior) for p in priors])
    u = decoder.to_unconstrained(theta)
    has_outcome = np.zeros(len(data.test), bool)
    for x in (data.hazard_level, data.runaway):
        if x is not None:
            has_outcome |= np.isfinite(np.asarray(x, float))
    with jax.enable_x64(True):
        sub = informed_subspace(decoder.jax_apply, decoder.parameter_names, u, data.conditions,
                                np.isfinite(data.observables), has_outcome, anchor=mean, max_dim=max_dim)
        direction = runaway_direction(decoder.jax_apply, sub, data.conditions)
    emulator = None if emulator_length is None else emulator_spec(data, decoder.layout, emulator_length)
    return PhysicsSetup(mean, sd, sub, _covariate_spec(data, direction), family_discrepancy, bounds, emulator=emulator,
                        family_scale=family_scale, family_logit=family_logit, family_link=family_link,
                        condition_names=tuple(data.condition_names))


def emulator_spec(data: CalibrationData, layout, length: float) -> dict:
    """The shared emulator error's setup (`risk.bayes.model.build_hierarchical_model`, ``emulator_groups``): the
    tests (ids, families, conditions [SI]) and their ``group`` (`emulator_groups`), the decoder's z-scoring of the
    conditions (``loc``, ``scale``), the distance ``length`` [z-scored condition units] within which a family's tests
    share one error, and ``emulated``: per observable 1 where some test has an exact value (the others carry none)."""
    loc, scale = np.asarray(layout.condition_loc, float), np.asarray(layout.condition_scale, float)
    obs = np.asarray(data.observables, float)
    exact = np.isfinite(obs) & (censor_sign(data.censored, obs.shape) == 0)
    groups = emulator_groups((np.asarray(data.conditions, float) - loc) / scale, data.family, length)
    return {"length": float(length), "loc": loc.tolist(), "scale": scale.tolist(),
            "test": [str(t) for t in data.test], "family": [str(f) for f in data.family],
            "conditions": np.asarray(data.conditions, float).tolist(), "group": groups.tolist(),
            "emulated": exact.any(axis=0).astype(float).tolist()}


def emulator_groups(z: np.ndarray, families: Sequence[str], length: float) -> np.ndarray:
    """``(n,)`` 0-based group of each test: within a cell family, tests whose z-scored conditions ``z`` ``(n, n_cond)``
    are linked by steps shorter than ``length`` (single linkage) share one emulator error; across families never
    (their cells sit elsewhere in ``u``). On the databank, 0.5 groups the 90 tests as cell type × SOC × trigger
    (18 groups; the heaters' power and duration vary within 0.3)."""
    from scipy.cluster.hierarchy import fcluster, linkage

    families = np.asarray(families, str)
    out, n_groups = np.empty(len(families), int), 0
    for f in dict.fromkeys(families):
        rows = np.flatnonzero(families == f)
        lab = (fcluster(linkage(z[rows], "single"), t=length, criterion="distance") - 1 if rows.size > 1
               else np.zeros(1, int))
        out[rows] = n_groups + lab
        n_groups += int(lab.max()) + 1
    return out


def build_physics_model(data: CalibrationData, decoder, setup: PhysicsSetup, *, weighted: bool = False):
    """`build_hierarchical_model` with the decoder as surrogate, in ``setup``'s subspace (``weighted``: per-test
    likelihood weights, `risk.bayes.weighted`)."""
    return build_hierarchical_model(data, decoder.pytensor_apply, parameter_names=decoder.parameter_names,
                                    prior_mean=setup.prior_mean, prior_sd=setup.prior_sd, family_scale=setup.family_scale,
                                    basis=setup.subspace.basis, anchor=setup.subspace.anchor,
                                    family_covariate=setup.family_covariate(data),
                                    covariate_direction=(setup.covariate or {}).get("direction"),
                                    family_discrepancy_scale=setup.family_discrepancy,
                                    design_bounds=setup.design_bounds, centred_families=setup.centred,
                                    emulator_groups=_training_groups(setup, data),
                                    family_logit_scale=setup.family_logit, family_link_scale=setup.family_link,
                                    weighted=weighted)


def _training_groups(setup: PhysicsSetup, data: CalibrationData) -> np.ndarray | None:
    """The emulator-error groups of ``data``'s tests (None without ``setup.emulator``); the setup must have been
    made for these tests."""
    if setup.emulator is None:
        return None
    if list(setup.emulator["test"]) != [str(t) for t in data.test]:
        raise ValueError("the setup's emulator error was made for other tests than the data's")
    return np.asarray(setup.emulator["group"], int)


#: the range of the family spread τ, about ADVI's estimate τ̂ (divided by the first, times the second), over which
#: a family location's partial centring averages its shrinkage factor (`centred_families`). Wide below: the sampler
#: diverges in the lower tail of τ (on the default study with one simulation round at τ₃ ≈ 0.2 = τ̂₃ / 7 and τ₁ ≈
#: 0.01 = τ̂₁ / 10-17); with τ̂ / 10 one of three seeds kept a divergence at target_accept 0.99, with τ̂ / 30 none
#: (docs/benchmarks.md "Simulation rounds")
CENTRING_TAU_RANGE = (30.0, 3.0)
#: fewer families than this keep every family location non-centred (`centred_families`)
CENTRED_MIN_FAMILIES = 5


def centring_json(centred: Mapping[str, Sequence[float]] | Sequence[float]) -> dict | list:
    """``PhysicsSetup.centred`` as JSON-ready ``{family: [λ]}`` (or ``[λ]`` per direction), λ to 4 decimals."""
    if isinstance(centred, Mapping):
        return {str(f): [round(float(c), 4) for c in v] for f, v in centred.items()}
    return [round(float(c), 4) for c in centred]


def centring_from_json(value) -> dict[str, tuple[float, ...]] | tuple[float, ...]:
    """The inverse of `centring_json` (a posterior's ``centred_families`` attr, parsed; booleans read as 0 / 1)."""
    if isinstance(value, dict):
        return {str(f): tuple(float(c) for c in v) for f, v in value.items()}
    return tuple(float(c) for c in value)


def centred_families(params: dict, families: Sequence[str], tau_range: tuple[float, float] = CENTRING_TAU_RANGE,
                     min_families: int = CENTRED_MIN_FAMILIES) -> dict[str, tuple[float, ...]]:
    """How far to centre each family location, per family and subspace direction: ``{family: (k,) λ}``, λ in [0, 1]
    (`risk.bayes.model.build_hierarchical_model`: 0 non-centred, 1 centred). ``params``: the ADVI fit of the
    non-centred model (`risk.bayes.sampling.advi_fit`), ``families``: its families in model order ({} without
    ``z_family``; all 0 below ``min_families`` families).

    A group location the data pin down is sampled best centred, one they barely inform non-centred: for a normal
    location with data-only sd σ_f under a group scale τ, the partially centred parameterisation with weight
    κ = τ² / (τ² + σ_f²) makes it independent of τ (Papaspiliopoulos, Roberts & Sköld, Statist. Sci. 22 (2007) 59;
    Gorinova, Moore & Hoffman, ICML 2020, "VIP"). τ is not known before sampling, so λ is κ averaged over log τ in
    [τ̂ / r₁, τ̂ r₂] (`CENTRING_TAU_RANGE`; closed form ½ ln((τ_hi² + σ_f²) / (τ_lo² + σ_f²)) / ln(τ_hi / τ_lo)):
    the conditional sd of ``z_family`` is then about equal at both ends, where a binary choice leaves a funnel neck
    at small τ (centred) or a ridge at large τ (non-centred). σ_f comes from the non-centred ADVI fit,
    σ_f² = τ̂² s² / (1 − s²) with s the ADVI sd of ``z_family`` (∞ for s ≥ 1: data that do not inform the location),
    and is stable where ADVI's τ̂ is not: mean-field ADVI understates a group scale, and on the default study with
    one simulation round τ̂ along the first direction was 0.10 or 0.17 under two seeds of the same model (its NUTS
    posterior: mean 0.27, 5 % quantile 0.07) while σ_f of every family agreed within 3 %. The rule before (centred
    where s < 0.3) flipped four families with τ̂, and the sampler then met the funnel neck at τ ≈ 0.01 or the ridge
    at large τ (1–7 divergences; docs/benchmarks.md "Simulation rounds").

    With few families the between-family scale τ is barely identified (Gelman, Bayesian Analysis 1 (2006) 515) and a
    centred location opens a funnel as τ → 0: the quick study's leave-family-out folds (3 training families,
    d1 centred) had 36 divergences; hence non-centred below `CENTRED_MIN_FAMILIES`.
    """
    if "z_family_auto_scale" not in params:
        return {}
    s = np.asarray(params["z_family_auto_scale"], float)
    s = s.reshape(-1, s.shape[-1])
    if s.shape[0] != len(families):
        raise ValueError(f"ADVI fit has {s.shape[0]} family locations, expected {len(families)} families")
    if s.shape[0] < min_families:
        return {str(f): (0.0,) * s.shape[1] for f in families}
    tau = np.exp(np.asarray(params["tau_family_log___auto_loc"], float)).reshape(-1)
    lo, hi = tau / tau_range[0], tau * tau_range[1]
    with np.errstate(divide="ignore"):
        var_f = np.where(s < 1, tau**2 * s**2 / np.maximum(1 - s**2, 1e-300), np.inf)  # (F, k)
    lam = np.where(np.isfinite(var_f), 0.5 * np.log((hi**2 + var_f) / (lo**2 + var_f)) / np.log(hi / lo), 0.0)
    return {str(f): tuple(float(np.clip(v, 0.0, 1.0)) for v in row) for f, row in zip(families, lam)}


def fit_physics(data: CalibrationData, decoder, setup: PhysicsSetup, *, seed: int, draws: int, tune: int,
                chains: int = 4, target_accept: float = 0.9, **sample_kw):
    """Sample the physics model (`risk.bayes.sampling.sample`, chains started from ADVI draws:
    `risk.bayes.sampling.advi_initial_points`, warm-up from ADVI's scales: `risk.bayes.sampling.advi_inverse_mass`);
    returns ``(tree, diagnostics)``.

    Without ``setup.centred`` the ADVI fit of the non-centred model first decides which family locations to
    sample centred (`centred_families`); the model is then rebuilt and ADVI rerun if any is.
    The tree's attrs carry ``setup.attrs()`` (subspace, prior moments, centring) for prediction and
    ``observed_entry_observable`` (JSON list: the observable index of each ``observed_entry``).
    """
    from dataclasses import replace

    from risk.bayes.sampling import advi_fit, advi_initial_points, advi_inverse_mass, sample

    model = build_physics_model(data, decoder, setup)
    fit = advi_fit(model, seed=seed)
    if setup.centred is None:
        setup = replace(setup, centred=centred_families(fit[1], data.families) or None)
        if setup.centred is not None and any(any(c) for c in setup.centred.values()):  # any λ > 0
            model = build_physics_model(data, decoder, setup)
            fit = advi_fit(model, seed=seed)
    init = advi_initial_points(model, chains, seed=seed, fit=fit)
    nuts = {"inverse_mass_matrix": advi_inverse_mass(model, fit)} | (sample_kw.pop("nuts_kwargs", None) or {})
    return sample(model, seed=seed, draws=draws, tune=tune, chains=chains, target_accept=target_accept,
                  attrs=setup.attrs() | {"observed_entry_observable": json.dumps(model.observed_index[1].tolist())},
                  initvals=init, nuts_kwargs=nuts, **sample_kw)


def _draws(post: xr.Dataset, var: str) -> np.ndarray:
    da = post[var]
    return np.asarray(da.stack(sample=("chain", "draw")).transpose("sample", ...).values)


def _new_cells(tree: xr.DataTree, families: Sequence[str], conditions: np.ndarray, *, rng: np.random.Generator,
               n_cells: int, max_draws: int | None, with_location: bool = False):
    """Physical parameters ``u`` ``(S, n_tests, n_cells, n_param)`` of new cells, one set per retained
    posterior draw, and the retained draw indices ``(S,)`` into the stacked (chain, draw) samples
    (``(u, keep, posterior)``; with ``with_location`` also each test's family location ``(S, n_tests, n_param)``,
    the reference point of `runaway_logits`).

    A known family sits at its posterior location; an unseen one is drawn once per draw from the population
    over families (at each test's capacity when the posterior has a family covariate); the cell is drawn
    from the cell-to-cell distribution; the directions the data do not inform stay at the anchor, as in the fit
    (`risk.bayes.subspace`). A cell beyond
    the decoder's design region (`PhysicsSetup.design_bounds`) is evaluated on its boundary.
    """
    from risk.predict.scenarios import clip_to_design, family_slope_draws, population_shift

    post = tree["posterior"].to_dataset()
    total = post.sizes["chain"] * post.sizes["draw"]
    keep = np.arange(total) if max_draws is None or total <= max_draws else \
        np.linspace(0, total - 1, max_draws).astype(int)
    mu_f, mu_pop = _draws(post, "mu_family")[keep], _draws(post, "mu_pop")[keep]
    chol, fam_chol = _draws(post, "cell_chol")[keep], _draws(post, "family_chol")[keep]
    slope = family_slope_draws(tree)[keep]
    known = [str(f) for f in post["family"].values]
    S, P, k = chol.shape
    conditions = np.asarray(conditions, float)
    n = conditions.shape[0]
    shift = population_shift(tree, slope, conditions)  # (S, n, P): where a new family of each test's size sits
    new_family_loc = {}
    loc = np.empty((S, n, P))
    for i, f in enumerate(families):
        if f in known:
            loc[:, i] = mu_f[:, known.index(f)]
        else:  # one location per unseen family and draw, shared by its tests, shifted by each test's size
            if f not in new_family_loc:
                new_family_loc[f] = mu_pop + np.einsum("spq,sq->sp", fam_chol, rng.standard_normal((S, k)))
            loc[:, i] = new_family_loc[f] + shift[:, i]
    z = rng.standard_normal((S, n, n_cells, k))
    u = loc[:, :, None, :] + np.einsum("spq,sncq->sncp", chol, z)
    if with_location:
        return clip_to_design(tree, u), keep, post, clip_to_design(tree, loc)
    return clip_to_design(tree, u), keep, post


def predict_levels(tree: xr.DataTree, logit_fn, families: Sequence[str], conditions: np.ndarray, *, seed: int,
                   n_cells: int = 32, max_draws: int | None = 1000) -> np.ndarray:
    """Hazard-level probabilities of a new cell per test: ``(n_draw, n_tests, 7)`` [1].

    Parameters
    ----------
    tree : posterior of the physics model, attrs from `PhysicsSetup`.
    logit_fn : ``(u (..., n_param), c (..., n_cond)) -> decoder logit (...)``.
    families : ``(n_tests,)`` cell family of each test; one not in the posterior's ``family`` coord is a
        new family (population over families, at the test's capacity when the posterior has a family
        covariate: `risk.predict.scenarios.population_shift`).
    conditions : ``(n_tests, n_cond)`` decoder conditions [SI].
    n_cells : new cells per draw and test (cell-to-cell variation, averaged).
    """
    rng = np.random.default_rng(seed)
    conditions = np.asarray(conditions, float)
    u, keep, post, loc = _new_cells(tree, families, conditions, rng=rng, n_cells=n_cells, max_draws=max_draws,
                                    with_location=True)
    cut = _draws(post, "cutpoints")[keep]
    c = np.broadcast_to(conditions[None, :, None, :], (*u.shape[:3], conditions.shape[1]))
    eta = runaway_logits(tree, keep, families, conditions, np.asarray(logit_fn(u, c), dtype=float), loc, logit_fn,
                         rng)  # (S, n, cells)
    cdf = special.expit(cut[:, None, None, :] - eta[..., None])  # P(level ≤ j), j = 1..6
    cdf = np.concatenate([np.zeros((*cdf.shape[:-1], 1)), cdf, np.ones((*cdf.shape[:-1], 1))], axis=-1)
    return np.diff(cdf, axis=-1).mean(axis=2)  # (S, n, 7)


def predict_levels_given_observables(tree: xr.DataTree, apply_fn, families: Sequence[str], conditions: np.ndarray,
                                     observables: np.ndarray, censored: np.ndarray, *, seed: int, n_cells: int = 64,
                                     max_draws: int | None = 1000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hazard-level probabilities of new tests *given their measured observables*: the calibrated model's new
    cell (`predict_levels`) updated by the test's own likelihood.

    Each retained posterior draw s proposes ``n_cells`` new cells u_sc of the test's family; each is weighted by
    the calibration likelihood of the test's observables, ``Normal(mean + b_f, sqrt(exp(2 log_scale) + δ²))``
    (``P(Y > y)`` for lower and ``P(Y < y)`` for upper bounds; `risk.bayes.model`), i.e. likelihood weighting of the posterior
    predictive — exact as ``n_cells`` grows.

    Parameters
    ----------
    apply_fn : ``(u (..., n_param), c (..., n_cond)) -> dict(mean, log_scale (..., n_obs), logit_runaway (...))``.
    observables : ``(n_tests, n_obs)`` normalised, NaN where not measured; censored : same shape, signs
    (`risk.bayes.model.censor_sign`).

    Returns
    -------
    p_level : ``(S, n_tests, 7)`` per draw, given the observables; weight : ``(S, n_tests)`` posterior weight of
    each draw given the observables (sums to 1 per test); ess : ``(n_tests,)`` effective sample size of the
    ``S · n_cells`` likelihood weights.
    """
    rng = np.random.default_rng(seed)
    conditions = np.asarray(conditions, float)
    u, keep, post, loc = _new_cells(tree, families, conditions, rng=rng, n_cells=n_cells, max_draws=max_draws,
                                    with_location=True)
    c = np.broadcast_to(conditions[None, :, None, :], (*u.shape[:3], conditions.shape[1]))
    out = apply_fn(u, c)
    mean, log_scale, g = (np.asarray(out[k], float) for k in ("mean", "log_scale", "logit_runaway"))
    mean, sd = _predictive_normal(tree, post, keep, families, conditions, mean, log_scale, rng)
    y = np.asarray(observables, float)[None, :, None, :]
    z = (np.nan_to_num(y) - mean) / sd
    sign = censor_sign(censored, np.shape(observables))[None, :, None, :]
    exact = np.isfinite(y) & (sign == 0)
    bound = np.isfinite(y) & (sign != 0)
    loglik = (np.where(exact, stats.norm.logpdf(z) - np.log(sd), 0.0)
              + np.where(bound, stats.norm.logsf(sign * z), 0.0)).sum(-1)  # (S, n, cells)
    w = np.exp(loglik - loglik.max(axis=(0, 2), keepdims=True))
    w = w / w.sum(axis=(0, 2), keepdims=True)
    ess = 1.0 / (w**2).sum(axis=(0, 2))
    cut = _draws(post, "cutpoints")[keep]
    eta = runaway_logits(tree, keep, families, conditions, g, loc,
                         lambda uu, cc: np.asarray(apply_fn(uu, cc)["logit_runaway"], float), rng)  # (S, n, cells)
    cdf = special.expit(cut[:, None, None, :] - eta[..., None])
    cdf = np.concatenate([np.zeros((*cdf.shape[:-1], 1)), cdf, np.ones((*cdf.shape[:-1], 1))], axis=-1)
    p_cell = np.diff(cdf, axis=-1)  # (S, n, cells, 7)
    weight = w.sum(-1)  # (S, n)
    p_level = (w[..., None] * p_cell).sum(2) / np.maximum(weight, 1e-300)[..., None]
    return p_level, weight, ess


def predict_p_tr(tree: xr.DataTree, logit_fn, families: Sequence[str], conditions: np.ndarray, *, seed: int,
                 n_cells: int = 32, max_draws: int | None = 1000) -> np.ndarray:
    """P(TR) of a new cell per test ``(n_draw, n_tests)`` [1]: expit(link_scale · decoder logit) averaged over
    new cells drawn as in `predict_levels` — its P(level ≥ 6) (the cutpoint c_5 ≡ 0), and defined for a
    posterior calibrated on runaway outcomes only (no cutpoints)."""
    rng = np.random.default_rng(seed)
    conditions = np.asarray(conditions, float)
    u, keep, post, loc = _new_cells(tree, families, conditions, rng=rng, n_cells=n_cells, max_draws=max_draws,
                                    with_location=True)
    c = np.broadcast_to(conditions[None, :, None, :], (*u.shape[:3], conditions.shape[1]))
    eta = runaway_logits(tree, keep, families, conditions, np.asarray(logit_fn(u, c), dtype=float), loc, logit_fn,
                         rng)
    return special.expit(eta).mean(axis=2)


def predict_observables(tree: xr.DataTree, observable_fn, families: Sequence[str], conditions: np.ndarray, *,
                        seed: int, n_cells: int = 8, max_draws: int | None = 1000) -> np.ndarray:
    """Posterior predictive of the normalised observables of a new test per row:
    ``(n_draw · n_cells, n_tests, n_obs)`` [normalised, ``decoder.layout.denormalise`` gives SI].

    Each draw: a new cell (as `predict_levels`), the decoder's mean and its aleatory scale, plus the
    model discrepancy ``δ`` of the calibration likelihood — ``y ~ Normal(mean + b_f, sqrt(exp(2 log_scale) + δ²))``
    (`risk.bayes.model`), so the spread is what a new test of that cell family would show. ``b_f`` is the
    family-level discrepancy when the model has one: a known family's posterior offset, for an unseen family
    one draw ``τ_b · N(0, 1)`` per posterior draw, shared by that family's tests.

    observable_fn : ``(u (..., n_param), c (..., n_cond)) -> (mean (..., n_obs), log_scale (..., n_obs))``.
    """
    rng = np.random.default_rng(seed)
    conditions = np.asarray(conditions, float)
    u, keep, post = _new_cells(tree, families, conditions, rng=rng, n_cells=n_cells, max_draws=max_draws)
    c = np.broadcast_to(conditions[None, :, None, :], (*u.shape[:3], conditions.shape[1]))
    mean, log_scale = (np.asarray(x, float) for x in observable_fn(u, c))  # (S, n, cells, n_obs)
    mean, sd = _predictive_normal(tree, post, keep, families, conditions, mean, log_scale, rng)
    y = mean + sd * rng.standard_normal(mean.shape)
    return np.moveaxis(y, 2, 1).reshape(-1, conditions.shape[0], mean.shape[-1])


def _predictive_normal(tree: xr.DataTree, post: xr.Dataset, keep: np.ndarray, families: Sequence[str],
                       conditions: np.ndarray, mean: np.ndarray, log_scale: np.ndarray,
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sd of a new test's normalised observables given its cell: the decoder's ``mean`` and ``log_scale``
    ``(S, n, cells, n_obs)`` plus the family offset (`_family_offsets`), the emulator error where the model has it
    (`_emulator_errors`: then the decoder's scale is carried by that error, not by the sd) and the discrepancy δ —
    the calibration likelihood of `risk.bayes.model.build_hierarchical_model`. Returns two ``(S, n, cells, n_obs)``."""
    delta = _draws(post, "discrepancy")[keep] if "discrepancy" in post else np.zeros((keep.size, mean.shape[-1]))
    if "family_offset" in post:
        mean = mean + _family_offsets(post, keep, families, rng)[:, :, None, :]
    var = np.exp(2 * log_scale)
    em = _emulator_errors(tree, post, keep, families, conditions, rng)
    if em is not None:
        e, share = em
        mean = mean + np.exp(log_scale) * e[:, :, None, :]
        var = var * (1.0 - share[:, None, None, :])
    return mean, np.sqrt(var + delta[:, None, None, :] ** 2)


def _emulator_errors(tree: xr.DataTree, post: xr.Dataset, keep: np.ndarray, families: Sequence[str],
                     conditions: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray] | None:
    """Draws of the shared emulator error ``√ρ e`` ``(S, n, n_obs)`` [decoder scales] at new tests, one per retained
    posterior draw, and the share ``ρ`` of the decoder's variance it carries ``(S, n_obs)`` (0 on observables without
    it); None when the model has none.

    A new test within the spec's ``length`` of a fitted test of its family (the nearest one) shares that test's
    group's posterior error: a new replicate of a tested condition inherits what its replicates showed. Any other
    test — an untested condition, a family without fitted tests — gets a fresh ``Normal(0, 1)`` error per draw,
    shared by the new tests that fall within ``length`` of one another (`emulator_groups`). A fitted group's error is
    drawn from its conditional posterior given each draw's other variables (``emulator_error_mean``, ``_sd``: the
    model integrates the error out, `risk.bayes.model._emulator_marginal`)."""
    if "emulator_error_mean" not in post or "emulator_error" not in tree.attrs:
        return None
    spec = json.loads(tree.attrs["emulator_error"])
    emulated = np.asarray(spec["emulated"], float)
    g_mean = _draws(post, "emulator_error_mean")[keep]  # (S, G, o)
    g = g_mean + _draws(post, "emulator_error_sd")[keep] * rng.standard_normal(g_mean.shape)
    loc, scale = np.asarray(spec["loc"], float), np.asarray(spec["scale"], float)
    row = {t: i for i, t in enumerate(spec["test"])}
    fitted = np.array([row[str(t)] for t in post["test"].values], int)  # tests the fit saw (kept in the tree)
    fit_fam = np.asarray(spec["family"], str)[fitted]
    fit_z = (np.asarray(spec["conditions"], float)[fitted] - loc) / scale
    fit_group = np.asarray(spec["group"], int)[fitted]
    families = np.asarray(families, str)
    z = (np.asarray(conditions, float) - loc) / scale
    new_group = emulator_groups(z, families, spec["length"])
    fresh = {k: rng.standard_normal((keep.size, g.shape[-1])) for k in np.unique(new_group)}
    out = np.empty((keep.size, len(families), g.shape[-1]))
    for i, f in enumerate(families):
        same = np.flatnonzero(fit_fam == f)
        d = np.linalg.norm(fit_z[same] - z[i], axis=1) if same.size else np.empty(0)
        out[:, i] = g[:, fit_group[same[np.argmin(d)]]] if d.size and d.min() <= spec["length"] else \
            fresh[new_group[i]]
    share = _draws(post, "emulator_share")[keep] if "emulator_share" in post else np.ones(keep.size)
    return np.sqrt(share)[:, None, None] * out * emulated, share[:, None] * emulated


def runaway_logits(tree: xr.DataTree, keep: np.ndarray, families: Sequence[str], conditions: np.ndarray,
                   g: np.ndarray, location: np.ndarray, logit_fn, rng: np.random.Generator,
                   draws: np.ndarray | None = None) -> np.ndarray:
    """The calibrated runaway logit ``η`` ``(S', n, cells)`` of new cells from the decoder's logit ``g`` ``(S', n,
    cells)`` (`risk.bayes.model.build_hierarchical_model`): ``s_f g + o_f`` with the family's sim-to-real scale
    (`link_scales`) and logit offset (`family_logit_offsets`); with per-family scales about the family's reference
    point, ``s g_ref + s_f (g − g_ref) + o_f`` where ``g_ref = logit_fn(location, conditions at SOC_REF)`` and
    ``location`` ``(S', n, n_param)`` is each test's family location per draw.

    ``keep`` ``(S,)``: the retained draws of the stacked samples; ``draws`` ``(S',)``: which of them each row of ``g``
    belongs to (default: all, in order); ``conditions`` ``(n, n_cond)`` [SI]."""
    rows = np.arange(len(keep)) if draws is None else np.asarray(draws, int)
    scale = link_scales(tree, keep, families, rng)[rows]  # (S', n)
    offset = family_logit_offsets(tree, keep, families, conditions, rng)[rows]
    shift = reference_shift(tree, keep[rows], scale, location, conditions, logit_fn)
    return scale[..., None] * g + (offset + shift)[..., None]


def reference_shift(tree: xr.DataTree, keep: np.ndarray, scale: np.ndarray, location: np.ndarray,
                    conditions: np.ndarray, logit_fn) -> np.ndarray:
    """``(S, n)`` the part of the runaway logit that per-family scales leave at the study-wide scale:
    ``(s − s_f) · g_ref`` with ``g_ref = logit_fn(location, conditions at SOC_REF)`` (`risk.bayes.model`,
    ``family_link_scale``), so that ``η = s_f · g + o_f + this``; zeros for a posterior without family scales.
    ``keep`` ``(S,)`` the draws (indices of the stacked samples), ``scale`` ``(S, n)`` the families' scales
    (`link_scales`), ``location`` ``(S, n, n_param)`` the family locations, ``conditions`` ``(n, n_cond)`` [SI]."""
    from risk.bayes.model import reference_conditions

    if "family_link_scale" not in tree["posterior"]:
        return np.zeros(np.shape(scale))
    names = json.loads(tree.attrs.get("condition_names", "[]"))
    c_ref = reference_conditions(np.asarray(conditions, float).reshape(np.shape(scale)[1], -1), names)
    g_ref = np.asarray(logit_fn(location, np.broadcast_to(c_ref, (*location.shape[:2], c_ref.shape[1]))), float)
    s = _draws(tree["posterior"], "link_scale")[np.asarray(keep, int)]
    return (s[:, None] - scale) * g_ref


def link_scales(tree: xr.DataTree, keep: np.ndarray, families: Sequence[str], rng: np.random.Generator) -> np.ndarray:
    """``(S, n)`` sim-to-real scale of the runaway logit (`risk.bayes.model`: ``link_scale``, per family with
    ``family_link_scale``) for the retained draws ``keep`` ``(S,)`` and each of ``families`` ``(n,)``: a known
    family's posterior ``family_link_scale``, an unseen family's draw ``s · exp(τ_λ N(0, 1))`` (one per family and
    draw); ``link_scale`` for every family in a posterior without family scales, ones without a link."""
    post = tree["posterior"]
    keep = np.asarray(keep, int)
    if "link_scale" not in post:
        return np.ones((keep.size, len(families)))
    s = _draws(post, "link_scale")[keep]  # (S,)
    if "family_link_scale" not in post:
        return np.repeat(s[:, None], len(families), axis=1)
    s_f, tau = _draws(post, "family_link_scale")[keep], _draws(post, "family_link_sd")[keep]  # (S, F), (S,)
    known = [str(f) for f in post["family"].values]
    z: dict[str, np.ndarray] = {}
    out = np.empty((keep.size, len(families)))
    for i, f in enumerate(map(str, families)):
        out[:, i] = s_f[:, known.index(f)] if f in known else s * np.exp(tau * z.setdefault(
            f, rng.standard_normal(keep.size)))
    return out


def family_logit_offsets(tree: xr.DataTree, keep: np.ndarray, families: Sequence[str], conditions: np.ndarray,
                         rng: np.random.Generator) -> np.ndarray:
    """``(S, n)`` family discrepancy of the runaway logit (`risk.bayes.model`, ``family_logit_scale``) for the
    retained draws ``keep`` ``(S,)`` of the stacked (chain, draw) samples and each of ``families`` ``(n,)`` under
    ``conditions`` ``(n, n_cond)`` [SI]: a known family's posterior ``family_logit_offset``, an unseen family's draw
    ``m_η + β_η x + τ_η t`` with x its cell's covariate (`risk.predict.scenarios.population_shift`) and one Student-t
    deviate (``FAMILY_LOGIT_NU``) per family and draw; zeros for a posterior without the term."""
    post = tree["posterior"]
    keep = np.asarray(keep, int)
    out = np.zeros((keep.size, len(families)))
    if "family_logit_offset" not in post:
        return out
    off, sd = _draws(post, "family_logit_offset")[keep], _draws(post, "family_logit_sd")[keep]  # (S, F), (S,)
    centre = _draws(post, "family_logit_mean")[keep] if "family_logit_mean" in post else np.zeros(keep.size)
    spec = json.loads(tree.attrs.get("family_covariate", "null"))
    slope = _draws(post, "family_logit_slope")[keep] if "family_logit_slope" in post and spec else None
    conditions = np.asarray(conditions, float).reshape(len(families), -1)
    known = [str(f) for f in post["family"].values]
    z: dict[str, np.ndarray] = {}
    for i, f in enumerate(map(str, families)):
        if f in known:
            out[:, i] = off[:, known.index(f)]
            continue
        x = 0.0 if slope is None else np.log(conditions[i, spec["index"]]) - spec["centre"]
        out[:, i] = centre + (0.0 if slope is None else slope * x) + sd * z.setdefault(f, rng.standard_t(FAMILY_LOGIT_NU, keep.size))
    return out


def _family_offsets(post: xr.Dataset, keep: np.ndarray, families: Sequence[str],
                    rng: np.random.Generator) -> np.ndarray:
    """Family-level observable discrepancy ``(S, n_tests, n_obs)`` per retained draw: a known family's
    posterior ``family_offset``, an unseen family's draw from ``N(family_discrepancy_mean, family_discrepancy²)``
    (one per family and draw)."""
    known = [str(f) for f in post["family"].values]
    offset, tau = _draws(post, "family_offset")[keep], _draws(post, "family_discrepancy")[keep]  # (S, F, o), (S, o)
    bias = _draws(post, "family_discrepancy_mean")[keep] if "family_discrepancy_mean" in post else np.zeros_like(tau)
    has = np.abs(offset).max(axis=(0, 1)) > 0  # observables without a family offset (risk.bayes.model)
    tau, bias = tau * has, bias * has
    new: dict[str, np.ndarray] = {}
    out = np.empty((keep.size, len(families), tau.shape[-1]))
    for i, f in enumerate(families):
        if f in known:
            out[:, i] = offset[:, known.index(f)]
        else:
            if f not in new:
                new[f] = bias + tau * rng.standard_normal(tau.shape)
            out[:, i] = new[f]
    return out


def sample_tests(tree: xr.DataTree, apply_fn, family: str, conditions: np.ndarray, n: int, *,
                 seed: int) -> dict[str, np.ndarray]:
    """Synthetic tests of new cells of ``family`` under ``conditions`` ``(n_cond,)`` [SI]: the calibrated model
    as a stochastic simulator (what-if studies).

    Each test is one posterior draw (epistemic) and one new cell of the family (cell-to-cell), as in
    `predict_levels`; its observables are drawn as in `predict_observables` and its outcome from the same
    cell's runaway logit — the ordinal hazard level when the posterior has cutpoints (TR ≡ level ≥ 6), else
    the runaway flag — so observables and outcome are jointly distributed.

    apply_fn : ``(u (m, n_param), c (m, n_cond)) -> {"mean", "log_scale" (m, n_obs), "logit_runaway" (m,)}``.
    Returns ``{"observables" (n, n_obs) [normalised], "hazard_level" (n,) 1–7 or NaN, "runaway" (n,) 0/1,
    "draw" (n,)}``.
    """
    rng = np.random.default_rng(seed)
    conditions = np.asarray(conditions, float)[None, :]
    total = tree["posterior"].sizes["chain"] * tree["posterior"].sizes["draw"]
    n_cells = max(1, int(np.ceil(n / total)))
    u, keep, post, loc = _new_cells(tree, [family], conditions, rng=rng, n_cells=n_cells, max_draws=None,
                                    with_location=True)
    S = keep.size
    pick = rng.choice(S * n_cells, size=n, replace=False)
    d, cell = pick // n_cells, pick % n_cells
    uu = u[d, 0, cell]  # (n, P)
    out = apply_fn(uu, np.repeat(conditions, n, axis=0))
    mean, log_scale = np.asarray(out["mean"], float), np.asarray(out["log_scale"], float)
    delta = _draws(post, "discrepancy")[keep][d] if "discrepancy" in post else np.zeros_like(mean)
    if "family_offset" in post:
        mean = mean + _family_offsets(post, keep, [family], rng)[d, 0]
    var = np.exp(2 * log_scale)
    em = _emulator_errors(tree, post, keep, [family], conditions, rng)
    if em is not None:  # one error per posterior draw at these conditions (as `_predictive_normal`)
        mean, var = mean + np.exp(log_scale) * em[0][d, 0], var * (1.0 - em[1][d])
    y = mean + np.sqrt(var + delta ** 2) * rng.standard_normal(mean.shape)
    logit_fn = lambda uu, cc: np.asarray(apply_fn(uu, cc)["logit_runaway"], float)  # noqa: E731
    eta = runaway_logits(tree, keep, [family], conditions, np.asarray(out["logit_runaway"], float)[:, None, None], loc[d], logit_fn, rng, draws=d)[:, 0, 0]
    if "cutpoints" in post:
        cut = _draws(post, "cutpoints")[keep][d]  # (n, 6): P(level ≤ j) = expit(c_j − η)
        level = 1 + (rng.random(n)[:, None] > special.expit(cut - eta[:, None])).sum(axis=1)
        runaway = (level >= 6).astype(float)
        level = level.astype(float)
    else:
        runaway = (rng.random(n) < special.expit(eta)).astype(float)
        level = np.full(n, np.nan)
    return {"observables": y, "hazard_level": level, "runaway": runaway, "draw": keep[d]}


def p_tr_from_levels(p_level: np.ndarray, tr_level: int = 6) -> np.ndarray:
    """P(level ≥ ``tr_level``) from ``(..., 7)`` level probabilities."""
    return np.asarray(p_level)[..., tr_level - 1:].sum(axis=-1)

