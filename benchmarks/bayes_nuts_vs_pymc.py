"""NumPyro NUTS vs PyMC's default NUTS on the same hierarchical model: ESS per second.

Usage: python benchmarks/bayes_nuts_vs_pymc.py [--draws 500] [--tune 500]
Wall time includes compilation (JAX JIT for NumPyro, C for PyMC), as a user sees it.
"""
import argparse
import os
import sys
import time

os.environ.setdefault("PYTENSOR_FLAGS", "blas__ldflags=")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "risk", "bayes"))

import arviz as az  # noqa: E402
import numpy as np  # noqa: E402
import pymc as pm  # noqa: E402
import pytensor  # noqa: E402
from linear_test_model import A, NOISE, linear_surrogate  # noqa: E402

from risk.bayes import CalibrationData, build_hierarchical_model  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--tune", type=int, default=500)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    fam = np.repeat(["a", "b", "c"], 8)
    c = rng.uniform(0, 1, (fam.size, 1))
    u = rng.normal(0, 1, (fam.size, 2))
    y = u @ A.T + 0.5 * c + NOISE * rng.standard_normal((fam.size, 3))
    data = CalibrationData(test=np.arange(fam.size), family=fam, conditions=c, observables=y,
                           runaway=(rng.uniform(size=fam.size) < 0.5).astype(float))
    model = build_hierarchical_model(data, linear_surrogate, parameter_names=["k1", "k2"],
                                     prior_mean=np.zeros(2), prior_sd=np.ones(2))
    rows = []
    with model, pytensor.config.change_flags(blas__ldflags=""):
        for name, kw in [("numpyro", dict(nuts_sampler="numpyro", nuts={"chain_method": "vectorized"})),
                         ("pymc", dict(nuts_sampler="pymc", cores=2))]:
            t = time.perf_counter()
            tree = pm.sample(draws=args.draws, tune=args.tune, chains=4, random_seed=1, progressbar=False, **kw)
            wall = time.perf_counter() - t
            post = tree["posterior"].to_dataset()[["mu_pop", "mu_family", "cell_sd"]]
            ess = az.ess(post, method="bulk")
            ess_min = min(float(ess[v].min()) for v in ess.data_vars)
            rows.append((name, wall, ess_min, ess_min / wall))
    print(f"{'sampler':<10}{'wall [s]':>10}{'ESS_bulk min':>14}{'ESS/s':>10}")
    for r in rows:
        print(f"{r[0]:<10}{r[1]:>10.1f}{r[2]:>14.0f}{r[3]:>10.2f}")
    print(f"ratio numpyro/pymc ESS/s: {rows[0][3] / rows[1][3]:.2f}")


if __name__ == "__main__":
    main()
