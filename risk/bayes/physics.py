"""The calibrated physics model: fit on real tests, predict hazard levels of new cells and new tests.

One place assembles what the calibrate, crossvalidate and predict stages share:

- `physics_setup` — prior moments in the decoder's ``u`` space and the data-informed subspace
  (`risk.bayes.subspace`) of a set of real tests;
- `fit_physics` — `risk.bayes.model.build_hierarchical_model` sampled with NumPyro NUTS;
- `predict_levels` — hazard-level probabilities ``(n_draw, n_tests, 7)`` of new cells under given
  conditions: a known family at its posterior location, an unknown one drawn from the population over
  families, the cell drawn from the family's cell-to-cell distribution, the directions the data do
  not inform drawn from the prior (per draw, epistemic).
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr
from scipy import special

from risk.bayes.model import CalibrationData, build_hierarchical_model, prior_moments_u
from risk.bayes.subspace import InformedSubspace, informed_subspace


@dataclass(frozen=True)
class PhysicsSetup:
    """Prior moments of ``u`` (``(n_param,)`` each) and the data-informed subspace."""

    prior_mean: np.ndarray
    prior_sd: np.ndarray
    subspace: InformedSubspace

    def attrs(self) -> dict[str, str]:
        """Posterior attrs that `predict_levels` and `risk.predict.scenarios` read back."""
        return {"subspace": self.subspace.to_json(), "prior_mean": json.dumps(self.prior_mean.tolist()),
                "prior_sd": json.dumps(self.prior_sd.tolist())}


def physics_setup(decoder, data: CalibrationData, priors: Sequence, *, seed: int, max_dim: int = 3,
                  n_prior: int = 256) -> PhysicsSetup:
    """Prior moments and informed subspace for ``data`` (its conditions, observed channels and which
    tests have an outcome — never the observed values or outcomes themselves)."""
    import jax

    mean, sd = prior_moments_u(list(priors), decoder.to_unconstrained, seed=seed)
    rng = np.random.default_rng(seed)
    theta = np.column_stack([p.sample(rng, n_prior) for p in priors])
    u = decoder.to_unconstrained(theta)
    has_outcome = np.zeros(len(data.test), bool)
    for x in (data.hazard_level, data.runaway):
        if x is not None:
            has_outcome |= np.isfinite(np.asarray(x, float))
    with jax.enable_x64(True):
        sub = informed_subspace(decoder.jax_apply, decoder.parameter_names, u, data.conditions,
                                np.isfinite(data.observables), has_outcome, anchor=mean, max_dim=max_dim)
    return PhysicsSetup(mean, sd, sub)


def build_physics_model(data: CalibrationData, decoder, setup: PhysicsSetup):
    """`build_hierarchical_model` with the decoder as surrogate, in ``setup``'s subspace."""
    return build_hierarchical_model(data, decoder.pytensor_apply, parameter_names=decoder.parameter_names,
                                    prior_mean=setup.prior_mean, prior_sd=setup.prior_sd,
                                    basis=setup.subspace.basis, anchor=setup.subspace.anchor)


def fit_physics(data: CalibrationData, decoder, setup: PhysicsSetup, *, seed: int, draws: int, tune: int,
                chains: int = 4, target_accept: float = 0.9, **sample_kw):
    """Sample the physics model (`risk.bayes.sampling.sample`, chains started from ADVI draws:
    `risk.bayes.sampling.advi_initial_points`); returns ``(tree, diagnostics)``.

    The tree's attrs carry ``setup.attrs()`` (subspace and prior moments) for prediction.
    """
    from risk.bayes.sampling import advi_initial_points, sample

    model = build_physics_model(data, decoder, setup)
    init = advi_initial_points(model, chains, seed=seed)
    return sample(model, seed=seed, draws=draws, tune=tune, chains=chains, target_accept=target_accept,
                  attrs=setup.attrs(), initvals=init, **sample_kw)


def _draws(post: xr.Dataset, var: str) -> np.ndarray:
    da = post[var]
    return np.asarray(da.stack(sample=("chain", "draw")).transpose("sample", ...).values)


def predict_levels(tree: xr.DataTree, logit_fn, families: Sequence[str], conditions: np.ndarray, *, seed: int,
                   n_cells: int = 32, max_draws: int | None = 1000) -> np.ndarray:
    """Hazard-level probabilities of a new cell per test: ``(n_draw, n_tests, 7)`` [1].

    Parameters
    ----------
    tree : posterior of the physics model, attrs from `PhysicsSetup`.
    logit_fn : ``(u (..., n_param), c (..., n_cond)) -> decoder logit (...)``.
    families : ``(n_tests,)`` cell family of each test; one not in the posterior's ``family`` coord is a
        new family (population over families).
    conditions : ``(n_tests, n_cond)`` decoder conditions [SI].
    n_cells : new cells per draw and test (cell-to-cell variation, averaged).
    """
    from risk.predict.scenarios import _uninformed_draws

    post = tree["posterior"].to_dataset()
    rng = np.random.default_rng(seed)
    mu_f, mu_pop = _draws(post, "mu_family"), _draws(post, "mu_pop")
    chol, fam_chol = _draws(post, "cell_chol"), _draws(post, "family_chol")
    scale = _draws(post, "link_scale") if "link_scale" in post else np.ones(mu_pop.shape[0])
    cut = _draws(post, "cutpoints")
    if max_draws is not None and mu_f.shape[0] > max_draws:
        keep = np.linspace(0, mu_f.shape[0] - 1, max_draws).astype(int)
        mu_f, mu_pop, chol, fam_chol, scale, cut = (x[keep] for x in (mu_f, mu_pop, chol, fam_chol, scale, cut))
    known = [str(f) for f in post["family"].values]
    S, P, k = chol.shape
    conditions = np.asarray(conditions, float)
    n = conditions.shape[0]
    rest = _uninformed_draws(tree, S, rng)
    new_family_loc = {}
    loc = np.empty((S, n, P))
    for i, f in enumerate(families):
        if f in known:
            loc[:, i] = mu_f[:, known.index(f)]
        else:  # one location per unseen family and draw, shared by its tests
            if f not in new_family_loc:
                new_family_loc[f] = mu_pop + np.einsum("spq,sq->sp", fam_chol, rng.standard_normal((S, k)))
            loc[:, i] = new_family_loc[f]
    z = rng.standard_normal((S, n, n_cells, k))
    u = (loc + rest[:, None, :])[:, :, None, :] + np.einsum("spq,sncq->sncp", chol, z)
    c = np.broadcast_to(conditions[None, :, None, :], (S, n, n_cells, conditions.shape[1]))
    eta = scale[:, None, None] * np.asarray(logit_fn(u, c), dtype=float)  # (S, n, cells)
    cdf = special.expit(cut[:, None, None, :] - eta[..., None])  # P(level ≤ j), j = 1..6
    cdf = np.concatenate([np.zeros((*cdf.shape[:-1], 1)), cdf, np.ones((*cdf.shape[:-1], 1))], axis=-1)
    return np.diff(cdf, axis=-1).mean(axis=2)  # (S, n, 7)


def p_tr_from_levels(p_level: np.ndarray, tr_level: int = 6) -> np.ndarray:
    """P(level ≥ ``tr_level``) from ``(..., 7)`` level probabilities."""
    return np.asarray(p_level)[..., tr_level - 1:].sum(axis=-1)

