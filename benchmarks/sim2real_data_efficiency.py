"""Parameter-recovery error vs the number of real-like tests: frozen-decoder cVAE vs a conventional cVAE.

- frozen-decoder cVAE: decoder on ``N_SIM`` simulations (frozen), encoder fitted by the ELBO on the N
  tests (their θ unknown to it), then applied (amortised) to 100 held-out tests;
- conventional cVAE (Sohn et al. 2015) trained on the N tests alone *with their true θ* (labels): an
  encoder q(z | u, x, c), a decoder p(u | z, x, c) with a 3-d latent z ~ N(0, I); prediction = mean
  over z draws; input x = masked normalised observables + masks + normalised conditions.
RMSE in u (prior-sd units, averaged over the 3 parameters) on the held-out tests; a prior-mean guess
scores ≈ 1.

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/sim2real_data_efficiency.py``
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from sim2real import DecoderConfig, EncoderConfig, FrozenDecoderCVAE, real_to_batch
from sim2real.validation import recovery_rmse
from tests.sim2real.oven import OvenCell, make_real, run_ensemble

torch.set_num_threads(1)
N_SIM, SIZES = 500, (5, 10, 20, 50, 200)
sim = OvenCell()
ens = run_ensemble(sim, N_SIM, seed=1)
pool = make_real(run_ensemble(sim, max(SIZES) + 100, seed=4), seed=5)
held = pool.isel(test=slice(max(SIZES), None))
dec = FrozenDecoderCVAE(sim, config=DecoderConfig(epochs=250)).append_simulations(ens).train()
lay = dec.layout
u_held = dec.to_unconstrained(held["theta_true"].values)


def inputs(ds):
    b = real_to_batch(ds, lay)
    cn = (b.c.numpy() - np.asarray(lay.condition_loc)) / np.asarray(lay.condition_scale)
    return torch.as_tensor(np.column_stack([b.x.numpy(), b.mask.numpy(), cn, (b.y * b.y_mask).numpy(), b.y_mask.numpy()]),
                           dtype=torch.float32)


def conventional_cvae(s, u, g, steps=1500, width=64, zdim=3):
    d = s.shape[1]
    enc = nn.Sequential(nn.Linear(d + 3, width), nn.SiLU(), nn.Linear(width, 2 * zdim))
    de = nn.Sequential(nn.Linear(d + zdim, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, 6))
    with torch.no_grad():
        for p in list(enc.parameters()) + list(de.parameters()):
            p.copy_((torch.rand(p.shape, generator=g) * 2 - 1) / np.sqrt(p.shape[-1]))
    opt = torch.optim.Adam(list(enc.parameters()) + list(de.parameters()), lr=2e-3, weight_decay=1e-4)
    for _ in range(steps):
        mz, lz = enc(torch.cat([s, u], 1)).chunk(2, 1)
        z = mz + torch.exp(lz) * torch.randn(mz.shape, generator=g)
        mu, ls = de(torch.cat([s, z], 1)).chunk(2, 1)
        nll = (0.5 * ((u - mu) / torch.exp(ls)) ** 2 + ls).sum(1)
        kl = 0.5 * (mz**2 + torch.exp(2 * lz) - 1 - 2 * lz).sum(1)
        loss = (nll + kl).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    def predict(s_new, n=200):
        with torch.no_grad():
            z = torch.randn(n, s_new.shape[0], zdim, generator=g)
            mu, _ = de(torch.cat([s_new.expand(n, -1, -1), z], -1)).chunk(2, -1)
        return mu.mean(0).numpy()
    return predict


s_held = inputs(held)
print(f"simulations for the frozen decoder: {N_SIM}; held-out tests: {held.sizes['test']}")
print(f"{'n_tests':>8}{'frozen-decoder cVAE':>22}{'conventional cVAE':>20}")
for n in SIZES:
    train = pool.isel(test=slice(0, n))
    fit = dec.fit_encoder(train, EncoderConfig(restarts=1, pretrain_steps=600, steps=300),
                          generator=torch.Generator().manual_seed(n))
    loc, _ = fit.encode(held)
    r_frozen = recovery_rmse(u_held, loc).mean()
    u_tr = torch.as_tensor(dec.to_unconstrained(train["theta_true"].values), dtype=torch.float32)
    pred = conventional_cvae(inputs(train), u_tr, torch.Generator().manual_seed(n))
    r_conv = recovery_rmse(u_held, pred(s_held)).mean()
    print(f"{n:>8}{r_frozen:>22.3f}{r_conv:>20.3f}", flush=True)
