"""P(TR | scenario) for a NEW cell, split into aleatory and epistemic parts (→ ``predictions.nc``).

For each posterior draw s and scenario k (cell family × SOC × severity) new cells are drawn from the
family's population (``u = μ_f^s + L^s z``, z ~ N(0, I)); an unseen family first draws its location
from the population over families (``μ_f = μ_pop^s + τ^s z_f``). Per cell the surrogate gives
``p = sigmoid(logit_runaway(u, c_k))``. Then, by the law of total variance over (draw, cell),

    P_k^s            = E_cell[p]               (``p_tr_draws``; one P(TR) per posterior draw)
    p_tr_mean        = E_post[P_k^s]
    p_tr_var_aleatory  = E_post[Var_cell p]    (cell-to-cell)
    p_tr_var_epistemic = Var_post[E_cell p]    (limited data)

with 5/50/95 % credible bounds as quantiles of ``P_k^s`` over draws, and "1 in N" = 1 / p_tr_mean.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr
from scipy import special

from risk.bayes.data import BREACH_MARGIN
from risk.bayes.sampling import stack_draws


@dataclass(frozen=True)
class Scenario:
    """One prediction scenario; ``conditions`` is the decoder's condition vector ``(n_cond,)``."""

    name: str
    cell_family: str
    soc: float
    severity: str | float
    conditions: Sequence[float] = field(default_factory=tuple)


def one_in_n(p: float) -> str:
    """``0.0012 → "1 in 830"`` (N rounded to 2 significant figures); ``0 → "< 1 in 1e+15"``."""
    if not p > 0:
        return "< 1 in 1e+15"
    n = 1.0 / p
    n = float(f"{n:.2g}")
    return f"1 in {n:,.0f}" if n < 1e7 else f"1 in {n:.1e}"


def new_cell_p_tr(tree: xr.DataTree, logit_fn: Callable[[np.ndarray, np.ndarray], np.ndarray],
                  scenarios: Sequence[Scenario], *, n_cells: int = 200, seed: int,
                  max_draws: int | None = None) -> np.ndarray:
    """Per-cell P(TR) for new cells of each scenario: array ``(n_scenario, n_draw, n_cells)`` [1].

    Parameters
    ----------
    tree : posterior of `risk.bayes.model.build_hierarchical_model` (``mu_family``, ``mu_pop``,
        ``cell_chol``, ``family_chol`` (or ``tau_family``); family coord ``family``). When its attrs
        hold a ``subspace`` (`risk.bayes.subspace.InformedSubspace`), the directions the real tests do not
        inform stay at its anchor, as in the fit (their effect is carried by the fitted family terms).
    logit_fn : ``logit_fn(u (..., n_param), c (..., n_cond)) -> logit_runaway (...)`` in NumPy/JAX
        (e.g. `FrozenDecoder.jax_apply(...)["logit_runaway"]`); each draw's link (`link_draws`; the family's scale,
        `risk.bayes.physics.link_scales`) is applied to it.
    scenarios : the scenarios; an unknown ``cell_family`` uses the population over families.
    n_cells : new cells per posterior draw.
    seed : seed of the new-cell draws.
    max_draws : thin the posterior to at most this many draws (evenly spaced).
    """
    rng = np.random.default_rng(seed)
    mu_f = stack_draws(tree, "mu_family")  # (S, F, P)
    mu_pop, chol = stack_draws(tree, "mu_pop"), stack_draws(tree, "cell_chol")  # (S, P), (S, P, k)
    fam_chol = (stack_draws(tree, "family_chol") if "family_chol" in tree["posterior"]
                else np.einsum("pq,sq->spq", np.eye(mu_pop.shape[1]), stack_draws(tree, "tau_family")))
    shift, _ = link_draws(tree)
    slope = family_slope_draws(tree)
    if max_draws is not None and mu_f.shape[0] > max_draws:
        keep = np.linspace(0, mu_f.shape[0] - 1, max_draws).astype(int)
        mu_f, mu_pop, chol, fam_chol, shift, slope = (x[keep] for x in (mu_f, mu_pop, chol, fam_chol, shift, slope))
    families = [str(f) for f in tree["posterior"]["family"].values]
    S, _, P = mu_f.shape
    from risk.bayes.physics import family_logit_offsets, link_scales, reference_shift

    total = tree["posterior"].sizes["chain"] * tree["posterior"].sizes["draw"]
    kept = np.arange(total) if S == total else np.linspace(0, total - 1, S).astype(int)
    offset = family_logit_offsets(tree, kept, [sc.cell_family for sc in scenarios],
                                  np.array([np.asarray(sc.conditions, float) for sc in scenarios]), rng)  # (S, K)
    scale = link_scales(tree, kept, [sc.cell_family for sc in scenarios], rng)  # (S, K): the family's link scale
    out = np.empty((len(scenarios), S, n_cells))
    for k, sc in enumerate(scenarios):
        if sc.cell_family in families:
            loc = mu_f[:, families.index(sc.cell_family)]
        else:
            loc = (mu_pop + population_shift(tree, slope, np.asarray(sc.conditions, float)[None])[:, 0]
                   + np.einsum("spq,sq->sp", fam_chol, rng.standard_normal((S, fam_chol.shape[2]))))
        z = rng.standard_normal((S, n_cells, chol.shape[2]))
        u = clip_to_design(tree, loc[:, None, :] + np.einsum("spq,scq->scp", chol, z))
        c = np.broadcast_to(np.asarray(sc.conditions, dtype=float), (S, n_cells, len(sc.conditions)))
        ref = reference_shift(tree, kept, scale[:, k, None], clip_to_design(tree, loc)[:, None, :],
                              np.asarray(sc.conditions, float)[None], logit_fn)[:, 0]
        out[k] = special.expit((shift + offset[:, k] + ref)[:, None]
                               + scale[:, k, None] * np.asarray(logit_fn(u, c), dtype=float))
    return out


def family_slope_draws(tree: xr.DataTree) -> np.ndarray:
    """``(S, n_param)`` draws of the family covariate's slope in ``u`` (zeros without a covariate)."""
    post = tree["posterior"]
    if "family_slope_u" in post:
        return stack_draws(tree, "family_slope_u")
    return np.zeros((post.sizes["chain"] * post.sizes["draw"], post.sizes["parameter"]))


def population_shift(tree: xr.DataTree, slope: np.ndarray, conditions: np.ndarray) -> np.ndarray:
    """Where the population of families sits for cells under ``conditions`` ``(n, n_cond)`` relative to
    ``mu_pop``: ``(S, n, n_param)`` = slope ``(S, n_param)`` × x, x = log(capacity) − centre of the
    posterior's ``family_covariate`` attrs (`risk.bayes.physics.PhysicsSetup`); zeros without one."""
    spec = json.loads(tree.attrs.get("family_covariate", "null"))
    conditions = np.asarray(conditions, float)
    if spec is None:
        return np.zeros((slope.shape[0], conditions.shape[0], slope.shape[1]))
    x = np.log(conditions[:, spec["index"]]) - spec["centre"]
    return slope[:, None, :] * x[None, :, None]


def clip_to_design(tree: xr.DataTree, u: np.ndarray) -> np.ndarray:
    """``u`` ``(..., n_param)`` clipped to the decoder's design region of the posterior's attrs
    (``design_bounds``, `risk.bayes.physics.PhysicsSetup`): the fit keeps cells inside it by a soft wall
    (`risk.bayes.model.design_penalty`), prediction never evaluates the decoder beyond it. Unchanged without."""
    if "design_bounds" not in tree.attrs:
        return u
    lower, upper = (np.asarray(b, float) for b in json.loads(tree.attrs["design_bounds"]))
    return np.clip(u, lower, upper)


def link_draws(tree: xr.DataTree) -> tuple[np.ndarray, np.ndarray]:
    """Per-draw simulation-to-reality link of the runaway logit, ``(shift, scale)`` each ``(S,)``
    (`risk.bayes.model.build_hierarchical_model`: a scale only; a shift where an older posterior has
    one); the identity for posteriors without a link."""
    post = tree["posterior"]
    n = post.sizes["chain"] * post.sizes["draw"]
    shift = stack_draws(tree, "link_shift") if "link_shift" in post else np.zeros(n)
    scale = stack_draws(tree, "link_scale") if "link_scale" in post else np.ones(n)
    return shift, scale


def decompose(p_cells: np.ndarray, scenarios: Sequence[Scenario], *, provenance: dict | None = None,
              study_hash: str = "") -> xr.Dataset:
    """The ``predictions.nc`` dataset from per-cell probabilities ``(n_scenario, n_draw, n_cells)``."""
    p_cells = np.asarray(p_cells, dtype=float)
    draws = p_cells.mean(axis=2)  # (K, S) = E_cell p per posterior draw
    q05, q50, q95 = np.quantile(draws, [0.05, 0.5, 0.95], axis=1)
    coords = {"scenario": [s.name for s in scenarios],
              "cell_family": ("scenario", [s.cell_family for s in scenarios]),
              "soc": ("scenario", np.array([s.soc for s in scenarios], dtype=float), {"units": "1"}),
              "severity": ("scenario", [str(s.severity) for s in scenarios]),
              "draw": np.arange(draws.shape[1])}

    def var(x, long_name, dims=("scenario",)):
        return dims, x, {"units": "1", "long_name": long_name}

    ds = xr.Dataset({
        "p_tr_mean": var(draws.mean(axis=1), "posterior predictive P(thermal runaway) of a new cell"),
        "p_tr_q05": var(q05, "5 % credible bound of P(TR)"),
        "p_tr_q50": var(q50, "posterior median of P(TR)"),
        "p_tr_q95": var(q95, "95 % credible bound of P(TR)"),
        "p_tr_var_aleatory": var(p_cells.var(axis=2).mean(axis=1), "E_post[Var_cell P(TR)] (cell-to-cell)"),
        "p_tr_var_epistemic": var(draws.var(axis=1), "Var_post[E_cell P(TR)] (limited data)"),
        "p_tr_draws": var(draws, "P(TR) per posterior draw", ("scenario", "draw")),
    }, coords=coords)
    ds["one_in_n"] = ("scenario", [one_in_n(p) for p in ds["p_tr_mean"].values],
                      {"long_name": "P(TR) stated as 1 in N"})
    ds.attrs.update(provenance=json.dumps(provenance or {}), study_hash=study_hash)
    return ds


def write_predictions(ds: xr.Dataset, path: str | Path) -> None:
    """Write ``predictions.nc`` atomically."""
    path = Path(path)
    tmp = path.with_suffix(".nc.tmp")
    ds.to_netcdf(tmp, engine="h5netcdf")
    tmp.replace(path)


#: observables reported per scenario: a study's product (the heat a calorimetry test releases). The indentation
#: features (force at short onset, voltage drop, log rise rate) are calibration inputs, not reported: their
#: Gaussian discrepancy on the linear scale puts the predictive tails below zero force.
def family_conditions(layout, real, family: str, given: dict[str, float]) -> tuple[float, ...]:
    """Decoder condition vector [SI] of a test of ``family``: a condition ``given`` sets, else the median over
    the family's real tests (``real``: dim ``test`` with ``cell_family``, or None), else the family's nominal
    capacity (`risk.data.families`) for ``capacity_nominal`` and the chemistry its name states for ``chemistry``,
    else the simulator's default — never the ensemble. `ValueError` when the family has no tests and no known capacity but the decoder needs one."""
    fam = {}
    if real is not None and "cell_family" in real:
        rows = real.sel(test=(real["cell_family"] == family).values)
        fam = {n: float(np.nanmedian(rows[n].values)) for n in layout.condition_names
               if n in rows and rows.sizes["test"] and np.isfinite(rows[n].values).any()}
    if "capacity_nominal" in layout.condition_names and "capacity_nominal" not in given | fam:
        from risk.data.families import FAMILY_NOMINAL_AH, parse_test_name

        cap = FAMILY_NOMINAL_AH.get(family, parse_test_name(family.replace(" ", "")).capacity_name_ah)
        if not np.isfinite(cap):
            raise ValueError(f"family {family!r} has no real tests and no capacity; set conditions: {{capacity_nominal: ...}}")
        fam["capacity_nominal"] = cap * 3600.0
    if "chemistry" in layout.condition_names and "chemistry" not in given | fam:
        from risk.data.families import chemistry_format
        from simulators.chemistry import categorical_code

        level_code = categorical_code(chemistry_format(family)[0])
        if level_code is not None:
            fam["chemistry"] = level_code
    return tuple(float(given.get(n, fam.get(n, layout.condition_default[j])))
                 for j, n in enumerate(layout.condition_names))


REPORTED_OBSERVABLES = ("heat_released_total", "heat_fraction_ejecta")  # where the decoder has them


def observable_quantiles(tree: xr.DataTree, decoder, scenarios: Sequence[Scenario], *, seed: int,
                         max_draws: int | None = 1000, names: Sequence[str] = REPORTED_OBSERVABLES) -> dict[str, tuple]:
    """Posterior predictive quantiles of the scalar observables ``names`` of a new test per scenario (the total
    heat of a calorimetry test and its ejecta share):
    ``{"<observable>_q05" | "_q50" | "_q95" | "_mean": ("scenario", values, attrs)}`` in the observable's SI unit (`risk.bayes.physics.predict_observables`: a new cell of the scenario's
    family, or of a new family, under its conditions; decoder scale plus the calibrated discrepancy). Where the
    decoder models the casing's breach margin, ``p_casing_breach_mean`` | ``_q05`` | ``_q50`` | ``_q95`` [1]: the
    share of a posterior draw's new cells whose margin is > 0, and its spread over draws (epistemic)."""

    from risk.bayes.physics import predict_observables

    layout = decoder.layout
    scalar = [(ch, sl.start) for ch, sl in zip(layout.channels, layout.slices().values())
              if ch.dim is None and ch.name in names]
    if not scalar or not scenarios:
        return {}
    apply = decoder.numpy_apply()

    def observable_fn(u, c):
        res = apply(u, c)
        return res["mean"], res["log_scale"]

    families, conditions = [sc.cell_family for sc in scenarios], np.array([sc.conditions for sc in scenarios], float)
    y = predict_observables(tree, observable_fn, families, conditions, seed=seed, max_draws=max_draws)
    values = layout.denormalise(y)  # (S·cells, n_scenarios, n_obs) [SI]
    out = {}
    if BREACH_MARGIN in layout.observable_names:  # P(casing breach) per posterior draw: its epistemic interval
        n_cells = 64
        j = layout.observable_names.index(BREACH_MARGIN)
        m = layout.denormalise(predict_observables(tree, observable_fn, families, conditions, seed=seed + 1,
                                                   n_cells=n_cells, max_draws=max_draws))[..., j]  # [1]
        p = (m.reshape(-1, n_cells, len(scenarios)) > 0).mean(axis=1)  # (S, n_scenarios): draws × cells
        what = "probability that the casing of a new test breaches (bottom rupture; P(breach margin > 0))"
        out["p_casing_breach_mean"] = ("scenario", p.mean(0), {"units": "1", "long_name": f"posterior mean {what}"})
        for q in (0.05, 0.5, 0.95):
            out[f"p_casing_breach_q{round(q * 100):02d}"] = (
                "scenario", np.quantile(p, q, axis=0), {"units": "1", "long_name": f"posterior {q:.0%} quantile {what}"})
    for ch, j in scalar:
        v = values[..., j]
        what = f"of a new test: {ch.name}"
        out[f"{ch.name}_mean"] = ("scenario", v.mean(0), {"units": ch.units, "long_name": f"posterior predictive mean {what}"})
        for q in (0.05, 0.5, 0.95):
            out[f"{ch.name}_q{round(q * 100):02d}"] = ("scenario", np.quantile(v, q, axis=0),
                                                      {"units": ch.units, "long_name": f"posterior predictive {q:.0%} quantile {what}"})
    return out
