"""Sim-to-real discrepancy report and a misspecification check for real tests.

Two per-test diagnostics:

- ``ppc_pvalue``: posterior predictive p-value of the discrepancy statistic
  ``T(x, u) = Σ_f m_f (x_f − μ_f(u, c))² / (σ_f(u, c)² + σ_d²)`` — ``P(T(x_rep, u) ≥ T(x, u))`` with
  u ~ q(u | x, c), x_rep ~ p(x | u, c) on the test's mask. Small values: the simulator (plus the learned
  discrepancy) cannot reproduce the test.
- ``support_pvalue``: squared Mahalanobis distance of the test's observable summary (masked ridge
  projections on the decoder's PCA bases, scalars) from the distribution of the same summary over the
  *simulations* (each simulation masked like the test), and the share of simulations at least as far.
  Small values: the test lies outside what the simulator produces at any θ.

A test is ``flagged`` when either p-value is below ``alpha``.
"""
from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from sim2real.bridge import ensemble_to_batch

DT = torch.float64


def misspecification_check(fit, ensemble: xr.Dataset | None = None, n_draws: int = 200, alpha: float = 0.01,
                           generator: torch.Generator | None = None) -> xr.Dataset:
    """Per-test misspecification diagnostics of an `EncoderFit` (see module docstring).

    Parameters
    ----------
    fit : `sim2real.encoder.EncoderFit`.
    ensemble : simulations (store layout) as the reference for ``support_pvalue``; default: draws from
        the frozen decoder's prior predictive (u ~ prior, the test's conditions).
    n_draws : posterior draws for the PPC.
    alpha : flag threshold.

    Returns
    -------
    xr.Dataset with dim ``test``: ``ppc_pvalue``, ``mahalanobis2``, ``support_pvalue``, ``flagged``;
    attr ``discrepancy_sd`` (JSON of σ_d per observable, SI).
    """
    import json

    g = generator if generator is not None else torch.Generator().manual_seed(fit.config.seed)
    dec, b = fit.decoder, fit.batch
    chan = torch.as_tensor(dec.layout.channel_index())
    extra = torch.exp(2 * fit.log_sd_discrepancy)[chan]
    x, m = b.x.to(DT), b.mask.to(DT)
    u = torch.as_tensor(fit.sample_u(n_draws, g))  # (n, S, p)
    with torch.no_grad():
        out = dec.torch_module(u, b.c.to(DT).unsqueeze(1).expand(-1, n_draws, -1))
        var = torch.exp(2 * out["log_scale"]) + extra
        t_obs = (((x.unsqueeze(1) - out["mean"]) ** 2 / var) * m.unsqueeze(1)).sum(-1)
        eps = torch.randn(out["mean"].shape, generator=g, dtype=DT)
        t_rep = ((eps**2) * m.unsqueeze(1)).sum(-1)
    ppc = (t_rep >= t_obs).double().mean(1).numpy()

    # reference summaries: simulations (or decoder prior-predictive draws), masked like each test
    summ = fit.summary
    if ensemble is not None:
        ref = ensemble_to_batch(ensemble, dec.layout, dec.transform)
        xr_, mr_ = ref.x.to(DT), ref.mask.to(DT)
    else:
        rng = np.random.default_rng(fit.config.seed)
        n_ref = 1000
        uu = torch.as_tensor(dec.transform.sample_u(n_ref, rng), dtype=DT)
        cc = b.c.to(DT)[torch.as_tensor(rng.integers(0, len(b), n_ref))]
        with torch.no_grad():
            o = dec.torch_module(uu, cc)
            xr_ = o["mean"] + torch.exp(o["log_scale"]) * torch.as_tensor(rng.standard_normal(o["mean"].shape))
        mr_ = torch.ones_like(xr_)
    d2, p_sup = np.empty(len(b)), np.empty(len(b))
    with torch.no_grad():
        for i in range(len(b)):
            mi = m[i:i + 1]
            s_ref = summ.observables(xr_ * mi, mr_ * mi).numpy()
            s_obs = summ.observables(x[i:i + 1], mi).numpy()[0]
            keep = s_ref.std(0) > 1e-9
            s_ref, s_obs = s_ref[:, keep], s_obs[keep]
            mu = s_ref.mean(0)
            cov = np.cov(s_ref, rowvar=False) + 1e-6 * np.eye(s_ref.shape[1])
            P = np.linalg.inv(np.atleast_2d(cov))
            r = s_ref - mu
            d_ref = np.einsum("ni,ij,nj->n", r, P, r)
            d2[i] = float((s_obs - mu) @ P @ (s_obs - mu))
            p_sup[i] = float(((d_ref >= d2[i]).sum() + 1) / (len(d_ref) + 1))
    return xr.Dataset(
        {"ppc_pvalue": ("test", ppc, {"units": "1", "long_name": "posterior predictive p-value of the discrepancy"}),
         "mahalanobis2": ("test", d2, {"units": "1", "long_name": "squared Mahalanobis distance from the simulations"}),
         "support_pvalue": ("test", p_sup, {"units": "1", "long_name": "share of simulations at least as far"}),
         "flagged": ("test", (ppc < alpha) | (p_sup < alpha), {"long_name": f"outside the simulator (p < {alpha})"})},
        coords={"test": b.ids}, attrs={"discrepancy_sd": json.dumps(fit.discrepancy), "alpha": alpha})
