"""Which test to run next: expected information gain of candidate abuse tests (→ ``next_test.nc``).

A candidate test d (cell family × conditions) tested on ``n`` new cells gives ``y`` runaways,
``y | s ~ Binomial(n, P_d^s)``, where ``P_d^s`` is the P(TR) of a new cell under epistemic draw s
(posterior or prior draw; the cell-to-cell spread is already averaged into ``P_d^s``). Over the S
equally weighted draws, exactly (y takes only n + 1 values, no nested Monte Carlo):

    eig_d         = I(y; s) = H[y] − E_s H[y | s]                       [nat]
    sd_after_{d,k} = sqrt( E_y Var_s[P_k^s | y] )                        (scenario k, preposterior)
    variance_reduction_d = 1 − Σ_k E_y Var[P_k | y] / Σ_k Var[P_k]

``eig`` is the information about the uncertain physics (Lindley 1956; for n = 1 it is the BALD
score of Houlsby et al. 2011); ``variance_reduction`` is the goal-oriented criterion: how much the
test is expected to narrow the reported P(TR) of the study's scenarios.
"""
from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr
from scipy import special, stats


def _entropy(probs: np.ndarray, axis: int) -> np.ndarray:
    return -np.sum(special.xlogy(probs, probs), axis=axis)


def expected_information(p_candidates: np.ndarray, p_scenarios: np.ndarray, *, n_cells: int = 1) -> dict[str, np.ndarray]:
    """EIG and preposterior spread for candidate tests.

    Parameters
    ----------
    p_candidates : ``(n_candidate, S)`` P(TR) of a new cell under each candidate test, per epistemic draw.
    p_scenarios : ``(n_scenario, S)`` P(TR) of each reported scenario per draw (same draws).
    n_cells : cells tested under the candidate conditions.

    Returns
    -------
    dict with ``eig`` ``(n_candidate,)`` [nat], ``sd_after`` ``(n_candidate, n_scenario)``,
    ``sd_before`` ``(n_scenario,)`` and ``variance_reduction`` ``(n_candidate,)`` [1].
    """
    pc = np.clip(np.asarray(p_candidates, float), 0.0, 1.0)
    ps = np.asarray(p_scenarios, float)
    if pc.ndim != 2 or ps.ndim != 2 or pc.shape[1] != ps.shape[1]:
        raise ValueError(f"need (n_candidate, S) and (n_scenario, S) with the same S; got {pc.shape}, {ps.shape}")
    y = np.arange(n_cells + 1)
    lik = stats.binom.pmf(y[None, None, :], n_cells, pc[:, :, None])  # (cand, S, y)
    marginal = lik.mean(axis=1)                                        # (cand, y)
    eig = _entropy(marginal, axis=1) - _entropy(lik, axis=2).mean(axis=1)

    # E_y Var[P_k | y] = Σ_y p(y) Var_w(P_k) with weights w_s ∝ p(y | s)
    m1 = np.einsum("csy,ks->cyk", lik, ps) / ps.shape[1]               # p(y) E[P_k | y]
    m2 = np.einsum("csy,ks->cyk", lik, ps**2) / ps.shape[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        cond_var = np.where(marginal[..., None] > 0, m2 / marginal[..., None] - (m1 / marginal[..., None]) ** 2, 0.0)
    var_after = np.einsum("cy,cyk->ck", marginal, np.clip(cond_var, 0.0, None))
    var_before = ps.var(axis=1)
    total = var_before.sum()
    reduction = 1.0 - var_after.sum(axis=1) / total if total > 0 else np.zeros(len(pc))
    return {"eig": np.clip(eig, 0.0, None), "sd_after": np.sqrt(var_after), "sd_before": np.sqrt(var_before),
            "variance_reduction": reduction}


def candidate_grid(ranges: Mapping[str, float | tuple[float, float]], condition_names: Sequence[str],
                   condition_default: Sequence[float], *, points: int = 5) -> tuple[np.ndarray, list[dict[str, float]]]:
    """Candidate test conditions: a ``points``-level grid over each ranged condition of the study.

    Returns the decoder condition vectors ``(n_candidate, n_cond)`` (SI) and, per candidate, the
    varied conditions as ``{name: value}``.
    """
    axes = {n: np.linspace(*v, points) for n, v in ranges.items() if isinstance(v, tuple) and n in condition_names}
    fixed = {n: float(v) for n, v in ranges.items() if not isinstance(v, tuple)}
    vectors, labels = [], []
    for combo in itertools.product(*axes.values()):
        varied = dict(zip(axes, map(float, combo)))
        given = {**fixed, **varied}
        vectors.append([given.get(n, d) for n, d in zip(condition_names, condition_default)])
        labels.append(varied)
    return np.asarray(vectors, float).reshape(len(vectors), len(condition_names)), labels


def next_test_dataset(info: Mapping[str, np.ndarray], labels: Sequence[Mapping[str, float]], families: Sequence[str],
                      scenario_names: Sequence[str], condition_units: Mapping[str, str], *, n_cells: int,
                      basis: str) -> xr.Dataset:
    """Ranked candidate tests as a Dataset (dim ``candidate``, sorted by decreasing variance reduction)."""
    order = np.argsort(-info["variance_reduction"], kind="stable")
    cond_names = sorted({k for lab in labels for k in lab})
    ds = xr.Dataset(
        {
            "eig": ("candidate", info["eig"][order], {"units": "nat", "long_name": "expected information gain about the physics"}),
            "variance_reduction": ("candidate", info["variance_reduction"][order],
                                   {"units": "1", "long_name": "expected fractional reduction of the scenarios' P(TR) variance"}),
            "p_tr_sd_after": (("candidate", "scenario"), info["sd_after"][order],
                              {"units": "1", "long_name": "expected posterior sd of P(TR) after the test"}),
            "p_tr_sd_before": ("scenario", info["sd_before"], {"units": "1", "long_name": "sd of P(TR) now"}),
            "cell_family": ("candidate", np.asarray(families, dtype=object)[order].astype(str)),
            **{n: ("candidate", np.array([labels[i].get(n, np.nan) for i in order]), {"units": condition_units.get(n, "")})
               for n in cond_names},
        },
        coords={"candidate": np.arange(len(order)), "scenario": list(scenario_names)},
        attrs={"n_cells_per_test": n_cells, "basis": basis,
               "method": "exact preposterior analysis of a Binomial(n, P(TR)) outcome over epistemic draws"},
    )
    return ds
