"""Which directions of the physical-parameter space the real tests inform (→ the calibrated subspace).

The frozen decoder maps the z-scored unconstrained parameters ``u`` (``n_param``) and a test's
conditions to its observables (Gaussian, sd ``σ_j = sqrt(exp(2 log_scale_j) + δ²)``) and to the runaway
logit ``g``. The expected Fisher information of one real test about ``u``,

    F(u, c) = Σ_j m_j ∇μ_j ∇μ_jᵀ / σ_j²  +  o · s²·p(1 − p) ∇g ∇gᵀ,

(``m_j`` = the test observes feature j, ``o`` = its outcome is known, ``p = sigmoid(s·g)``, ``s`` the
prior median of the sim-to-real link scale) is averaged over prior draws of ``u`` and over the real
tests' conditions. Its leading eigenvectors span the *data-informed* (likelihood-informed) subspace
(Cui, Martin, Marzouk et al., Inverse Problems 30 (2014) 114015; Zahm, Cui, Law, Spantini, Marzouk,
Math. Comp. 91 (2022) 1789; the gradient-outer-product form is Constantine's active subspace, SIAM 2015).

A direction is kept when the information of the real tests along it is at least that of the prior
(eigenvalue × number of tests ≥ 1, the prior precision of ``u`` being ≈ 1) and it carries part of the
cumulative ``energy`` of the spectrum, at most ``max_dim`` directions. The hierarchical model then
calibrates family locations and cell-to-cell variation in this subspace only; the complementary
directions are held at the prior mean (the anchor) in the fit and in prediction alike. They are *combined* into
the fitted family-level terms rather than integrated out: what they do to a family's runaway logit and
observables (heat transfer and kinetics shift the logit) is carried by the family offsets fitted at the anchor,
so a prediction that drew them from the prior again would count that uncertainty twice. Measured on the default
study (the same posterior, prediction only; 2026-12-06): integrated over the prior, grouped-CV TR log loss
0.184 / 0.190 / 0.400 (replicates / SOC bands / families out), onset-force 90 % interval width 6 260 N; held at
the anchor 0.167 / 0.158 / 0.397 and 5 420 N, coverage 1.0 both.
Why: with one or two observables and an ordinal outcome per test, eight per-test latent parameters
are not identified (two modes "high short resistance" vs "low current limit" explained the same
"no runaway"; R-hat 1.36 on the default study).
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class InformedSubspace:
    """Orthonormal basis of the data-informed directions of ``u`` and the anchor of the others.

    Attributes
    ----------
    parameter_names : ``(n_param,)`` names of the columns of ``u``.
    basis : ``(n_param, k)`` orthonormal columns (k ≥ 1), in decreasing information.
    anchor : ``(n_param,)`` the value of ``u`` in the complementary directions (the prior mean).
    eigenvalues : ``(n_param,)`` of the averaged Fisher information of one test [1/u²], decreasing.
    n_tests : tests whose information was averaged.
    """

    parameter_names: tuple[str, ...]
    basis: np.ndarray
    anchor: np.ndarray
    eigenvalues: np.ndarray
    n_tests: int

    @property
    def dim(self) -> int:
        return int(self.basis.shape[1])

    @property
    def complement(self) -> np.ndarray:
        """``(n_param, n_param)`` projector onto the directions held at the prior."""
        return np.eye(len(self.parameter_names)) - self.basis @ self.basis.T

    def to_u(self, a: np.ndarray) -> np.ndarray:
        """Subspace coordinates ``a (..., k)`` → ``u (..., n_param)`` (complement at the anchor)."""
        return self.anchor + np.asarray(a) @ self.basis.T

    def to_json(self) -> str:
        return json.dumps({"parameter_names": list(self.parameter_names), "basis": self.basis.tolist(),
                           "anchor": self.anchor.tolist(), "eigenvalues": self.eigenvalues.tolist(),
                           "n_tests": self.n_tests})

    @classmethod
    def from_json(cls, text: str) -> "InformedSubspace":
        d = json.loads(text)
        return cls(tuple(d["parameter_names"]), np.asarray(d["basis"], float), np.asarray(d["anchor"], float),
                   np.asarray(d["eigenvalues"], float), int(d["n_tests"]))

    @classmethod
    def full(cls, parameter_names, anchor: np.ndarray) -> "InformedSubspace":
        """Every direction informed (the identity basis)."""
        n = len(parameter_names)
        return cls(tuple(parameter_names), np.eye(n), np.asarray(anchor, float), np.ones(n), 0)

    def table(self) -> list[dict]:
        """Per direction: information per test and across tests, and its loadings on the parameters."""
        rows = []
        for j in range(self.dim):
            rows.append({"direction": f"d{j + 1}", "fisher_per_test": float(self.eigenvalues[j]),
                         "fisher_all_tests": float(self.eigenvalues[j] * self.n_tests),
                         "loadings": dict(zip(self.parameter_names, map(float, self.basis[:, j])))})
        return rows


def expected_fisher(jax_apply, u: np.ndarray, conditions: np.ndarray, observed: np.ndarray,
                    has_outcome: np.ndarray, *, discrepancy: float = 0.2, link_scale: float = 1.0) -> np.ndarray:
    """Average Fisher information of one test, ``(n_param, n_param)``.

    Parameters
    ----------
    jax_apply : the decoder's ``jax_apply(u, c) -> {mean, log_scale, logit_runaway}``.
    u : ``(n_draw, n_param)`` prior draws of ``u``.
    conditions : ``(n_tests, n_cond)`` the real tests' conditions [SI].
    observed : ``(n_tests, n_obs)`` bool, the test observes feature j.
    has_outcome : ``(n_tests,)`` bool, the test's hazard level / runaway flag is known.
    discrepancy : model-discrepancy sd added to the decoder's sd [normalised units].
    link_scale : scale of the sim-to-real link of the logit (prior median).
    """
    import jax
    import jax.numpy as jnp

    u = np.asarray(u, float)
    conditions = np.asarray(conditions, float)
    m = jnp.asarray(np.asarray(observed, float))
    o = jnp.asarray(np.asarray(has_outcome, float))

    def per_draw(ui):
        def f(v):
            out = jax_apply(jnp.broadcast_to(v, (conditions.shape[0], v.shape[0])), jnp.asarray(conditions))
            return out["mean"], out["logit_runaway"]

        (mean, g), (jm, jg) = f(ui), jax.jacfwd(f)(ui)  # jm (n_tests, n_obs, P), jg (n_tests, P)
        out = jax_apply(jnp.broadcast_to(ui, (conditions.shape[0], ui.shape[0])), jnp.asarray(conditions))
        var = jnp.exp(2.0 * out["log_scale"]) + discrepancy ** 2
        w = m / var
        f_obs = jnp.einsum("tj,tjp,tjq->pq", w, jm, jm)
        p = jax.nn.sigmoid(link_scale * g)
        f_out = jnp.einsum("t,tp,tq->pq", o * link_scale ** 2 * p * (1 - p), jg, jg)
        return (f_obs + f_out) / conditions.shape[0]

    fisher = jax.lax.map(per_draw, jnp.asarray(u))
    return np.asarray(fisher.mean(axis=0), dtype=float)


def informed_subspace(jax_apply, parameter_names, prior_draws_u: np.ndarray, conditions: np.ndarray,
                      observed: np.ndarray, has_outcome: np.ndarray, *, anchor: np.ndarray,
                      max_dim: int = 3, energy: float = 0.99, **fisher_kw) -> InformedSubspace:
    """The data-informed subspace of the real tests (see the module doc).

    Parameters
    ----------
    jax_apply, conditions, observed, has_outcome : see `expected_fisher`.
    parameter_names : ``(n_param,)``.
    prior_draws_u : ``(n_draw, n_param)`` prior draws of ``u`` (a few hundred suffice).
    anchor : ``(n_param,)`` prior mean of ``u`` (the complement is held there).
    max_dim : most directions kept; energy : cumulative share of the spectrum that suffices.
    """
    n_tests = int(np.asarray(conditions).shape[0])
    fisher = expected_fisher(jax_apply, prior_draws_u, conditions, observed, has_outcome, **fisher_kw)
    vals, vecs = np.linalg.eigh(0.5 * (fisher + fisher.T))
    order = np.argsort(vals)[::-1]
    vals, vecs = np.clip(vals[order], 0.0, None), vecs[:, order]
    share = np.cumsum(vals) / max(vals.sum(), 1e-300)
    k_energy = int(np.searchsorted(share, energy) + 1)
    k_info = int(np.sum(vals * n_tests >= 1.0))
    k = max(1, min(max_dim, k_energy, k_info if k_info else 1))
    basis = vecs[:, :k]
    basis = basis * np.where(basis[np.argmax(np.abs(basis), axis=0), np.arange(k)] < 0, -1.0, 1.0)  # sign: largest loading > 0
    return InformedSubspace(tuple(parameter_names), basis, np.asarray(anchor, float), vals, n_tests)
