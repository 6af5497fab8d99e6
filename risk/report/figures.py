"""Report figures: matplotlib → PNG → ``data:`` URI, so the HTML is self-contained.

Every figure labels itself from the xarray ``long_name``/``units`` attrs of what it plots. Figures
are built on :class:`matplotlib.figure.Figure` objects (no pyplot global state).

Examples
--------
>>> import xarray as xr                                           # doctest: +SKIP
>>> uri = p_tr_vs_soc(xr.open_dataset("runs/demo/predictions.nc"))  # doctest: +SKIP
>>> uri.startswith("data:image/png;base64,")                      # doctest: +SKIP
True
"""
from __future__ import annotations

import base64
import io
import math

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from scipy import stats

DPI = 110
SAMPLE_DIMS = ("chain", "draw")


def to_data_uri(fig: Figure) -> str:
    """Render ``fig`` as PNG and return a ``data:image/png;base64,...`` URI."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def label(da: xr.DataArray | None, fallback: str = "") -> str:
    """Axis label ``"long_name [units]"`` from the attrs of ``da`` (units "1" shown as ``[1]``)."""
    if da is None:
        return fallback
    name = da.attrs.get("long_name") or da.attrs.get("standard_name") or da.name or fallback
    name = str(name).replace("_", " ")
    units = da.attrs.get("units")
    return f"{name} [{units}]" if units not in (None, "") else str(name)


def _families(predictions: xr.Dataset) -> list[str]:
    if "cell_family" not in predictions.coords and "cell_family" not in predictions:
        return [""]
    return [str(f) for f in dict.fromkeys(np.asarray(predictions["cell_family"].values).tolist())]


def p_tr_vs_soc(predictions: xr.Dataset) -> str:
    """P(TR) vs state of charge with 90 % credible bands, one panel per cell family.

    Scenarios of a family sharing a ``severity`` form one line (sorted by SOC); the band spans
    ``p_tr_q05``–``p_tr_q95`` and the markers are ``p_tr_mean``. Log-scaled when the values span
    more than a decade.
    """
    fams = _families(predictions)
    fig = Figure(figsize=(5.2 * min(len(fams), 3), 3.6 * math.ceil(len(fams) / 3)))
    axes = fig.subplots(math.ceil(len(fams) / 3), min(len(fams), 3), squeeze=False).ravel()
    fam_all = (np.asarray(predictions["cell_family"].values).astype(str)
               if fams != [""] else np.array([""] * predictions.sizes["scenario"]))
    sev_all = (np.asarray(predictions["severity"].values).astype(str)
               if "severity" in predictions.coords or "severity" in predictions
               else np.array([""] * predictions.sizes["scenario"]))
    soc = predictions["soc"]
    positive = predictions["p_tr_q05"].values[predictions["p_tr_q05"].values > 0]
    use_log = positive.size and predictions["p_tr_q95"].values.max() / positive.min() > 10
    for ax, fam in zip(axes, fams):
        for sev in dict.fromkeys(sev_all[fam_all == fam].tolist()):
            sel = np.flatnonzero((fam_all == fam) & (sev_all == sev))
            sel = sel[np.argsort(soc.values[sel])]
            x = 100 * soc.values[sel] if soc.attrs.get("units") in ("1", None) else soc.values[sel]
            lab = f"severity {sev}" if sev not in ("", "nan") else None
            line, = ax.plot(x, predictions["p_tr_mean"].values[sel], "o-", label=lab)
            ax.fill_between(x, predictions["p_tr_q05"].values[sel],
                            predictions["p_tr_q95"].values[sel], alpha=0.25,
                            color=line.get_color(), lw=0)
        ax.set_xlabel("state of charge [%]" if soc.attrs.get("units") in ("1", None)
                      else label(soc))
        ax.set_ylabel("P(thermal runaway) [1]")
        ax.set_title(f"cell family {fam}" if fam else "all scenarios")
        if use_log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, title="mean, 90 % credible band", title_fontsize=8)
    for ax in axes[len(fams):]:
        ax.set_visible(False)
    return to_data_uri(fig)


def variance_decomposition(predictions: xr.Dataset) -> str:
    """Share of Var[P(TR)] that is aleatory (cell-to-cell) vs epistemic (parameter) per scenario."""
    ale = predictions["p_tr_var_aleatory"].values.astype(float)
    epi = predictions["p_tr_var_epistemic"].values.astype(float)
    total = np.where(ale + epi > 0, ale + epi, 1.0)
    names = [str(s) for s in predictions["scenario"].values]
    fig = Figure(figsize=(6.5, 0.45 * len(names) + 1.4))
    ax = fig.subplots()
    y = np.arange(len(names))
    ax.barh(y, ale / total, color="#4c72b0", label="aleatory: E_post[Var_cell]")
    ax.barh(y, epi / total, left=ale / total, color="#dd8452", label="epistemic: Var_post[E_cell]")
    ax.set_yticks(y, names, fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of total variance of P(TR) [1]")
    ax.invert_yaxis()
    ax.legend(fontsize=8, loc="lower right")
    return to_data_uri(fig)


def sensitivity_ranking(sensitivity: xr.Dataset) -> str:
    """Shapley effects of P(TR) (``shapley_effect`` with its 90 % band over posterior draws) when present, else
    Sobol total-order (``ST``) and first-order (``S1``) indices, ranked, with confidence bars."""
    fig = Figure(figsize=(6.5, 0.45 * sensitivity.sizes["parameter"] + 1.4))
    ax = fig.subplots()
    if "shapley_effect" in sensitivity:
        v = sensitivity["shapley_effect"].values
        order = np.argsort(-v)
        y = np.arange(len(order))
        lo, hi = (sensitivity[f"shapley_effect_{q}"].values[order] for q in ("q05", "q95"))
        ax.barh(y, v[order], color="#c44e52", xerr=np.vstack([v[order] - lo, hi - v[order]]).clip(0), capsize=2,
                label="Shapley effect (90 % over posterior draws)")
        ax.set_xlabel("share of Var[P(TR)] over the cell-to-cell distribution [1]")
    else:
        order = np.argsort(-sensitivity["ST"].values)
        y = np.arange(len(order))
        for offset, var, color in ((-0.18, "ST", "#c44e52"), (0.18, "S1", "#8172b2")):
            conf = sensitivity.get(f"{var}_conf")
            ax.barh(y + offset, sensitivity[var].values[order], height=0.36, color=color,
                    xerr=None if conf is None else conf.values[order], capsize=2,
                    label=label(sensitivity[var], var))
        ax.set_xlabel("Sobol index of P(TR) [1]")
    ax.set_yticks(y, [str(p) for p in sensitivity["parameter"].values[order]], fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0, color="k", lw=0.5)
    ax.legend(fontsize=8)
    return to_data_uri(fig)


def _prior_pdf(prior: dict, x: np.ndarray) -> np.ndarray | None:
    """Density of a study prior ``{dist, low, high, mu, sigma}`` on ``x`` (None if unknown)."""
    dist = str(prior.get("dist", "")).lower()
    try:
        if dist == "uniform":
            return stats.uniform(prior["low"], prior["high"] - prior["low"]).pdf(x)
        if dist == "loguniform":
            return stats.loguniform(prior["low"], prior["high"]).pdf(x)
        if dist == "normal":
            return stats.norm(prior["mu"], prior["sigma"]).pdf(x)
        if dist == "lognormal":
            return stats.lognorm(s=prior["sigma"], scale=math.exp(prior["mu"])).pdf(x)
        if dist in ("truncnormal", "truncated_normal"):
            a = (prior["low"] - prior["mu"]) / prior["sigma"]
            b = (prior["high"] - prior["mu"]) / prior["sigma"]
            return stats.truncnorm(a, b, prior["mu"], prior["sigma"]).pdf(x)
    except (KeyError, TypeError, ValueError):
        return None
    return None


def scalar_posterior_vars(posterior: xr.Dataset, limit: int = 12) -> list[str]:
    """Names of posterior variables with no dims beyond (chain, draw), at most ``limit``."""
    return [v for v in posterior.data_vars
            if set(posterior[v].dims) <= set(SAMPLE_DIMS)][:limit]


def parameter_posteriors(posterior: xr.Dataset, parameters: dict | None = None) -> str:
    """Histograms of the scalar posterior variables, with the study prior overlaid when known.

    Parameters
    ----------
    posterior : the ``posterior`` group (dims chain, draw).
    parameters : ``study["parameters"]`` ({name: {prior: {...}, unit, ...}}), for priors and units.
    """
    parameters = parameters or {}
    names = scalar_posterior_vars(posterior)
    ncol = min(3, len(names))
    nrow = math.ceil(len(names) / ncol)
    fig = Figure(figsize=(4.0 * ncol, 2.8 * nrow))
    axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    for ax, name in zip(axes, names):
        da = posterior[name]
        vals = da.values.ravel()
        vals = vals[np.isfinite(vals)]
        ax.hist(vals, bins=30, density=True, color="#4c72b0", alpha=0.7, label="posterior")
        spec = parameters.get(name) or {}
        if spec.get("prior"):
            lo, hi = ax.get_xlim()
            x = np.linspace(lo, hi, 200)
            pdf = _prior_pdf(spec["prior"], x)
            if pdf is not None:
                ax.plot(x, pdf, "k--", lw=1, label="prior")
        unit = da.attrs.get("units") or spec.get("unit")
        ax.set_xlabel(f"{da.attrs.get('long_name', name)}" + (f" [{unit}]" if unit else ""),
                      fontsize=8)
        ax.set_ylabel("density", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    fig.tight_layout()
    return to_data_uri(fig)


def predictive_interval(pp: xr.DataArray, level: float = 0.9) -> tuple[xr.DataArray, xr.DataArray]:
    """Lower/upper central ``level`` quantiles of a posterior-predictive variable over draws."""
    dims = [d for d in SAMPLE_DIMS if d in pp.dims]
    q = pp.quantile([(1 - level) / 2, (1 + level) / 2], dim=dims)
    return q.isel(quantile=0, drop=True), q.isel(quantile=1, drop=True)


def coverage(pp: xr.DataArray, obs: xr.DataArray, level: float = 0.9) -> float:
    """Fraction of finite observations inside the central ``level`` predictive interval."""
    lo, hi = predictive_interval(pp, level)
    o = obs.astype(float).values
    inside = (o >= lo.values) & (o <= hi.values)
    ok = np.isfinite(o)
    return float(inside[ok].mean()) if ok.any() else math.nan


def posterior_predictive(pp: xr.DataArray, obs: xr.DataArray, max_panels: int = 4) -> str:
    """Posterior predictive check of one observable against the real observations.

    Scalar-per-test observables: 90 % predictive interval per test with the observed value.
    Curves (test × grid): up to ``max_panels`` tests, each the 50 %/90 % predictive bands and the
    real curve.
    """
    lo90, hi90 = predictive_interval(pp, 0.9)
    obs = obs.astype(float)
    if obs.ndim <= 1:
        fig = Figure(figsize=(6.5, 3.2))
        ax = fig.subplots()
        x = np.arange(obs.size)
        med = pp.median([d for d in SAMPLE_DIMS if d in pp.dims])
        ax.vlines(x, np.atleast_1d(lo90.values), np.atleast_1d(hi90.values), color="#4c72b0",
                  lw=4, alpha=0.5, label="90 % predictive interval")
        ax.plot(x, np.atleast_1d(med.values), "_", color="#4c72b0", ms=10,
                label="predictive median")
        ax.plot(x, np.atleast_1d(obs.values), "o", color="#c44e52", ms=4, label="real test")
        if obs.ndim == 1:
            ax.set_xticks(x, [str(t) for t in obs[obs.dims[0]].values], rotation=90, fontsize=6)
            ax.set_xlabel(obs.dims[0])
        ax.set_ylabel(label(obs, str(obs.name)))
        ax.legend(fontsize=7)
        return to_data_uri(fig)
    test_dim = obs.dims[0]
    grid_dim = obs.dims[-1]
    lo50, hi50 = predictive_interval(pp, 0.5)
    n = min(max_panels, obs.sizes[test_dim])
    fig = Figure(figsize=(3.3 * n, 3.0))
    axes = fig.subplots(1, n, squeeze=False).ravel()
    grid = obs[grid_dim] if grid_dim in obs.coords else xr.DataArray(np.arange(obs.sizes[grid_dim]))
    for i, ax in enumerate(axes):
        sel = {test_dim: i}
        ax.fill_between(grid.values, lo90.isel(sel).values, hi90.isel(sel).values,
                        color="#4c72b0", alpha=0.2, lw=0, label="90 % predictive")
        ax.fill_between(grid.values, lo50.isel(sel).values, hi50.isel(sel).values,
                        color="#4c72b0", alpha=0.4, lw=0, label="50 % predictive")
        ax.plot(grid.values, obs.isel(sel).values, color="#c44e52", lw=1.2, label="real test")
        ax.set_title(f"{test_dim} {obs[test_dim].values[i]}" if test_dim in obs.coords
                     else f"{test_dim} {i}", fontsize=8)
        ax.set_xlabel(label(grid, grid_dim), fontsize=8)
        if i == 0:
            ax.set_ylabel(label(obs, str(obs.name)), fontsize=8)
            ax.legend(fontsize=6)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return to_data_uri(fig)


def exceedance_curve(curve, currency: str) -> str:
    """Annual loss vs exceedance probability (log-log), one line per scenario.

    Parameters
    ----------
    curve : the exceedance table (pandas DataFrame, :data:`risk.export_schema.EXCEEDANCE_TABLE`).
    currency : label of the loss axis.
    """
    fig = Figure(figsize=(6.0, 3.8))
    ax = fig.subplots()
    for name, part in curve.groupby("scenario", sort=False):
        ax.plot(part["annual_loss"], part["exceedance_probability"], "o-", ms=3, label=str(name))
    ax.set_yscale("log")
    if (curve["annual_loss"] > 0).any():
        ax.set_xscale("symlog", linthresh=max(float(curve["annual_loss"][curve["annual_loss"] > 0]
                                                     .min()), 1e-9))
    ax.set_xlabel(f"annual fleet loss [{currency}/yr]")
    ax.set_ylabel("probability of exceedance per year [1]")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return to_data_uri(fig)
