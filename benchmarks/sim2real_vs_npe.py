"""Frozen-decoder cVAE vs sbi's NPE on the same simulation budget and the same real-like tests.

Task: OvenCell (tests/sim2real/oven.py), θ = (A, E_a, h); 80 real-like tests with known θ (1 K noise,
missing tails/channels). Both methods get ``N_SIM`` simulations. NPE (sbi, masked-input trick) trains
on the simulations passed through the same noise/missing-data process as the tests, in the unit cube
(θ → prior CDF) with a BoxUniform prior. Metrics in u (prior-sd units): RMSE of posterior means and
coverage of central 50 % / 90 % intervals (pooled over parameters).

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/sim2real_vs_npe.py [N_SIM]``
"""
from __future__ import annotations

import sys
import time

import numpy as np
import torch

from sim2real import DecoderConfig, EncoderConfig, FrozenDecoderCVAE, real_to_batch
from sim2real.validation import recovery_rmse, sample_coverage
from tests.sim2real.oven import OvenCell, make_real, run_ensemble

torch.set_num_threads(1)
N_SIM = int(sys.argv[1]) if len(sys.argv) > 1 else 500
sim = OvenCell()
ens = run_ensemble(sim, N_SIM, seed=1)
real = make_real(run_ensemble(sim, 80, seed=2), seed=3)
rows = []

t0 = time.perf_counter()
dec = FrozenDecoderCVAE(sim, config=DecoderConfig(epochs=250)).append_simulations(ens).train()
ut = dec.to_unconstrained(real["theta_true"].values)
for label, cfg, imp in [("frozen-dec. cVAE ELBO + IS", EncoderConfig(restarts=2, pretrain_steps=600, steps=300), True),
                        ("frozen-dec. cVAE ELBO, raw q", EncoderConfig(restarts=2, pretrain_steps=600, steps=300), False),
                        ("frozen-dec. cVAE init only", EncoderConfig(restarts=1, pretrain_steps=600, steps=0), False)]:
    t1 = time.perf_counter()
    fit = dec.fit_encoder(real, cfg, generator=torch.Generator().manual_seed(0))
    post = fit.posterior(1000, torch.Generator().manual_seed(1), importance=imp)
    draws = dec.to_unconstrained(post["theta"].values)
    cov = sample_coverage(ut, draws)
    rows.append((label, recovery_rmse(ut, draws.mean(1)), cov[0.5].mean(), cov[0.9].mean(), time.perf_counter() - t1))

from sbi.inference import NPE  # noqa: E402
from sbi.utils import BoxUniform  # noqa: E402

t1 = time.perf_counter()
lay = dec.layout
noisy = make_real(ens, seed=11)  # same noise / missing-data process as the tests
bs, br = real_to_batch(noisy, lay), real_to_batch(real, lay)


def npe_x(b):
    cn = (b.c.numpy() - np.asarray(lay.condition_loc)) / np.asarray(lay.condition_scale)
    return torch.as_tensor(np.column_stack([b.x.numpy(), b.mask.numpy(), cn]), dtype=torch.float32)


q01 = np.column_stack([p.prior.frozen.cdf(ens["theta"].values[:, i]) for i, p in enumerate(sim.parameters)])
prior = BoxUniform(low=torch.zeros(3), high=torch.ones(3))
torch.manual_seed(0)  # sbi draws its init / splits from torch's global RNG
inf = NPE(prior=prior)
inf.append_simulations(torch.as_tensor(q01, dtype=torch.float32), npe_x(bs)).train(max_num_epochs=300, show_train_summary=False)
print()
post = inf.build_posterior()
xr_ = npe_x(br)
d01 = np.stack([post.sample((1000,), x=xr_[i], show_progress_bars=False).numpy() for i in range(len(br))])
d01 = np.clip(d01, 1e-9, 1 - 1e-9)
th = np.stack([p.prior.ppf(d01[..., i]) for i, p in enumerate(sim.parameters)], -1)
du = dec.to_unconstrained(th)
cov = sample_coverage(ut, du)
rows.append(("sbi NPE (flow), masked input", recovery_rmse(ut, du.mean(1)), cov[0.5].mean(), cov[0.9].mean(), time.perf_counter() - t1))

print(f"simulations: {N_SIM}; real-like tests: 80; decoder NRMSE {dec.metrics['nrmse']}, AUC {dec.metrics['auc']:.3f}")
print(f"{'method':<34}{'RMSE_u A':>9}{'RMSE_u Ea':>10}{'RMSE_u h':>9}{'cov50':>7}{'cov90':>7}{'time s':>8}")
for name, r, c5, c9, t in rows:
    print(f"{name:<34}{r[0]:>9.3f}{r[1]:>10.3f}{r[2]:>9.3f}{c5:>7.2f}{c9:>7.2f}{t:>8.1f}")
