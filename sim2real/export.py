"""The frozen decoder re-expressed as pure functions of numpy weights, in JAX and in PyTensor.

Contract (docs/contracts.md "Frozen decoder"): ``load_decoder(model_dir) -> FrozenDecoder`` whose
``jax_apply(u, c)`` and ``pytensor_apply(u, c)`` return
``dict(mean=(..., n_obs), log_scale=(..., n_obs), logit_runaway=(...,))`` in the normalised observable
space, batched over leading dims; ``u`` is the unconstrained z-scored parameter vector and ``c`` the
conditions in SI units (normalised inside). The torch module is frozen in float64; PyTensor runs in
float64 and JAX in its default float (float64 under ``jax.enable_x64``, as NumPyro's NUTS uses it):
in float64 all three agree within 1e-5 (measured ~1e-12); JAX in float32 agrees to float32 rounding.

The graph, for depth ``D`` (``silu(a) = a · sigmoid(a)``)::

    h0 = [u, (c − cond_loc) / cond_scale]
    h_{k+1} = silu(h_k @ W_k.T + b_k),                         k < D
    mean = (h_D @ Wcoef.T + bcoef) @ basis + basis_offset
    log_scale = (h_D @ Wchan.T + bchan) @ expand + log_scale_bias
    logit_runaway = h_D @ Wrun.T + brun + h0 @ Wskip.T      (Wskip: linear skip; 0 in older models)

and, where the model has a Gaussian-process emulator of its scalar observables (``gp_*`` weights,
`sim2real.gp.gp_replace`), their mean and log scale come from it instead of the MLP's heads.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np


def _graph(w: Mapping[str, np.ndarray], depth: int, xp, cat, silu) -> Callable:
    from sim2real.gp import GP_KEYS, gp_replace

    gp = {k: w[k] for k in GP_KEYS} if "gp_alpha" in w else None

    def apply(u, c):
        cn = (c - w["cond_loc"]) / w["cond_scale"]
        h = h0 = cat(u, cn)
        for i in range(depth):
            h = silu(h @ w[f"body{i}_w"].T + w[f"body{i}_b"])
        mean = (h @ w["coef_w"].T + w["coef_b"]) @ w["basis"] + w["basis_offset"]
        log_scale = (h @ w["chan_w"].T + w["chan_b"]) @ w["expand"] + w["log_scale_bias"]
        if gp is not None:
            mean, log_scale = gp_replace(gp, h0, mean, log_scale, xp)
        return {
            "mean": mean, "log_scale": log_scale,
            "logit_runaway": (h @ w["runaway_w"].T + w["runaway_b"]
                              + (h0 @ w["runaway_skip_w"].T if "runaway_skip_w" in w else 0.0))[..., 0],
        }
    return apply


def jax_decoder(weights: Mapping[str, np.ndarray], depth: int, dtype=None) -> Callable:
    """Pure JAX ``apply(u, c)``; weights become constants of ``dtype`` (default: JAX's default float).

    Batched over leading dims of ``u`` (..., n_par) and ``c`` (..., n_cond) (broadcast against each other).
    """
    import jax
    import jax.numpy as jnp

    dt = np.dtype(dtype or jnp.zeros(()).dtype)
    # numpy constants (never jax arrays): safe to build inside a trace and to reuse across traces
    w = {k: np.asarray(v, dtype=dt) for k, v in weights.items()}

    def cat(u, cn):
        u, cn = jnp.asarray(u, dt), jnp.asarray(cn, dt)
        shape = jnp.broadcast_shapes(u.shape[:-1], cn.shape[:-1])
        return jnp.concatenate([jnp.broadcast_to(u, shape + u.shape[-1:]),
                                jnp.broadcast_to(cn, shape + cn.shape[-1:])], axis=-1)

    g = _graph(w, depth, jnp, cat, jax.nn.silu)
    return lambda u, c: g(jnp.asarray(u, dt), jnp.asarray(c, dt))


def pytensor_decoder(weights: Mapping[str, np.ndarray], depth: int) -> Callable:
    """The same graph in PyTensor: symbolic (or numpy) ``u`` (..., n_par), ``c`` (..., n_cond) → dict of tensors."""
    import pytensor.tensor as pt

    w = {k: pt.as_tensor_variable(np.asarray(v, dtype=np.float64)) for k, v in weights.items()}

    def cat(u, cn):
        u, cn = pt.as_tensor_variable(u), pt.as_tensor_variable(cn)
        # broadcast the leading dims against each other by adding zeros
        return pt.concatenate([u + pt.zeros_like(cn[..., :1]), cn + pt.zeros_like(u[..., :1])], axis=-1)

    return _graph(w, depth, pt, cat, lambda a: a * pt.sigmoid(a))


def load_decoder(model_dir):
    """The `FrozenDecoder` saved in ``model_dir`` (see `sim2real.io`)."""
    from sim2real.io import load_model
    return load_model(model_dir)
