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

The quantities: the hyperparameters and, what a user acts on, each scenario's P(TR) per draw.
Layout::

    {"method", "reference", "threshold", "power_scaled_priors": [...],
     "rows": [{"quantity", "prior", "likelihood", "diagnosis"}]}
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
    rows = [{"quantity": str(idx), "prior": float(r["prior"]), "likelihood": float(r["likelihood"]),
             "diagnosis": "ok" if str(r["diagnosis"]).strip() in ("✓", "") else str(r["diagnosis"])}
            for idx, r in table.iterrows()]
    return {"method": "power-scaling of the top-level priors and of the likelihood (cumulative Jensen–Shannon "
                      "distance gradient, PSIS weights, no refit)",
            "reference": "Kallioinen, Paananen, Bürkner & Vehtari, Statistics and Computing 34 (2024) 57",
            "threshold": threshold, "power_scaled_priors": scaled, "rows": rows}


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
