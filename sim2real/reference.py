"""NUTS reference for the amortised encoder: the same per-test posterior, sampled exactly.

The encoder approximates, per test i, p(u | x_i, c_i) ∝ p(x_i | u, c_i) p(u) with the frozen decoder's
likelihood plus the learned discrepancy σ_d (`sim2real.encoder.EncoderFit.log_target`, likelihoods
"composite" and "diagonal") and the exact transformed prior in u (`sim2real.bridge.ThetaTransform`).
`nuts_reference` samples that target with NumPyro's NUTS — all tests in one run, as their posteriors are
independent — and `posterior_distance` compares two sets of draws per test and parameter.
"""
from __future__ import annotations

import math

import numpy as np

from sim2real.bridge import Batch, ThetaTransform
from sim2real.encoder import EncoderFit, feature_weights


def log_prior_u_jax(transform: ThetaTransform, u):
    """Exact log prior density of u in JAX, ``(..., n_par) → (...)`` (`ThetaTransform.log_prior_u`)."""
    import jax
    import jax.numpy as jnp

    y = u * jnp.asarray(transform.scale) + jnp.asarray(transform.loc)
    out = jnp.sum(jnp.log(jnp.asarray(transform.scale)))
    for i, p in enumerate(transform.priors):
        yi = y[..., i]
        if p.dist in ("uniform", "loguniform"):  # g(θ) uniform ⇒ y standard logistic
            out = out + jax.nn.log_sigmoid(yi) + jax.nn.log_sigmoid(-yi)
        elif p.dist in ("normal", "lognormal"):
            out = out - 0.5 * ((yi - p.mu) / p.sigma) ** 2 - math.log(p.sigma) - 0.5 * math.log(2 * math.pi)
        else:
            raise NotImplementedError(f"NUTS reference: prior {p.dist!r} of {transform.names[i]} not ported to JAX")
    return out


def _potential(fit: EncoderFit, b: Batch):
    """Negative log target of all tests of ``b`` (independent), u (n_test, n_par) → scalar."""
    import jax.numpy as jnp

    if fit.config.likelihood not in ("composite", "diagonal"):
        raise NotImplementedError(f"NUTS reference for likelihood {fit.config.likelihood!r}")
    dec = fit.decoder
    x, m, c = (np.asarray(t, dtype=np.float64) for t in (b.x, b.mask, b.c))
    mw = m * feature_weights(dec, fit.config.likelihood == "composite").numpy()
    y, ym = np.nan_to_num(np.asarray(b.y, np.float64)), np.asarray(b.y_mask, np.float64)
    extra = np.exp(2 * fit.log_sd_discrepancy.numpy())[dec.layout.channel_index()]

    def potential(u):
        out = dec.jax_apply(u, c)
        var = jnp.exp(2 * out["log_scale"]) + extra
        ll = -0.5 * jnp.sum(mw * ((x - out["mean"]) ** 2 / var + jnp.log(var) + math.log(2 * math.pi)))
        g = out["logit_runaway"]
        ll = ll + jnp.sum(ym * (y * g - jnp.logaddexp(0.0, g)))
        return -(ll + jnp.sum(log_prior_u_jax(dec.transform, u)))

    return potential


def nuts_reference(fit: EncoderFit, real=None, *, draws: int = 1000, warmup: int = 1000, chains: int = 2,
                   seed: int = 0, init: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """NUTS draws of every test's posterior: ``(u (n_test, chains·draws, n_par), diagnostics)``.

    Initialised at the encoder's means (the amortised warm start), or at ``init`` — ``(n_test, n_par)`` or
    ``(chains, n_test, n_par)`` in u; the chains run in parallel when JAX shows a device per chain (importing
    `risk` asks XLA for four host devices), else one after the other. Diagnostics
    ``{"rhat_max", "ess_bulk_min", "divergences"}`` over all tests and parameters (ArviZ).
    """
    import arviz as az
    import jax
    import numpyro
    from numpyro.infer import MCMC, NUTS

    numpyro.enable_x64()
    b = fit.batch_of(real)
    loc, _ = fit.encode(b)
    kernel = NUTS(potential_fn=_potential(fit, b), target_accept_prob=0.9)
    mcmc = MCMC(kernel, num_warmup=warmup, num_samples=draws, num_chains=chains,
                chain_method="parallel" if jax.local_device_count() >= chains else "sequential",
                progress_bar=False)
    start = np.asarray(loc if init is None else init, dtype=float)
    init = np.broadcast_to(start, (chains, *loc.shape)).copy()
    mcmc.run(jax.random.PRNGKey(seed), init_params=init, extra_fields=("diverging",))
    u = np.asarray(mcmc.get_samples(group_by_chain=True))  # (chain, draw, n, p)
    ds = az.convert_to_datatree({"u": u})
    diag = {"rhat_max": float(az.rhat(ds)["u"].max()), "ess_bulk_min": float(az.ess(ds, method="bulk")["u"].min()),
            "divergences": int(np.asarray(mcmc.get_extra_fields()["diverging"]).sum())}
    return u.reshape(-1, *u.shape[2:]).transpose(1, 0, 2), diag


def posterior_distance(draws: np.ndarray, reference: np.ndarray) -> dict[str, np.ndarray]:
    """Per test and parameter, in units of the reference sd: ``(n_test, n_par)`` arrays

    ``mean_shift`` = |mean − mean_ref| / sd_ref, ``sd_ratio`` = sd / sd_ref, ``w1`` = the 1-Wasserstein
    distance of the marginals / sd_ref (quantile form). ``draws``, ``reference``: (n_test, n_draws, n_par).
    """
    sd_ref = reference.std(1)
    q = (np.arange(200) + 0.5) / 200
    qa, qb = np.quantile(draws, q, axis=1), np.quantile(reference, q, axis=1)  # (200, n, p)
    return {"mean_shift": np.abs(draws.mean(1) - reference.mean(1)) / sd_ref,
            "sd_ratio": draws.std(1) / sd_ref,
            "w1": np.abs(qa - qb).mean(0) / sd_ref}

