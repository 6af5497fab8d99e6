"""Sensitivity of P(TR) to the physical parameters → ``sensitivity.nc``.

`shapley_dataset`: the reported indices. Shapley effects (`risk.predict.shapley`) of a new cell's
P(TR) over the posterior population of cells ``u ~ N(μ^s, L^s L^sᵀ)`` (dependent inputs), one set per
posterior draw s and summarised over draws, plus grouped indices of the posterior (epistemic) against
the cell-to-cell deviation (aleatory).

`sobol_indices`: Sobol indices for *independent* inputs (kept for the ±2 box in ``u``, an exploration
of the surrogate, not a distribution of cells). Inputs are sampled with SALib's Sobol' sequence in
Saltelli's scheme (``SALib.sample.sobol``), the
model is evaluated on all ``N (2 D + 2)`` rows, and ``SALib.analyze.sobol`` gives first-order (S1) and
total (ST) indices with bootstrap 95 % half-widths (``*_conf``).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import xarray as xr
from SALib.analyze import sobol as sobol_analyze
from SALib.sample import sobol as sobol_sample


def sobol_indices(f: Callable[[np.ndarray], np.ndarray], parameter_names: Sequence[str],
                  bounds: Sequence[tuple[float, float]], *, n_base: int = 1024, seed: int,
                  units: Sequence[str] | None = None) -> xr.Dataset:
    """Sobol indices of ``f`` over independent uniform inputs.

    Parameters
    ----------
    f : vectorised model ``(n, D) -> (n,)``, e.g. θ ↦ P(TR | θ, scenario) [1].
    parameter_names : the D parameter names.
    bounds : D ``(low, high)`` ranges (in the parameter's unit, or in ``u`` space).
    n_base : Saltelli base sample size (power of 2); cost ``n_base (2 D + 2)`` evaluations.
    seed : seed for the scrambled Sobol' sequence and the bootstrap.
    units : units of the parameters (attrs only).

    Returns
    -------
    Dataset over ``parameter`` with ``S1``, ``S1_conf``, ``ST``, ``ST_conf`` [1] and attr ``n_evaluations``.
    """
    problem = {"num_vars": len(parameter_names), "names": list(parameter_names), "bounds": [list(b) for b in bounds]}
    x = sobol_sample.sample(problem, n_base, calc_second_order=False, seed=seed)
    y = np.asarray(f(x), dtype=float).ravel()
    res = sobol_analyze.analyze(problem, y, calc_second_order=False, seed=seed)
    ds = xr.Dataset(
        {k: ("parameter", np.asarray(res[k]), {"units": "1", "long_name": ln}) for k, ln in
         [("S1", "first-order Sobol index"), ("S1_conf", "95 % half-width of S1"),
          ("ST", "total Sobol index"), ("ST_conf", "95 % half-width of ST")]},
        coords={"parameter": list(parameter_names)})
    if units is not None:
        ds = ds.assign_coords(parameter_units=("parameter", list(units)))
    ds.attrs.update(n_evaluations=int(x.shape[0]), n_base=int(n_base), seed=int(seed))
    return ds


def shapley_dataset(effects: np.ndarray, se: np.ndarray, variance: np.ndarray, draws: Sequence[int],
                    grouped: Mapping[str, np.ndarray], parameter_names: Sequence[str], *,
                    units: Sequence[str] | None = None, attrs: Mapping | None = None) -> xr.Dataset:
    """The Shapley part of ``sensitivity.nc``.

    Parameters
    ----------
    effects : ``(n_draw, n_param)`` Shapley effects Sh_i^s of P(TR) over the cell-to-cell distribution of
        posterior draw s [1² = 1: variance of a probability].
    se : ``(n_draw, n_param)`` their Monte Carlo standard errors [1].
    variance : ``(n_draw,)`` Var_cell P(TR) of each draw (= Σ_i Sh_i^s) [1].
    draws : the posterior draw indices (stacked chain × draw) used.
    grouped : `risk.predict.shapley.grouped_indices` of the draws × cells table (groups epistemic,
        aleatory).
    parameter_names, units : the parameters (``u`` space of the decoder) and their physical units.

    Returns
    -------
    Dataset with dims ``parameter``, ``shapley_draw``, ``group``:
    ``shapley_effect`` (parameter) [1] mean over draws of Sh_i^s / Var^s (the share of the cell-to-cell
    variance of P(TR) due to parameter i; shares sum to 1), ``shapley_effect_q05`` / ``_q95`` (parameter)
    its 5/95 % quantiles over draws, ``shapley_effect_se`` (parameter) Monte Carlo standard error of the
    mean, ``shapley_variance`` (parameter) [1] mean Sh_i^s, ``shapley_effect_draws`` (shapley_draw,
    parameter) [1], ``p_tr_cell_variance`` (shapley_draw) [1]; ``group_S1``, ``group_ST``,
    ``group_shapley`` (group) [1] with ``group`` = ``epistemic`` (posterior draw) | ``aleatory`` (cell).
    """
    effects, se, variance = (np.asarray(x, dtype=float) for x in (effects, se, variance))
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(variance[:, None] > 0, effects / variance[:, None], np.nan)
        share_se = np.where(variance[:, None] > 0, se / variance[:, None], np.nan)
    n = max(int(np.isfinite(share[:, 0]).sum()), 1)
    q05, q95 = np.nanquantile(share, [0.05, 0.95], axis=0) if np.isfinite(share).any() else (share[0], share[0])
    what = "of P(TR) of a new cell over the posterior cell-to-cell distribution N(mu, L L^T)"

    def var(dims, x, long_name):
        return dims, np.asarray(x, dtype=float), {"units": "1", "long_name": long_name}

    ds = xr.Dataset({
        "shapley_effect": var("parameter", np.nanmean(share, axis=0),
                              f"normalised Shapley effect {what}, mean over posterior draws"),
        "shapley_effect_q05": var("parameter", q05, "5 % quantile over posterior draws of the normalised "
                                                    "Shapley effect"),
        "shapley_effect_q95": var("parameter", q95, "95 % quantile over posterior draws of the normalised "
                                                    "Shapley effect"),
        "shapley_effect_se": var("parameter", np.sqrt(np.nansum(share_se**2, axis=0)) / n,
                                 "Monte Carlo standard error of shapley_effect"),
        "shapley_variance": var("parameter", np.nanmean(effects, axis=0),
                                f"Shapley effect {what} (variance of a probability), mean over draws"),
        "shapley_effect_draws": var(("shapley_draw", "parameter"), share,
                                    f"normalised Shapley effect {what} per draw"),
        "p_tr_cell_variance": var("shapley_draw", variance,
                                  "Var_cell P(TR | cell) per posterior draw (sum of Shapley effects)"),
        "group_S1": var("group", grouped["S1"], "first-order Sobol index of the input group (epistemic: posterior "
                                                 "draw; aleatory: cell-to-cell deviation)"),
        "group_ST": var("group", grouped["ST"], "total Sobol index of the input group"),
        "group_shapley": var("group", grouped["shapley"], "normalised Shapley effect of the input group"),
    }, coords={"parameter": list(parameter_names), "shapley_draw": np.asarray(draws, dtype=np.int64),
               "group": ["epistemic", "aleatory"]})
    if units is not None:
        ds = ds.assign_coords(parameter_units=("parameter", list(units)))
    ds.attrs.update({"p_tr_variance_total": float(grouped.get("variance", np.nan)),
                     "shapley_method": "exact-permutation Shapley effects, Song, Nelson & Staum (2016) double-loop "
                                       "estimator with analytic Gaussian conditionals (risk.predict.shapley)",
                     **(attrs or {})})
    return ds
