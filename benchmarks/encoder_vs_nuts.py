"""The amortised encoder against NUTS, and its coverage on simulated tests (issue 16 item 1).

On a run directory of the default study (frozen decoder, encoder and real tests, made by
``risk train studies/indentation_pouch.yaml`` when missing):

1. **Real tests, outcome hidden** (a newly measured test before anyone scored it, as ``risk predict --raw``
   sees it): the encoder's posterior — raw Gaussian q and importance-corrected — against NumPyro NUTS of the
   same target (`sim2real.reference`), per test and parameter in units of the NUTS sd: |Δmean|, sd ratio,
   1-Wasserstein; wall time per test.
2. **Expected coverage on simulations**: tests drawn from the encoder's own generative model (u from the
   prior, conditions and masks of the real tests, x from the frozen decoder plus the learned discrepancy,
   outcome hidden); pooled coverage of central 50 % / 90 % intervals and RMSE of the posterior mean [prior sd].
3. **The encoder as NUTS's warm start** (issue 16 item 1, "where that helps"): NUTS of the real tests' posteriors
   with a short warm-up (`WARM_STARTS`), started at the encoder's means (`sim2real.nuts_reference`'s default) or at
   the prior's centre u = 0; R-hat, bulk ESS, divergences, wall time and the 1-Wasserstein distance to the long
   reference of item 1 [its sd].

Prints the tables and writes ``benchmarks/results/encoder_vs_nuts.json``.

    python benchmarks/encoder_vs_nuts.py [--run runs/indentation_pouch] [--simulated 200] [--draws 1000]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import abuse_fe  # noqa: E402,F401  (before anything that may import dolfinx)
import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.record import write_result  # noqa: E402


def _ensure_run(run: Path) -> None:
    if (run / "model" / "encoder.pt").exists() and (run / "real.nc").exists():
        return
    cmd = [sys.executable, "-m", "risk.cli", "train", str(REPO / "studies" / "indentation_pouch.yaml"), "--out", str(run)]
    subprocess.run(cmd, check=True, cwd=REPO)


WARM_STARTS = (50, 150)  # NUTS warm-up iterations of the warm-start comparison (500 draws, 2 chains)


def _summary(d: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    return {k: {"median": float(np.median(v)), "q90": float(np.quantile(v, 0.9)), "max": float(v.max())}
            for k, v in d.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=REPO / "runs" / "indentation_pouch")
    ap.add_argument("--simulated", type=int, default=200, help="simulated tests for the coverage check")
    ap.add_argument("--draws", type=int, default=1000, help="NUTS draws per chain (as many warm-up)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    _ensure_run(args.run)

    from risk.data import read_real
    from sim2real import load_encoder
    from sim2real.bridge import Batch
    from sim2real.encoder import decoder_draws
    from sim2real.reference import nuts_reference, posterior_distance
    from sim2real.validation import recovery_rmse, sample_coverage

    fit = load_encoder(args.run / "model")
    real = read_real(args.run / "real.nc")
    real = real.drop_vars([v for v in ("hazard_level", "thermal_runaway") if v in real])  # outcome hidden
    batch = fit.batch_of(real)
    n = len(batch)
    out: dict = {"run": str(args.run), "n_real_tests": n, "parameters": fit.parameter_names}

    t0 = time.perf_counter()
    ref, diag = nuts_reference(fit, batch, draws=args.draws, warmup=args.draws, chains=2, seed=args.seed)
    t_nuts = time.perf_counter() - t0
    rows = []
    for label, importance in (("encoder + importance sampling", True), ("encoder, raw Gaussian q", False)):
        t0 = time.perf_counter()
        post = fit.posterior(2000, torch.Generator().manual_seed(args.seed), importance=importance, real=batch)
        dt = time.perf_counter() - t0
        dist = _summary(posterior_distance(post["u"].values, ref))
        rows.append({"method": label, "ms_per_test": 1e3 * dt / n, "distance": dist,
                     "ess_min": float(post["ess"].min())})
    rows.append({"method": "NUTS (reference)", "ms_per_test": 1e3 * t_nuts / n, "diagnostics": diag})
    out["real_tests"] = rows

    print(f"\nReal tests (n = {n}, outcome hidden), distance to NUTS in NUTS-sd units (median / 90 % / max)")
    print(f"{'method':32s} {'|Δmean|':>18s} {'sd ratio':>18s} {'W1':>18s} {'ms/test':>9s}")
    for r in rows:
        if "distance" in r:
            d = r["distance"]
            cells = [f"{d[k]['median']:.2f}/{d[k]['q90']:.2f}/{d[k]['max']:.2f}" for k in ("mean_shift", "sd_ratio", "w1")]
            print(f"{r['method']:32s} {cells[0]:>18s} {cells[1]:>18s} {cells[2]:>18s} {r['ms_per_test']:9.1f}")
        else:
            print(f"{r['method']:32s} {'R-hat %.3f, ESS %.0f, %d div.' % (diag['rhat_max'], diag['ess_bulk_min'], diag['divergences']):>56s} "
                  f"{r['ms_per_test']:9.1f}")

    warm_rows = []
    for warmup in WARM_STARTS:
        for start in ("encoder means", "prior centre"):
            init = None if start == "encoder means" else np.zeros((n, len(fit.parameter_names)))
            t0 = time.perf_counter()
            u_w, d_w = nuts_reference(fit, batch, draws=500, warmup=warmup, chains=2, seed=args.seed + 7, init=init)
            wall = time.perf_counter() - t0
            w1 = posterior_distance(u_w, ref)["w1"]
            warm_rows.append({"warmup": warmup, "start": start, "wall_s": wall, **d_w,
                              "w1_median": float(np.median(w1)), "w1_max": float(w1.max())})
    out["warm_start"] = warm_rows
    print("\nNUTS warm start (500 draws, 2 chains), against the reference above")
    print(f"{'warm-up':>8s}  {'start':<15s}{'R-hat':>7s}{'ESS':>7s}{'div':>5s}{'wall s':>8s}{'W1 med':>8s}{'W1 max':>8s}")
    for r in warm_rows:
        print(f"{r['warmup']:>8d}  {r['start']:<15s}{r['rhat_max']:7.3f}{r['ess_bulk_min']:7.0f}{r['divergences']:5d}"
              f"{r['wall_s']:8.1f}{r['w1_median']:8.3f}{r['w1_max']:8.3f}")

    rng = np.random.default_rng(args.seed + 1)
    u, x, m, y, ym, c = decoder_draws(fit.decoder, fit.decoder.transform, batch, args.simulated,
                                      fit.log_sd_discrepancy, rng, outcome_dropout=1.0)
    sim = Batch(x, m, c, y, ym, None, np.arange(args.simulated))
    cov_rows = []
    for label, importance in (("encoder + importance sampling", True), ("encoder, raw Gaussian q", False)):
        draws = fit.posterior(1000, torch.Generator().manual_seed(args.seed), importance=importance, real=sim)["u"].values
        cov = sample_coverage(u.numpy(), draws)
        cov_rows.append({"method": label, "coverage50": float(cov[0.5].mean()), "coverage90": float(cov[0.9].mean()),
                         "coverage90_per_parameter": dict(zip(fit.parameter_names, map(float, cov[0.9]))),
                         "rmse_mean": float(recovery_rmse(u.numpy(), draws.mean(1)).mean())})
    out["simulated"] = {"n": args.simulated, "rows": cov_rows}
    print(f"\nSimulated tests (n = {args.simulated}, outcome hidden): pooled coverage and RMSE [prior sd]")
    print(f"{'method':32s} {'50 %':>6s} {'90 %':>6s} {'RMSE':>6s}")
    for r in cov_rows:
        print(f"{r['method']:32s} {r['coverage50']:6.3f} {r['coverage90']:6.3f} {r['rmse_mean']:6.3f}")
    print(write_result("encoder_vs_nuts", out))


if __name__ == "__main__":
    main()
