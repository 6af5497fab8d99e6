"""Grouped cross-validation of probabilistic predictions, scored against a frequency baseline.

A model enters as a pair ``fit(train: DataFrame) -> state`` and
``predict(state, test: DataFrame) -> DataFrame`` (column ``p`` = predicted P(event), optional
``q05``/``q95`` interval columns). Folds leave out whole groups (`leave_groups_out`, e.g. every SOC
level in turn) or whole replicates (`leave_replicates_out`: fold r holds the r-th replicate of every
family × condition cell). Scores: log loss and Brier score of ``p`` against the 0/1 outcome, and the
coverage of ``[q05, q95]`` for a continuous outcome.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

Fit = Callable[[pd.DataFrame], object]
Predict = Callable[[object, pd.DataFrame], pd.DataFrame]


def leave_groups_out(df: pd.DataFrame, by: str | list[str], n_folds: int | None = None
                     ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Folds leaving out whole values of ``by``: yields ``(train_idx, test_idx)`` positions.

    ``n_folds`` None: one fold per value. Otherwise the values are dealt into ``n_folds`` folds (grouped
    K-fold, as scikit-learn's ``GroupKFold``: largest group first, each to the fold with the fewest tests so
    far), so every fold still leaves whole groups out while K fits replace one per group.
    """
    keys = (df[by].astype(str).agg("|".join, axis=1) if isinstance(by, list) else df[by].astype(str)).to_numpy()
    values = list(pd.unique(keys))
    if n_folds is None or n_folds >= len(values):
        folds = [[v] for v in values]
    else:
        sizes = {v: int((keys == v).sum()) for v in values}
        folds, load = [[] for _ in range(n_folds)], np.zeros(n_folds, int)
        for v in sorted(values, key=lambda v: (-sizes[v], values.index(v))):
            k = int(np.argmin(load))
            folds[k].append(v)
            load[k] += sizes[v]
    for group in folds:
        test = np.flatnonzero(np.isin(keys, group))
        yield np.setdiff1d(np.arange(len(df)), test), test


def leave_replicates_out(df: pd.DataFrame, cell: list[str], n_folds: int = 3, seed: int = 0
                         ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Folds of whole replicates: within each ``cell`` group (e.g. family × SOC) the tests are
    shuffled (seeded) and numbered; fold r holds replicate numbers ≡ r (mod ``n_folds``)."""
    rng = np.random.default_rng(seed)
    rep = np.empty(len(df), dtype=int)
    for _, idx in df.groupby(cell, sort=False).indices.items():
        rep[idx] = rng.permutation(len(idx))
    fold = rep % n_folds
    for r in range(n_folds):
        test = np.flatnonzero(fold == r)
        if test.size:
            yield np.flatnonzero(fold != r), test


def log_loss(y: np.ndarray, p: np.ndarray, eps: float = 1e-6) -> float:
    """Mean negative log likelihood of 0/1 outcomes ``y`` under probabilities ``p`` (clipped to [eps, 1-eps])."""
    p = np.clip(np.asarray(p, dtype=float), eps, 1 - eps)
    y = np.asarray(y, dtype=float)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def brier(y: np.ndarray, p: np.ndarray) -> float:
    """Mean squared error of probabilities."""
    return float(np.mean((np.asarray(p, dtype=float) - np.asarray(y, dtype=float)) ** 2))


def frequency_baseline(group: str, outcome: str, prior: tuple[float, float] = (0.5, 0.5)) -> tuple[Fit, Predict]:
    """Baseline predicting each group's training frequency of ``outcome`` (add-½ smoothed; unseen
    groups get the overall training frequency)."""
    a, b = prior

    def fit(train: pd.DataFrame):
        y = train[outcome].astype(float)
        g = train.assign(_y=y).groupby(group)["_y"].agg(["sum", "count"])
        return ((g["sum"] + a) / (g["count"] + a + b)).to_dict(), float((y.sum() + a) / (len(y) + a + b))

    def predict(state, test: pd.DataFrame) -> pd.DataFrame:
        table, overall = state
        return pd.DataFrame({"p": [table.get(k, overall) for k in test[group]]}, index=test.index)

    return fit, predict


@dataclass(frozen=True)
class CVResult:
    """Pooled out-of-fold predictions and scores."""

    predictions: pd.DataFrame  # input rows + columns p (and q05/q95), fold
    log_loss: float
    brier: float
    coverage: float | None  # fraction of `interval_target` inside [q05, q95]

    def summary(self) -> dict:
        return {"log_loss": self.log_loss, "brier": self.brier, "coverage": self.coverage,
                "n": int(len(self.predictions))}


def cross_validate(df: pd.DataFrame, folds, fit: Fit | None, predict: Predict, *, outcome: str | None = None,
                   interval_target: str | None = None,
                   fit_many: Callable[[list[pd.DataFrame]], list] | None = None) -> CVResult:
    """Run ``fit``/``predict`` over ``folds`` (iterable of ``(train_idx, test_idx)``).

    Parameters
    ----------
    df : one row per test.
    folds : e.g. `leave_groups_out(df, "soc")`.
    fit, predict : the model (see module doc); ``predict`` must not look at outcome columns.
    outcome : 0/1 column scored with log loss and Brier (None: skip).
    interval_target : continuous column whose coverage by ``[q05, q95]`` is reported.
    fit_many : instead of ``fit``, fits all the folds' training tables at once (e.g. one joint NUTS
        run) and returns their states in fold order.
    """
    folds = list(folds)
    if fit_many is not None:
        states = fit_many([df.iloc[tr] for tr, _ in folds])
    else:
        states = (fit(df.iloc[tr]) for tr, _ in folds)
    parts = []
    for k, ((tr, te), state) in enumerate(zip(folds, states)):
        pred = predict(state, df.iloc[te].drop(columns=[c for c in (outcome, interval_target) if c]))
        pred = pd.DataFrame(pred).set_axis(df.index[te])
        parts.append(df.iloc[te].join(pred.add_prefix("pred_")).assign(fold=k))
    res = pd.concat(parts)
    ll = br = float("nan")
    if outcome is not None:
        ok = res[outcome].notna()
        ll, br = log_loss(res.loc[ok, outcome], res.loc[ok, "pred_p"]), brier(res.loc[ok, outcome], res.loc[ok, "pred_p"])
    cov = None
    if interval_target is not None:
        ok = res[interval_target].notna()
        t = res.loc[ok, interval_target]
        cov = float(np.mean((t >= res.loc[ok, "pred_q05"]) & (t <= res.loc[ok, "pred_q95"])))
    return CVResult(res, ll, br, cov)
