"""Shapley effects of P(TR) for dependent Gaussian inputs, and grouped epistemic/aleatory indices.

The parameters of a new cell are correlated (``u ~ N(μ, L Lᵀ)``, the posterior population of cells), so
Sobol indices, which assume independent inputs, do not apply. Shapley effects do (Owen 2014, SIAM/ASA
JUQ 2, 245; Song, Nelson & Staum 2016, SIAM/ASA JUQ 4, 1060): with the cost of a subset J of the d
inputs

    c(J) = E[Var(Y | X_{−J})]          (c(∅) = 0, c({1..d}) = Var Y),

the Shapley effect of input i is

    Sh_i = Σ_{J ⊆ D∖{i}} |J|! (d − |J| − 1)! / d! · (c(J ∪ {i}) − c(J)),      Σ_i Sh_i = Var Y,

non-negative, and equal to the usual variance share β_i² σ_i² for independent linear inputs; a
correlated pair shares its variance (Owen & Prieur 2017, SIAM/ASA JUQ 5, 986; Iooss & Prieur 2019,
IJUQ 9, 493). `gaussian_shapley_effects` computes every c(J) (the exact-permutation form, for small d)
by the double-loop estimator of Song et al. (2016, Algorithm 1): ``n_outer`` draws of X_{−J}, ``n_inner``
draws of X_J from the *analytic* conditional Gaussian (Broto, Bachoc & Depecker 2020, SIAM/ASA JUQ 8,
693, Sect. 4), the unbiased inner sample variance averaged over the outer draws (``n_inner = 3`` is
Song et al.'s recommended choice). No Python library provides this for dependent inputs (SALib and
OpenTURNS 1.27 have Sobol indices for independent inputs only; the ``sensitivity`` R package has
``shapleyPermEx``), hence the code here.

`grouped_indices` splits the variance of P(TR) over the posterior and the cell-to-cell distribution
into two independent groups (posterior draw: epistemic; the cell's standard normal deviation:
aleatory) by the two-way crossed ANOVA of a draws × cells table (variance components: Searle, Casella &
McCulloch 1992, Variance Components, ch. 4): first-order and total Sobol indices of each group and their
Shapley effects (for two groups, the interaction is shared equally).
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations

import numpy as np

#: exact enumeration visits 2^d − 2 subsets; beyond this d use a random-permutation estimator instead
MAX_EXACT_DIM = 12


@dataclass(frozen=True)
class ShapleyResult:
    """Shapley effects ``effects (d,)`` in the units of Var Y, their Monte Carlo standard errors ``se (d,)``,
    ``variance`` = Var Y (= Σ effects), ``costs`` {subset (tuple) → c(J)} and ``calls`` of f."""

    effects: np.ndarray
    se: np.ndarray
    variance: float
    costs: dict
    calls: int

    @property
    def normalised(self) -> np.ndarray:
        """``effects / Var Y`` [1] (sums to 1; NaN when Y does not vary)."""
        return self.effects / self.variance if self.variance > 0 else np.full_like(self.effects, np.nan)


def _psd_sqrt(cov: np.ndarray) -> np.ndarray:
    """A with A Aᵀ = cov for a symmetric positive *semi*-definite cov (eigenvalues clipped at 0)."""
    w, v = np.linalg.eigh(0.5 * (cov + cov.T))
    return v * np.sqrt(np.clip(w, 0.0, None))


def gaussian_shapley_effects(f: Callable[[np.ndarray], np.ndarray], mean: np.ndarray, cov: np.ndarray, *, seed: int,
                             n_outer: int = 2000, n_inner: int = 3, n_var: int = 20000) -> ShapleyResult:
    """Shapley effects of ``Y = f(X)``, ``X ~ N(mean, cov)`` (cov may be singular), exact over subsets.

    Parameters
    ----------
    f : vectorised model ``(n, d) → (n,)``, e.g. u ↦ P(TR | u, scenario) [1].
    mean : ``(d,)``; cov : ``(d, d)`` positive semi-definite.
    seed : seed of every draw.
    n_outer, n_inner : outer draws of X_{−J} and inner draws of X_J | X_{−J} per subset J.
    n_var : draws for Var Y = c(D).

    Returns
    -------
    `ShapleyResult`; cost ``n_var + (2^d − 2) n_outer n_inner`` evaluations of f.

    Examples
    --------
    >>> r = gaussian_shapley_effects(lambda x: x @ [1.0, 2.0], np.zeros(2), np.eye(2), seed=0)
    >>> np.round(r.normalised, 1).tolist()
    [0.2, 0.8]
    """
    mean, cov = np.asarray(mean, float), np.asarray(cov, float)
    d = mean.size
    if cov.shape != (d, d):
        raise ValueError(f"cov has shape {cov.shape}, expected ({d}, {d}) for a mean of length {d}")
    if d > MAX_EXACT_DIM:
        raise ValueError(f"{d} inputs: exact Shapley enumeration visits 2^{d} subsets; group the inputs "
                         f"(at most {MAX_EXACT_DIM})")
    if n_inner < 2:
        raise ValueError("n_inner must be ≥ 2 (an inner sample variance needs two draws)")
    rng = np.random.default_rng(seed)
    root = _psd_sqrt(cov)

    def draw(n: int) -> np.ndarray:
        return mean + rng.standard_normal((n, d)) @ root.T

    y = np.asarray(f(draw(n_var)), dtype=float).ravel()
    variance = float(y.var(ddof=1))
    # standard error of the sample variance, sqrt((m4 − σ⁴(n−3)/(n−1)) / n)
    m4 = float(np.mean((y - y.mean()) ** 4))
    costs: dict[tuple, float] = {(): 0.0, tuple(range(d)): variance}
    cost_var: dict[tuple, float] = {(): 0.0, tuple(range(d)): max(m4 - variance**2 * (n_var - 3) / (n_var - 1), 0.0)
                                    / n_var}
    calls = n_var
    for k in range(1, d):  # every subset of size k at once: batched linear algebra, one f call per chunk
        J = np.array(list(combinations(range(d), k)))  # (m, k)
        R = np.array([[j for j in range(d) if j not in row] for row in J])  # (m, d − k)
        m = len(J)
        gain = cov[J[:, :, None], R[:, None, :]] @ np.linalg.pinv(cov[R[:, :, None], R[:, None, :]])  # (m, k, d−k)
        cond_cov = cov[J[:, :, None], J[:, None, :]] - gain @ cov[R[:, :, None], J[:, None, :]]
        w, v = np.linalg.eigh(0.5 * (cond_cov + np.swapaxes(cond_cov, 1, 2)))
        cond_root = v * np.sqrt(np.clip(w, 0.0, None))[:, None, :]  # (m, k, k)
        x_r = draw(m * n_outer).reshape(m, n_outer, d)  # X_{−J} from its marginal (the J columns are replaced)
        dev = np.take_along_axis(x_r, R[:, None, :], axis=2) - mean[R][:, None, :]
        cond_mean = mean[J][:, None, :] + dev @ np.swapaxes(gain, 1, 2)  # (m, n_outer, k)
        inner = rng.standard_normal((m, n_outer, n_inner, k)) @ np.swapaxes(cond_root, 1, 2)[:, None]
        x = np.repeat(x_r[:, :, None, :], n_inner, axis=2)
        np.put_along_axis(x, np.broadcast_to(J[:, None, None, :], inner.shape), cond_mean[:, :, None, :] + inner,
                          axis=3)
        yi = _evaluate(f, x.reshape(-1, d)).reshape(m, n_outer, n_inner)
        s2 = yi.var(axis=2, ddof=1)  # (m, n_outer)
        for row, c, c_var in zip(J, s2.mean(axis=1), s2.var(axis=1, ddof=1) / n_outer):
            costs[tuple(row)] = float(c)
            cost_var[tuple(row)] = float(c_var)
        calls += m * n_outer * n_inner
    effects, se = np.zeros(d), np.zeros(d)
    for i, (subsets, coef) in enumerate(_shapley_weights(d)):
        effects[i] = coef @ np.array([costs[J] for J in subsets])
        se[i] = math.sqrt((coef**2) @ np.array([cost_var[J] for J in subsets]))
    return ShapleyResult(effects, se, variance, costs, calls)


@functools.lru_cache(maxsize=None)
def _shapley_weights(d: int) -> list[tuple[list[tuple], np.ndarray]]:
    """Per input i: the subsets J and weights c_J with Sh_i = Σ_J c_J c(J), the Shapley weights
    k! (d − k − 1)! / d! of c(J ∪ {i}) − c(J) over the subsets J of the other inputs (computed once per d)."""
    out = []
    for i in range(d):
        coef: dict[tuple, float] = {}
        others = [j for j in range(d) if j != i]
        for k in range(d):
            w = math.factorial(k) * math.factorial(d - k - 1) / math.factorial(d)
            for J in combinations(others, k):
                with_i = tuple(sorted((*J, i)))
                coef[with_i] = coef.get(with_i, 0.0) + w
                coef[J] = coef.get(J, 0.0) - w
        out.append((list(coef), np.array(list(coef.values()))))
    return out


#: rows of one call of the model in `gaussian_shapley_effects` (the last chunk is padded to it: a jitted model
#: then compiles once)
CHUNK_ROWS = 1 << 16


def _evaluate(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """``f`` on the rows of ``x (n, d)`` in chunks of `CHUNK_ROWS` rows (the last padded by repeating a row)."""
    n = len(x)
    if n <= CHUNK_ROWS:
        return np.asarray(f(x), dtype=float).ravel()
    pad = -n % CHUNK_ROWS
    xp = np.concatenate([x, np.broadcast_to(x[-1], (pad, x.shape[1]))]) if pad else x
    return np.concatenate([np.asarray(f(xp[i:i + CHUNK_ROWS]), dtype=float).ravel()
                           for i in range(0, len(xp), CHUNK_ROWS)])[:n]


def grouped_indices(y: np.ndarray) -> dict[str, np.ndarray]:
    """Sobol and Shapley indices of two independent input groups from a crossed table ``y (n_a, n_b)``.

    Row ``a`` is a draw of the first group (posterior draw: epistemic), column ``b`` one of the second
    (the cell's standard normal deviation, the same across rows: aleatory), so ``y = m + α_a + β_b + γ_ab``
    (Hoeffding/ANOVA). The unbiased variance components from the mean squares,
    ``σ_α² = (MS_rows − MS_res)/n_b``, ``σ_β² = (MS_cols − MS_res)/n_a``, ``σ_γ² = MS_res`` (clipped at 0),
    give (groups in the order rows, columns)

    ``S1 = (σ_α², σ_β²)/V``, ``ST = (σ_α² + σ_γ², σ_β² + σ_γ²)/V``,
    ``shapley = (σ_α² + σ_γ²/2, σ_β² + σ_γ²/2)/V``

    with ``V = σ_α² + σ_β² + σ_γ²`` [units of y²] also returned (``variance``).
    """
    y = np.asarray(y, dtype=float)
    n_a, n_b = y.shape
    if n_a < 2 or n_b < 2:
        raise ValueError(f"grouped_indices needs at least a 2 × 2 table, got {y.shape}")
    m = y.mean()
    ra, cb = y.mean(axis=1), y.mean(axis=0)
    ms_rows = n_b * np.sum((ra - m) ** 2) / (n_a - 1)
    ms_cols = n_a * np.sum((cb - m) ** 2) / (n_b - 1)
    ms_res = np.sum((y - ra[:, None] - cb[None, :] + m) ** 2) / ((n_a - 1) * (n_b - 1))
    va, vb, vg = max((ms_rows - ms_res) / n_b, 0.0), max((ms_cols - ms_res) / n_a, 0.0), max(ms_res, 0.0)
    v = va + vb + vg
    if v <= 0:
        nan = np.full(2, np.nan)
        return {"S1": nan, "ST": nan, "shapley": nan, "variance": 0.0}
    return {"S1": np.array([va, vb]) / v, "ST": np.array([va + vg, vb + vg]) / v,
            "shapley": np.array([va + vg / 2, vb + vg / 2]) / v, "variance": float(v)}
