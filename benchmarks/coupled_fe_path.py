"""What ending the FE load path at the short onset saves in the coupled indentation chain (``fe_indentation_coupled``).

For prior draws of the mechanical parameters (Sobol, the chain's own priors), the FE mechanics are solved along the
whole stroke and stopped at the first depth past the short onset (what the chain does), in one run: Newton
iterations and wall time side by side, their ratios, and the onset force of both (which must agree: the path up to
the onset is the same). Also the whole chain's wall time per run. Prints a table, writes
``benchmarks/results/coupled_fe_path.json``.

    .venv/bin/python benchmarks/coupled_fe_path.py            # 16 draws (≈ 1–2 min on 2 cores)
    .venv/bin/python benchmarks/coupled_fe_path.py --n 64
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

import abuse_fe  # noqa: E402,F401  (before dolfinx)
from abuse_fe.coupled import IndentationFECoupled  # noqa: E402
from abuse_fe.indentation import IndentationFE, short_onset  # noqa: E402
from benchmarks.record import write_result  # noqa: E402


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=16, help="prior draws (a power of 2 keeps the Sobol design balanced)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from scipy.stats import qmc

    chain = IndentationFECoupled()
    fe = IndentationFE(resolution=chain.resolution, displacement_max=chain.displacement_max,
                       n_displacement=chain.n_displacement, depth_fraction_max=chain.depth_fraction_max,
                       poisson_ratio=chain.poisson_ratio, max_step=chain.max_step)
    params = chain.parameters
    unit = qmc.Sobol(len(params), seed=args.seed).random(args.n)
    draws = [{p.name: float(p.prior.ppf(q)) for p, q in zip(params, row)} for row in unit]
    cond = {c.name: c.default for c in chain.conditions}
    chain.run(draws[0], cond)  # warm-up: form compilation, kinetics tables
    rows = []
    for theta in draws:
        out = {"strain_critical": theta["strain_critical"]}
        for label, stop in (("full", False), ("stopped", True)):
            t0 = time.perf_counter()
            res = fe.mechanics(theta, cond, stop_at_short=stop)
            out[f"{label}_s"] = time.perf_counter() - t0
            out[f"{label}_newton"] = int(res.newton_iterations)
            out[f"{label}_onset_force"] = short_onset(res.depth, res.force, res.strain_max, theta["strain_critical"])[1]
        t0 = time.perf_counter()
        chain.run(theta, cond)
        out["chain_s"] = time.perf_counter() - t0
        rows.append(out)

    print(f"{'eps_c':>6} {'full [s]':>9} {'stopped [s]':>11} {'ratio':>6} {'Newton full/stopped':>20} "
          f"{'onset force full/stopped [N]':>30} {'chain [s]':>9}")
    for r in rows:
        print(f"{r['strain_critical']:6.2f} {r['full_s']:9.2f} {r['stopped_s']:11.2f} {r['stopped_s'] / r['full_s']:6.2f} "
              f"{r['full_newton']:>9d}/{r['stopped_newton']:<10d} {r['full_onset_force']:14.1f}/{r['stopped_onset_force']:<15.1f}"
              f" {r['chain_s']:9.2f}")
    full, stopped = sum(r["full_s"] for r in rows), sum(r["stopped_s"] for r in rows)
    nf, ns = sum(r["full_newton"] for r in rows), sum(r["stopped_newton"] for r in rows)
    f_full = np.array([r["full_onset_force"] for r in rows])
    f_stop = np.array([r["stopped_onset_force"] for r in rows])
    same = np.isnan(f_full) == np.isnan(f_stop)
    ok = np.isfinite(f_full) & np.isfinite(f_stop)
    summary = {"n": len(rows), "mechanics_time_ratio": stopped / full, "newton_ratio": ns / nf,
               "onset_force_max_rel_diff": float(np.max(np.abs(f_stop[ok] / f_full[ok] - 1))) if ok.any() else 0.0,
               "onset_nan_pattern_equal": bool(same.all()),
               "chain_s_mean": float(np.mean([r["chain_s"] for r in rows]))}
    print(f"\nmechanics wall stopped/full {summary['mechanics_time_ratio']:.2f}, Newton iterations "
          f"{summary['newton_ratio']:.2f}; onset force max rel. diff {summary['onset_force_max_rel_diff']:.1e}; "
          f"chain {summary['chain_s_mean']:.2f} s per run")
    write_result("coupled_fe_path", {"summary": summary, "rows": rows, "seed": args.seed})
    return summary


if __name__ == "__main__":
    main()
