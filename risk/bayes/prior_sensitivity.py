"""Prior sensitivity of the physics posterior by power-scaling (→ ``prior_sensitivity.json``).

Each top-level prior of `risk.bayes.model.build_hierarchical_model` (the hyperpriors: population
location, family and cell scales, family slope, sim-to-real link scale, discrepancies, cutpoint gaps) is
raised to a power α ∈ {0.99, 1.01} — and, separately, the likelihood — by Pareto-smoothed importance
weights on the existing draws (no refit), and the change of each quantity's posterior is measured by
the derivative of the cumulative Jensen–Shannon distance (Kallioinen, Paananen, Bürkner & Vehtari,
"Detecting and diagnosing prior and likelihood sensitivity with power-scaling", Statistics and
Computing 34 (2024) 57; `arviz_stats.psense_summary`). Above the threshold 0.05 a quantity is prior
sensitive; prior *and* likelihood sensitive means the prior and the data pull in different directions
(prior–data conflict), prior-only sensitive means the data say little.

The distance is relative to each quantity's own spread, so a P(TR) pinned near 0 or 1 can be flagged while
its mean hardly moves. What a decision needs is the absolute change (Kallioinen et al. §5: judge a flagged
quantity by how far its summaries move), so each row also carries, in the quantity's units, the gradient of
its posterior mean with respect to log α for the prior and for the likelihood (same weights, α = 0.99/1.01),
and the change of its mean when the priors' weight is halved or doubled (α = 0.5, 2; PSIS, reported only
where the Pareto k̂ ≤ 0.7 — Vehtari et al., "Pareto smoothed importance sampling", JMLR 25 (2024) 72).
A quantity whose mean the priors move more than the data do (|prior gradient| > |likelihood gradient|) is
prior-dominated.

The quantities: the hyperparameters and, what a user acts on, each scenario's P(TR) per draw.
Layout::

    {"method", "reference", "threshold", "power_scaled_priors": [...],
     "prior_weight": {"halved": {"alpha", "pareto_khat", "reliable"}, "doubled": {...}},
     "rows": [{"quantity", "prior", "likelihood", "diagnosis", "mean", "sd", "prior_mean_gradient",
               "likelihood_mean_gradient", "prior_dominated", "shift_prior_halved", "shift_prior_doubled"}]}
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr

#: free variables whose priors are power-scaled (the hierarchy's top level; the per-family and per-test
#: standard normals are part of the model's structure, not prior knowledge: Kallioinen et al. 2024, §4)
TOP_LEVEL = ("a_pop", "tau_family", "family_slope", "cell_sd", "link_scale", "family_link_sd", "family_logit_sd",
             "family_logit_mean",
             "family_logit_slope", "discrepancy", "family_discrepancy", "family_discrepancy_mean", "emulator_share",
             "cutpoints_gaps")
THRESHOLD = 0.05
#: largest Pareto k̂ at which a power-scaled importance-weighted mean is trusted (Vehtari et al. 2024, §3)
KHAT_MAX = 0.7
SAMPLE_DIMS = ("chain", "draw")


def _summed(ds: xr.Dataset) -> xr.DataArray:
    """Sum of every variable of a log-density group over its non-sample dims → ``(chain, draw)``."""
    return sum(ds[v].sum([d for d in ds[v].dims if d not in SAMPLE_DIMS]) for v in ds.data_vars)


def _weighted_means(post: xr.Dataset, log_w: xr.DataArray) -> xr.Dataset:
    w = np.exp(log_w - log_w.max())
    return (post * (w / w.sum())).sum(SAMPLE_DIMS)


def _mean_gradient(post: xr.Dataset, log_density: xr.DataArray, step: float = 0.01) -> xr.Dataset:
    """d E[q] / d log α of every quantity ``q`` under power-scaling of ``log_density`` (α = 1 ± step)."""
    lo, hi = (_weighted_means(post, log_density.azstats.power_scale_lw(alpha=a, dim=SAMPLE_DIMS))
              for a in (1 - step, 1 + step))
    return (hi - lo) / (np.log1p(step) - np.log1p(-step))


def _mean_shift(post: xr.Dataset, log_density: xr.DataArray, alpha: float) -> tuple[xr.Dataset, float]:
    """(E_α[q] − E[q], Pareto k̂) with the density raised to ``alpha`` (PSIS weights)."""
    # `psislw` takes the LOO convention (it smooths the negated argument: weights ∝ 1 / p(y_i | θ))
    log_w, khat = ((1.0 - alpha) * log_density).azstats.psislw(dim=SAMPLE_DIMS)
    return _weighted_means(post, log_w) - post.mean(SAMPLE_DIMS), float(khat)


def prior_sensitivity(tree: xr.DataTree, model, quantities: dict[str, xr.DataArray] | None = None,
                      threshold: float = THRESHOLD) -> dict:
    """Power-scaling sensitivity of the hyperparameters and of ``quantities``.

    Parameters
    ----------
    tree : the physics posterior (``posterior`` and ``log_likelihood`` groups).
    model : the PyMC model it was sampled from (`risk.bayes.physics.build_physics_model`).
    quantities : extra derived quantities, each an array with dims ``(chain, draw, ...)`` aligned with
        the posterior's draws (e.g. ``p_tr`` with dim ``scenario``).
    """
    import pymc as pm
    from arviz_stats import psense_summary

    if "log_likelihood" not in tree.children:
        raise ValueError("prior sensitivity needs the posterior's log_likelihood group")
    scaled = [v for v in TOP_LEVEL if v in model.named_vars and v in tree["posterior"]]
    log_prior = pm.stats.compute_log_prior(tree, model=model, var_names=scaled, extend_inferencedata=False,
                                           progressbar=False)
    post = tree["posterior"].to_dataset()[scaled]
    for name, da in (quantities or {}).items():
        post[name] = da
    data = xr.DataTree.from_dict({"posterior": post, "log_likelihood": tree["log_likelihood"].to_dataset(),
                                  "log_prior": log_prior})
    table = psense_summary(data, var_names=list(post.data_vars), threshold=threshold, round_to=4)
    log_prior_sum = _summed(log_prior.to_dataset() if isinstance(log_prior, xr.DataTree) else log_prior)
    log_lik_sum = _summed(tree["log_likelihood"].to_dataset())
    absolute = {"mean": post.mean(SAMPLE_DIMS), "sd": post.std(SAMPLE_DIMS),
                "prior_mean_gradient": _mean_gradient(post, log_prior_sum),
                "likelihood_mean_gradient": _mean_gradient(post, log_lik_sum)}
    weight = {}
    for key, alpha in (("halved", 0.5), ("doubled", 2.0)):
        shift, khat = _mean_shift(post, log_prior_sum, alpha)
        weight[key] = {"alpha": alpha, "pareto_khat": round(khat, 3), "reliable": bool(khat <= KHAT_MAX)}
        if khat <= KHAT_MAX:
            absolute[f"shift_prior_{key}"] = shift
    flat = {name: _flatten(ds) for name, ds in absolute.items()}
    rows = []
    for idx, r in table.iterrows():
        row = {"quantity": str(idx), "prior": float(r["prior"]), "likelihood": float(r["likelihood"]),
               "diagnosis": "ok" if str(r["diagnosis"]).strip() in ("✓", "") else str(r["diagnosis"])}
        row.update({name: flat[name].get(str(idx)) for name in flat})
        row["prior_dominated"] = (None if row["prior_mean_gradient"] is None else
                                  abs(row["prior_mean_gradient"]) > abs(row["likelihood_mean_gradient"]))
        for key in ("halved", "doubled"):
            row.setdefault(f"shift_prior_{key}", None)
        rows.append(row)
    return {"method": "power-scaling of the top-level priors and of the likelihood (cumulative Jensen–Shannon "
                      "distance gradient, PSIS weights, no refit); absolute changes of each posterior mean",
            "reference": "Kallioinen, Paananen, Bürkner & Vehtari, Statistics and Computing 34 (2024) 57",
            "threshold": threshold, "power_scaled_priors": scaled, "prior_weight": weight, "rows": rows}


def _flatten(ds: xr.Dataset) -> dict[str, float]:
    """``{"name[label, …]": value}`` in `psense_summary`'s row labels (``name`` alone for a scalar)."""
    out = {}
    for name, da in ds.data_vars.items():
        if da.ndim == 0:
            out[str(name)] = float(da)
            continue
        stacked = da.stack(_i=da.dims)
        for i in range(stacked.sizes["_i"]):
            labels = [str(stacked[d].values[i]) for d in da.dims]
            out[f"{name}[{', '.join(labels)}]"] = float(stacked.values[i])
    return out


def write_prior_sensitivity(result: dict, path: str | Path) -> None:
    """Write ``prior_sensitivity.json`` atomically."""
    path = Path(path)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, default=float))
    tmp.replace(path)


def per_draw(values: np.ndarray, tree: xr.DataTree, dim: str, labels) -> xr.DataArray:
    """``(n_label, chain·draw)`` values in `risk.bayes.sampling.stack_draws` order → DataArray
    ``(chain, draw, dim)``."""
    post = tree["posterior"]
    c, d = post.sizes["chain"], post.sizes["draw"]
    arr = np.asarray(values, float).reshape(len(labels), c, d).transpose(1, 2, 0)
    return xr.DataArray(arr, dims=("chain", "draw", dim), coords={"chain": post["chain"].values,
                                                                     "draw": post["draw"].values, dim: list(labels)})
