"""Decoder evaluations per second vs the simulator it replaces: the mesh-free coupled indentation chain.

The simulator's rate is its mean wall time per run in the cached 128-run ensemble of ``indentation_lumped``
over the default study's conditions (benchmarks/ensembles.py; measured inside the ensemble runner's worker);
the decoder, trained on that ensemble (the default study's observables: force at short onset, voltage drop,
log temperature-rise rate, and the runaway flag), is timed on 10 000 (u, c) pairs per call. Prints a table and writes
``benchmarks/results/sim2real_speed.json``.

Run: ``nice -n 19 .venv/bin/python benchmarks/sim2real_speed.py``
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ensembles import INDENTATION, cached_ensemble  # noqa: E402
from record import write_result  # noqa: E402

from simulators.registry import load  # noqa: E402
from sim2real import DecoderConfig, FrozenDecoderCVAE  # noqa: E402

OBSERVABLES = ("force_short_onset", "voltage_drop", "temperature_rise_rate_log")
N_EVAL, REPEATS = 10_000, 5


def rate(f) -> float:
    """Evaluations per second of ``f()`` (one warm-up call, then `REPEATS` timed calls of `N_EVAL` each)."""
    f()
    t0 = time.perf_counter()
    for _ in range(REPEATS):
        f()
    return REPEATS * N_EVAL / (time.perf_counter() - t0)


def main() -> None:
    torch.set_num_threads(1)
    sim = load(INDENTATION["simulator"])()
    ens = cached_ensemble(**INDENTATION, n=128, seed=2)
    sim_rate = 1.0 / float(ens["wall_time"].mean())
    dec = FrozenDecoderCVAE(sim, observables=OBSERVABLES, config=DecoderConfig(epochs=100)) \
        .append_simulations(ens).train(generator=torch.Generator().manual_seed(0))
    rng = np.random.default_rng(0)
    (s_lo, s_hi), (q_lo, q_hi) = INDENTATION["conditions"]["soc"], INDENTATION["conditions"]["capacity_nominal"]
    u = rng.normal(size=(N_EVAL, len(sim.parameters)))
    c = np.column_stack([rng.uniform(s_lo, s_hi, N_EVAL), rng.uniform(q_lo, q_hi, N_EVAL)])
    torch_rate = rate(lambda: dec.torch_apply(u, c))
    import jax

    with jax.enable_x64(True):
        f = jax.jit(dec.jax_apply)
        jax_rate = rate(lambda: f(u, c)["mean"].block_until_ready())
    print(f"{'evaluator':<34}{'evals/s':>14}{'ratio vs simulator':>20}")
    rows = [("indentation_lumped (one core)", sim_rate), ("decoder torch float64", torch_rate),
            ("decoder JAX jit float64", jax_rate)]
    for name, r in rows:
        print(f"{name:<34}{r:>14.1f}{r / sim_rate:>20.0f}")
    write_result("sim2real_speed", {"n_eval": N_EVAL, "repeats": REPEATS,
                                    "rows": [{"evaluator": n, "evals_per_s": r, "ratio_vs_simulator": r / sim_rate}
                                             for n, r in rows]})


if __name__ == "__main__":
    main()
