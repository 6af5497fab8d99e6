"""NUTS samplers on the shipped physics model: ESS per second of NumPyro (chains in parallel, the default when JAX
shows a device per chain; chains vectorised) and of PyMC's own NUTS.

Every arm samples the same model — the default study's calibration model as the calibrate stage builds it
(`risk.bayes.physics`: frozen decoder of a run directory made by ``risk train studies/indentation_pouch.yaml``,
the real tests, the data-informed subspace, the ADVI start and mass matrix) — with the same draws and seed.
Wall time includes compilation (JAX JIT for NumPyro, C for PyMC), as a user sees it.

Prints a table (wall time, leapfrog steps, min bulk/tail ESS, ESS/s, R-hat, divergences) and writes
``benchmarks/results/bayes_nuts_vs_pymc.json``.

    python benchmarks/bayes_nuts_vs_pymc.py [--run runs/indentation_pouch] [--draws 500 --tune 500]
        [--arms numpyro_parallel,numpyro_vectorized,pymc]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("PYTENSOR_FLAGS", "blas__ldflags=")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import numpy as np  # noqa: E402
from calibration_parameterisation import _ensure_run  # noqa: E402
from record import write_result  # noqa: E402


def _pymc_fit(data, decoder, setup, *, seed: int, draws: int, tune: int, target_accept: float):
    """PyMC's default NUTS (C backend, jitter+adapt_diag, one process per core) from `fit_physics`'s ADVI start."""
    import pymc as pm

    from risk.bayes.diagnostics import summarize
    from risk.bayes.physics import build_physics_model
    from risk.bayes.sampling import advi_fit, advi_initial_points

    model = build_physics_model(data, decoder, setup)
    init = advi_initial_points(model, 4, seed=seed, fit=advi_fit(model, seed=seed))
    with model:
        tree = pm.sample(draws=draws, tune=tune, chains=4, cores=min(4, os.cpu_count() or 1), random_seed=seed,
                         initvals=init, target_accept=target_accept, progressbar=False,
                         compute_convergence_checks=False)
    return tree, summarize(tree, var_names=[v.name for v in model.free_RVs])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=REPO / "runs" / "indentation_pouch")
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--tune", type=int, default=500)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--arms", default="numpyro_parallel,numpyro_vectorized,pymc")
    args = ap.parse_args()
    _ensure_run(args.run)

    from risk.bayes.data import calibration_data
    from risk.bayes.physics import build_physics_model, centred_families, fit_physics, physics_setup
    from risk.bayes.sampling import advi_fit
    from risk.data import read_real
    from risk.study import load_study
    from sim2real import load_decoder

    study = load_study(REPO / "studies" / "indentation_pouch.yaml")
    decoder = load_decoder(args.run / "model")
    data = calibration_data(read_real(args.run / "real.nc"), decoder)
    priors = [study.priors()[n] for n in decoder.parameter_names]
    setup = physics_setup(decoder, data, priors, seed=args.seed, max_dim=study.inference.subspace_max_dim,
                          family_scale=study.inference.family_scale, family_logit=study.inference.family_logit_scale,
                          family_link=study.inference.family_link_scale)
    # the centring `fit_physics` would pick, decided once so that every arm samples the same parameterisation
    fit = advi_fit(build_physics_model(data, decoder, setup), seed=args.seed)
    setup = replace(setup, centred=centred_families(fit[1], data.families) or (False,) * setup.subspace.dim)
    ta = study.inference.target_accept
    rows = []
    for arm in args.arms.split(","):
        t0 = time.perf_counter()
        if arm.startswith("numpyro_"):
            tree, d = fit_physics(data, decoder, setup, seed=args.seed, draws=args.draws, tune=args.tune,
                                  target_accept=ta, chain_method=arm.removeprefix("numpyro_"),
                                  allow_bad_diagnostics=True, posterior_predictive=False, log_likelihood=False)
        elif arm == "pymc":
            tree, d = _pymc_fit(data, decoder, setup, seed=args.seed, draws=args.draws, tune=args.tune, target_accept=ta)
        else:
            raise SystemExit(f"unknown arm {arm!r}")
        wall = time.perf_counter() - t0
        stats = tree["sample_stats"]
        steps_var = "n_steps" if "n_steps" in stats else "tree_size" if "tree_size" in stats else None
        steps = float(stats[steps_var].mean()) if steps_var else float("nan")
        rows.append({"sampler": arm, "wall_s": wall, "leapfrog_steps_mean": steps, "ess_bulk_min": d.ess_bulk_min,
                     "ess_tail_min": d.ess_tail_min, "ess_bulk_per_s": d.ess_bulk_min / wall, "rhat_max": d.rhat_max,
                     "divergences": d.divergences, "ok": d.ok})
        print(f"{arm}: {wall:.0f} s", flush=True)
    print(f"{'sampler':<20}{'wall [s]':>10}{'steps':>7}{'bulk ESS':>10}{'tail ESS':>10}{'ESS/s':>8}{'R-hat':>8}{'div':>6}")
    for r in rows:
        print(f"{r['sampler']:<20}{r['wall_s']:>10.1f}{r['leapfrog_steps_mean']:>7.1f}{r['ess_bulk_min']:>10.0f}"
              f"{r['ess_tail_min']:>10.0f}{r['ess_bulk_per_s']:>8.2f}{r['rhat_max']:>8.3f}{r['divergences']:>6}")
    ref = rows[0]["ess_bulk_per_s"]
    for r in rows:
        r["ess_per_s_relative"] = r["ess_bulk_per_s"] / ref if ref > 0 else float("nan")
    print("ESS/s relative to", rows[0]["sampler"] + ":", ", ".join(f"{r['sampler']} {r['ess_per_s_relative']:.2f}"
                                                                   for r in rows))
    write_result("bayes_nuts_vs_pymc", {"study": "indentation_pouch", "draws": args.draws, "tune": args.tune,
                                        "chains": 4, "tests": int(len(data.test)), "rows": rows})


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
