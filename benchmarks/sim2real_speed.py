"""Decoder evaluations per second vs the simulator it replaces (OvenCell, tests/sim2real/oven.py).

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/sim2real_speed.py``
"""
from __future__ import annotations

import time

import numpy as np
import torch

from sim2real import DecoderConfig, FrozenDecoderCVAE
from tests.sim2real.oven import OvenCell, run_ensemble

torch.set_num_threads(1)
sim = OvenCell()
t0 = time.perf_counter()
ens = run_ensemble(sim, 300, seed=1)
sim_rate = 300 / (time.perf_counter() - t0)
dec = FrozenDecoderCVAE(sim, config=DecoderConfig(epochs=100)).append_simulations(ens).train()
rng = np.random.default_rng(0)
n = 10000
u, c = rng.normal(size=(n, 3)), np.column_stack([rng.uniform(420, 455, n), rng.uniform(0.2, 1, n)])
dec.torch_apply(u, c)
t0 = time.perf_counter()
for _ in range(5):
    dec.torch_apply(u, c)
torch_rate = 5 * n / (time.perf_counter() - t0)
import jax  # noqa: E402

with jax.enable_x64(True):
    f = jax.jit(dec.jax_apply)
    f(u, c)["mean"].block_until_ready()
    t0 = time.perf_counter()
    for _ in range(5):
        f(u, c)["mean"].block_until_ready()
    jax_rate = 5 * n / (time.perf_counter() - t0)
print(f"{'evaluator':<28}{'evals/s':>14}{'ratio vs simulator':>20}")
for name, r in [("OvenCell simulator (LSODA)", sim_rate), ("decoder torch float64", torch_rate), ("decoder JAX jit float64", jax_rate)]:
    print(f"{name:<28}{r:>14.1f}{r / sim_rate:>20.0f}")
