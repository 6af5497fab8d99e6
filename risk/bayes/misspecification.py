"""Misspecification checks of the calibrated physics model, run by every calibrate stage (``misspecification.json``).

Three questions, each answered from the run's own artefacts:

1. **Does the calibrated model reproduce the real observations?** Posterior predictive p-values per
   observable, p = P(T(y_rep) ≥ T(y) | y) for T ∈ {mean, sd, min, max} of the observed entries
   (Gelman, Meng & Stern, Statistica Sinica 6 (1996) 733; Gelman et al., BDA3 §6.3), and the share of
   tests outside their central 98 % predictive interval against the 2 % expected (exact binomial test).
   Outcomes: T ∈ {share with thermal runaway, mean hazard level}.
2. **Can the simulator produce what was measured?** The share of real observations outside the range the
   ensemble simulated (over the priors and the design's conditions), and the real tests whose conditions lie
   outside the simulated design, per condition.
3. **Did the data push the model discrepancy beyond its prior?** The posterior median of the discrepancy
   δ_j against the 99 % quantile of its Gamma(4, 4/s) prior (`risk.bayes.model`).
4. **Does the simulator need parameters beyond the range it was run over?** Per physical parameter, the
   posterior share of the real tests' calibrated cells (``u_test``) beyond the design region (the central
   1 − 2·`DESIGN_TAIL` of the study prior, where the ensemble was drawn and the decoder is a model of the
   simulator; `risk.bayes.model.design_region_u`). Under the model the cells are draws from the prior, and the
   posterior share averaged over datasets is the prior's 2·`DESIGN_TAIL` = 1 %; a share above `DESIGN_EDGE_MAX`
   is a prior-data conflict (Evans & Moshonov, Bayesian Analysis 1 (2006) 893) located at the design's edge: a
   simulator that explains the data only with a parameter outside its study prior (shifted kinetics, another
   cell's energy) is absorbed there by the family offsets and discrepancy terms, which checks 1–3 then pass
   (measured: `benchmarks/misspecification.py`). The soft wall of `risk.bayes.model.design_penalty` holds the
   cells back, so the share understates how far the data pull.

An observable (or the outcome) is flagged when a two-sided p-value is below α/m (Bonferroni over its m
statistics, family-wise α = 0.05), when more than 10 % of its observations lie outside the simulated range,
or when its discrepancy exceeds the prior's 99 % quantile; a parameter when check 4 exceeds its limit. Posterior
predictive p-values are conservative (the data are used twice), so a flag is evidence and no flag is not proof of
a correct model.

Real tests whose *conditions* lie outside the simulated design are listed and flagged on their own
(``extrapolation``): their predictions extrapolate the decoder, which says nothing about the model's fit to the others.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr
from scipy import stats

#: family-wise level of an observable's posterior predictive statistics (Bonferroni across them)
ALPHA = 0.05
#: central predictive interval whose outside share is tested against its nominal value
INTERVAL = 0.98
#: share of observations outside the simulated range above which an observable is flagged
OUT_OF_RANGE_MAX = 0.10
#: posterior share of the real tests' calibrated cells beyond the design region, per parameter, above which the
#: parameter is flagged: 10 × the prior's 2 · DESIGN_TAIL (measured on the calorimetry study, full sizes: ≤ 2 % per
#: parameter with the shipped simulator, 34 % (enthalpy factor) and 28 % (breach heating rate) with a 1 A h LCO cell
#: standing in for the 3 A h NMC cells)
DESIGN_EDGE_MAX = 0.10
STATISTICS = {"mean": np.mean, "sd": np.std, "min": np.min, "max": np.max}


def ppp_values(y: np.ndarray, y_rep: np.ndarray, statistics=None) -> dict[str, float]:
    """Posterior predictive p-values P(T(y_rep) ≥ T(y)) per statistic.

    y : (n,) observed values; y_rep : (S, n) replicated data, one row per posterior draw.
    Ties count one half (discrete outcomes: the mid-p value).
    """
    out = {}
    for name, t in (statistics or STATISTICS).items():
        t_obs, t_rep = float(t(y)), t(y_rep, axis=1)
        out[name] = float(np.mean(t_rep > t_obs) + 0.5 * np.mean(t_rep == t_obs))
    return out


def _two_sided(p: float) -> float:
    return float(min(1.0, 2 * min(p, 1 - p)))


def _stat_check(y: np.ndarray, y_rep: np.ndarray, statistics=None) -> dict:
    p = ppp_values(y, y_rep, statistics)
    p2 = {k: _two_sided(v) for k, v in p.items()}
    return {"n": int(y.size), "p_values": p, "p_two_sided": p2,
            "extreme": [k for k, v in p2.items() if v < ALPHA / len(p2)]}


def _outside_interval(y: np.ndarray, y_rep: np.ndarray, level: float = INTERVAL) -> dict:
    lo, hi = np.quantile(y_rep, [(1 - level) / 2, (1 + level) / 2], axis=0)
    out = (y < lo) | (y > hi)
    k, n = int(out.sum()), int(y.size)
    p = float(stats.binomtest(k, n, 1 - level, alternative="greater").pvalue) if n else 1.0
    return {"level": level, "share_outside": k / n if n else float("nan"), "expected": 1 - level,
            "p_value": p, "extreme": bool(p < ALPHA)}


def _stacked(da: xr.DataArray) -> np.ndarray:
    """(S, n) draws of a posterior-predictive variable (chain and draw stacked)."""
    return np.asarray(da.stack(sample=("chain", "draw")).transpose("sample", ...).values, dtype=float)


def observable_checks(tree: xr.DataTree, observable_names, entry_observable: np.ndarray) -> dict:
    """Posterior predictive checks of the ``observables`` entries, per observable (see the module docstring).

    entry_observable : (n_entries,) observable index of each observed entry (`build_hierarchical_model`'s
    ``observed_index[1]``). Returns ``{name: {"n", "p_values", "p_two_sided", "extreme", "interval"}}``.
    """
    if "posterior_predictive" not in tree or "observables" not in tree["posterior_predictive"]:
        return {}
    y_rep = _stacked(tree["posterior_predictive"]["observables"])
    y = np.asarray(tree["observed_data"]["observables"].values, dtype=float)
    out = {}
    for j, name in enumerate(observable_names):
        sel = np.asarray(entry_observable) == j
        if sel.sum() < 2:
            continue
        out[str(name)] = _stat_check(y[sel], y_rep[:, sel]) | {"interval": _outside_interval(y[sel], y_rep[:, sel])}
    return out


def outcome_checks(tree: xr.DataTree, tr_index: int = 5) -> dict:
    """Posterior predictive checks of the outcome: ``hazard_level`` (T = share TR, i.e. level index ≥
    ``tr_index`` (0-based: level 6), mean level) and/or ``runaway`` (T = share with runaway)."""
    if "posterior_predictive" not in tree:
        return {}
    pp, obs = tree["posterior_predictive"], tree["observed_data"]
    out = {}
    if "hazard_level" in pp and "hazard_level" in obs:
        y_rep, y = _stacked(pp["hazard_level"]), np.asarray(obs["hazard_level"].values, dtype=float)
        out["hazard_level"] = _stat_check(y, y_rep, {"share_tr": lambda a, axis=None: np.mean(a >= tr_index, axis=axis),
                                                     "mean_level": np.mean})
    if "runaway" in pp and "runaway" in obs:
        y_rep, y = _stacked(pp["runaway"]), np.asarray(obs["runaway"].values, dtype=float)
        out["runaway"] = _stat_check(y, y_rep, {"share_tr": np.mean})
    return out


def simulated_range_checks(observables: np.ndarray, censored: np.ndarray | None, simulated: np.ndarray,
                           simulated_mask: np.ndarray, observable_names) -> dict:
    """Share of real observations outside the range the ensemble simulated, per observable.

    observables : (n_tests, n_obs) real values (normalised, NaN missing); censored : same shape, signs
    (`risk.bayes.model.censor_sign`); simulated, simulated_mask : (n_sim, n_obs) ensemble values in the same
    units and where they exist. A lower bound is outside only above the simulated maximum, an upper bound only
    below the minimum.
    """
    out = {}
    from risk.bayes.model import censor_sign

    sign = censor_sign(censored, observables.shape)
    for j, name in enumerate(observable_names):
        s = simulated[np.asarray(simulated_mask[:, j], bool), j]
        y = observables[:, j]
        ok = np.isfinite(y)
        if not ok.any() or not s.size:
            continue
        lo, hi = float(s.min()), float(s.max())
        outside = ok & (((sign[:, j] >= 0) & (y > hi)) | ((sign[:, j] <= 0) & (y < lo)))
        share = float(outside.sum() / ok.sum())
        out[str(name)] = {"n": int(ok.sum()), "simulated_min": lo, "simulated_max": hi, "n_outside": int(outside.sum()),
                          "share_outside": share, "extreme": bool(share > OUT_OF_RANGE_MAX)}
    return out


def design_checks(conditions: np.ndarray, bounds: dict, condition_names, tests) -> dict:
    """Real tests whose conditions lie outside the simulated design, per condition.

    conditions : (n_tests, n_cond) real test conditions (SI); bounds : condition name → (low, high) of the
    design (SI; a fixed condition has low = high). Returns ``{name: {"design_min", "design_max",
    "n_outside", "tests": [...]}}`` for every condition with bounds.
    """
    out = {}
    tests = np.asarray(tests).astype(str)
    for j, name in enumerate(condition_names):
        if name not in bounds:
            continue
        lo, hi = map(float, bounds[name])
        tol = 1e-6 * max(hi - lo, abs(hi), 1e-12)
        c = np.asarray(conditions[:, j], float)
        outside = (c < lo - tol) | (c > hi + tol)
        out[str(name)] = {"design_min": lo, "design_max": hi, "n_outside": int(outside.sum()),
                          "tests": tests[outside].tolist()}
    return out


def design_bounds(declared: dict, design: np.ndarray, condition_names) -> dict[str, tuple[float, float]]:
    """(low, high) per condition: the study's declared range or fixed value (``declared``: name → value or
    (low, high), SI) where it has one, else the range the ensemble sampled (``design`` (n_sim, n_cond))."""
    out = {}
    for j, name in enumerate(condition_names):
        v = declared.get(name)
        if v is not None:
            out[str(name)] = (float(v[0]), float(v[1])) if isinstance(v, (tuple, list)) else (float(v), float(v))
        else:
            d = np.asarray(design[:, j], float)
            d = d[np.isfinite(d)]
            if d.size:
                out[str(name)] = (float(d.min()), float(d.max()))
    return out


def discrepancy_checks(tree: xr.DataTree, discrepancy_scale: float, q: float = 0.99) -> dict:
    """Posterior median of the discrepancy δ_j against the ``q`` quantile of its Gamma(4, 4/s) prior."""
    post = tree["posterior"]
    if "discrepancy" not in post:
        return {}
    prior_q = float(stats.gamma(a=4.0, scale=discrepancy_scale / 4.0).ppf(q))
    med = post["discrepancy"].median(("chain", "draw"))
    out = {}
    for name in med["observable"].values:
        m = float(med.sel(observable=name))
        out[str(name)] = {"posterior_median": m, "prior_quantile": prior_q, "quantile": q,
                          "extreme": bool(m > prior_q)}
    return out


def design_edge_checks(tree: xr.DataTree, max_share: float = DESIGN_EDGE_MAX) -> dict:
    """Per physical parameter, the posterior share of the real tests' calibrated cells beyond the design region
    (check 4 of the module docstring).

    tree : a calibrated physics posterior with ``u_test (chain, draw, test, parameter)`` and its ``design_bounds``
    attr (``[lower, upper]``, each ``(n_param,)`` [u]). Returns ``{parameter: {"share_below", "share_above",
    "share_beyond", "prior_share", "design_min", "design_max", "extreme"}}`` ({} without a design region).
    """
    from risk.bayes.model import DESIGN_TAIL

    post = tree["posterior"]
    if "u_test" not in post or "design_bounds" not in tree.attrs:
        return {}
    lo, hi = (np.asarray(b, float) for b in json.loads(tree.attrs["design_bounds"]))
    u = post["u_test"].transpose(..., "parameter").values
    axes = tuple(range(u.ndim - 1))
    below, above = (u < lo).mean(axis=axes), (u > hi).mean(axis=axes)
    out = {}
    for k, name in enumerate(post["parameter"].values):
        share = float(below[k] + above[k])
        out[str(name)] = {"share_below": float(below[k]), "share_above": float(above[k]), "share_beyond": share,
                          "prior_share": 2 * DESIGN_TAIL, "design_min": float(lo[k]), "design_max": float(hi[k]),
                          "extreme": bool(share > max_share)}
    return out


def misspecification_report(tree: xr.DataTree, data, decoder, ensemble: xr.Dataset | None, *,
                            entry_observable: np.ndarray, discrepancy_scale: float,
                            declared_conditions: dict | None = None) -> dict:
    """All checks of the module docstring for a calibrated physics posterior.

    tree : `risk.bayes.physics.fit_physics` output (with ``posterior_predictive``); data : its
    `CalibrationData`; decoder : the frozen decoder; ensemble : the simulations it was trained on (None:
    range and design checks skipped); declared_conditions : the study's conditions (name → SI value or
    (low, high)), the design's bounds where given (`design_bounds`). Returns the JSON-able dict written to ``misspecification.json``:
    ``{"flag", "reasons", "alpha", "observables", "outcome", "simulated_range", "discrepancy", "design_edge",
    "design", "extrapolation", "extrapolation_reasons"}``: ``flag`` from checks 1–4, ``extrapolation`` from the
    tests' conditions outside the design.
    """
    names = list(data.observable_names)
    res = {"alpha": ALPHA, "observables": observable_checks(tree, names, entry_observable),
           "outcome": outcome_checks(tree), "discrepancy": discrepancy_checks(tree, discrepancy_scale),
           "design_edge": design_edge_checks(tree), "simulated_range": {}, "design": {}}
    if ensemble is not None:
        from sim2real.bridge import ensemble_to_batch

        batch = ensemble_to_batch(ensemble, decoder.layout, decoder.transform)
        res["simulated_range"] = simulated_range_checks(np.asarray(data.observables, float), data.censored,
                                                        batch.x.double().numpy(), batch.mask.numpy() > 0, names)
        names_c = decoder.layout.condition_names
        bounds = design_bounds(declared_conditions or {}, batch.c.numpy(), names_c)
        res["design"] = design_checks(np.asarray(data.conditions, float), bounds, names_c, data.test)
    reasons = []
    for name, r in res["observables"].items():
        if r["extreme"]:
            reasons.append(f"{name}: posterior predictive {', '.join(r['extreme'])} outside the model's range "
                           f"(two-sided p < {ALPHA / len(r['p_values']):.3g})")
        if r["interval"]["extreme"]:
            reasons.append(f"{name}: {r['interval']['share_outside']:.0%} of tests outside their "
                           f"{INTERVAL:.0%} predictive interval (expected {1 - INTERVAL:.0%})")
    for name, r in res["outcome"].items():
        if r["extreme"]:
            reasons.append(f"{name}: posterior predictive {', '.join(r['extreme'])} outside the model's range")
    for name, r in res["simulated_range"].items():
        if r["extreme"]:
            reasons.append(f"{name}: {r['n_outside']} of {r['n']} real observations outside the simulated range")
    for name, r in res["discrepancy"].items():
        if r["extreme"]:
            reasons.append(f"{name}: model discrepancy {r['posterior_median']:.3g} beyond its prior's "
                           f"{r['quantile']:.0%} quantile {r['prior_quantile']:.3g} (normalised units)")
    for name, r in res["design_edge"].items():
        if r["extreme"]:
            side = "above" if r["share_above"] >= r["share_below"] else "below"
            reasons.append(f"{name}: {r['share_beyond']:.0%} of the real tests' calibrated cells beyond the simulated "
                           f"design (mostly {side} it; {r['prior_share']:.0%} under the prior) — the simulator "
                           f"reproduces the data only with {name} outside its study prior")
    extrapolation = [f"{r['n_outside']} real tests with {name} outside the simulated design "
                     f"[{r['design_min']:.4g}, {r['design_max']:.4g}]" for name, r in res["design"].items() if r["n_outside"]]
    res["reasons"], res["flag"] = reasons, bool(reasons)
    res["extrapolation_reasons"], res["extrapolation"] = extrapolation, bool(extrapolation)
    return res


def write(result: dict, path: str | Path) -> None:
    Path(path).write_text(json.dumps(result, indent=2))
