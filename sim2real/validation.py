"""Validation: decoder accuracy on held-out simulations, outcome-head scores, posterior calibration.

- `nrmse`: root-mean-square error of the decoder mean divided by the range (max − min) of the true values of
  that observable over the evaluation set (curves pooled over their grid), both on the observable's modelled
  scale (its ``transform``: log for a force or heat spanning decades, logit for a share, else SI) — the scale the
  decoder is trained and the likelihood is evaluated on; in SI units a log-modelled force's few largest values
  would dominate it,
- `r2`: coefficient of determination of the decoder mean on the same scale (1 − MSE / variance of the truth),
- `brier`, `auc`: of the runaway head,
- `interval_coverage`: share of true parameters inside central posterior intervals,
- `sbc_ranks` + `sbc_uniformity_pvalue`: simulation-based calibration ranks.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy import stats

from sim2real.bridge import Batch


def brier(p: np.ndarray, y: np.ndarray) -> float:
    """Mean squared error of probabilities ``p`` against outcomes ``y`` in {0, 1}."""
    return float(np.mean((np.asarray(p) - np.asarray(y)) ** 2))


def auc(score: np.ndarray, y: np.ndarray) -> float:
    """Area under the ROC curve (Mann–Whitney U with ties averaged); NaN with a single class."""
    score, y = np.asarray(score, float), np.asarray(y).astype(bool)
    n1, n0 = y.sum(), (~y).sum()
    if n1 == 0 or n0 == 0:
        return float("nan")
    r = stats.rankdata(score)
    return float((r[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def decoder_metrics(decoder, batch: Batch) -> dict:
    """Held-out metrics of a `FrozenDecoder` on simulations ``batch``.

    Returns ``{"nrmse": {observable: float}, "r2": {observable: float}, "brier": float, "auc": float,
    "coverage90": {observable: float}, "runaway_rate": float}``; NRMSE and R² as in the module docstring, on the
    modelled scale; ``coverage90`` is the share of observed values inside the decoder's central 90 % predictive
    interval.
    """
    out = decoder.torch_apply(batch.u.numpy(), batch.c.numpy())
    lay = decoder.layout
    x_n, mean_n = batch.x.double().numpy(), np.asarray(out["mean"], float)
    scale, offset = np.asarray(lay.scale), np.asarray(lay.offset)
    x, mean = x_n * scale + offset, mean_n * scale + offset  # modelled scale (before the inverse transform)
    m = batch.mask.numpy() > 0
    z = np.abs(mean_n - x_n) / np.exp(out["log_scale"])  # the predictive is Gaussian on the normalised scale
    nr, r2, cov = {}, {}, {}
    for ch, sl in lay.slices().items():
        xm, mm, mk, zm = x[:, sl], mean[:, sl], m[:, sl], z[:, sl]
        if not mk.any():
            continue
        t = xm[mk]
        mse = float(np.mean((mm[mk] - t) ** 2))
        nr[ch] = float(np.sqrt(mse) / (float(t.max() - t.min()) or 1.0))
        r2[ch] = float(1.0 - mse / t.var()) if t.var() > 0 else float("nan")
        cov[ch] = float(np.mean(zm[mk] <= 1.6448536))
    p = 1 / (1 + np.exp(-out["logit_runaway"]))
    ym = batch.y_mask.numpy() > 0
    y = batch.y.numpy()[ym]
    return {"nrmse": nr, "r2": r2, "coverage90": cov, "brier": brier(p[ym], y), "auc": auc(p[ym], y),
            "runaway_rate": float(y.mean()) if y.size else float("nan")}


def interval_coverage(u_true: np.ndarray, loc: np.ndarray, sd: np.ndarray, levels=(0.5, 0.9)) -> dict[float, np.ndarray]:
    """Coverage of central Gaussian intervals per parameter.

    u_true, loc, sd : (n, n_par). Returns ``{level: (n_par,) share of tests whose true value is inside}``.
    """
    z = np.abs(np.asarray(u_true) - np.asarray(loc)) / np.asarray(sd)
    return {lv: (z <= stats.norm.ppf(0.5 + lv / 2)).mean(0) for lv in levels}


def sample_coverage(u_true: np.ndarray, draws: np.ndarray, levels=(0.5, 0.9)) -> dict[float, np.ndarray]:
    """Coverage of central intervals from posterior draws ``(n, n_draw, n_par)`` (any posterior family)."""
    out = {}
    for lv in levels:
        lo, hi = np.quantile(draws, [0.5 - lv / 2, 0.5 + lv / 2], axis=1)
        out[lv] = ((u_true >= lo) & (u_true <= hi)).mean(0)
    return out


def sbc_ranks(u_true: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Rank of each true value among its posterior draws: (n, n_par) ints in 0..n_draw."""
    return (np.asarray(draws) < np.asarray(u_true)[:, None, :]).sum(1)


def sbc_uniformity_pvalue(ranks: np.ndarray, n_draw: int, bins: int = 10) -> np.ndarray:
    """χ² test p-value of rank uniformity per parameter, (n_par,)."""
    edges = np.linspace(0, n_draw + 1, bins + 1)
    return np.array([stats.chisquare(np.histogram(r, edges)[0]).pvalue for r in np.asarray(ranks).T])


def recovery_rmse(u_true: np.ndarray, u_hat: np.ndarray) -> np.ndarray:
    """Per-parameter RMSE of point estimates in u (prior sd units), (n_par,)."""
    return np.sqrt(np.mean((np.asarray(u_hat) - np.asarray(u_true)) ** 2, axis=0))


def as_numpy(t) -> np.ndarray:
    return t.detach().double().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
