"""The ring model the default study simulates against the FE hot-spot model it reduces, on fresh prior draws.

For each draw (Sobol over the chain's priors and the default study's condition sets: half LCO cells of 0.4–7 A h,
a quarter each NMC and LFP cells of 2–14 A h, SOC 0–1; seed 11), the study's simulator ``fe_indentation_coupled``
(dolfinx punch, `abuse_fe.coupled.short_thermal_response` rings) and the same simulator with ``thermal="fe"``
(`abuse_fe.hotspot`: the same cell, circuit and separator meltdown on an axisymmetric (r, z) FE mesh, gradients
through the stack resolved) run side by side, and the rings as they were before their faces cooled through the
stack's half thickness (``through_thickness=False``: uniform in z). Reported over the runs that shorted: agreement of the runaway
(hazard level ≥ TR_LEVEL, the one definition every stage uses) and of the hazard level, the errors of the
study's observables (the onset force is the same mechanics in both: its error is 0 by construction), the peak
temperatures, the first law of the FE runs, and seconds per run. Prints a table, writes
``benchmarks/results/hotspot_fe_vs_rings.json``.

    .venv/bin/python benchmarks/hotspot_fe_vs_rings.py              # 48 draws, 2 processes (≈ 5 min)
    .venv/bin/python benchmarks/hotspot_fe_vs_rings.py --n 16 --workers 1
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.record import write_result  # noqa: E402

#: the default study's condition sets (studies/indentation_pouch.yaml), capacities in A s
CONDITIONS = {"soc": (0.0, 1.0), "capacity_nominal": (1440.0, 25200.0), "chemistry": 0.0}
SETS = [(0.5, {}), (0.25, {"chemistry": 1.0, "capacity_nominal": (7200.0, 50400.0)}),
        (0.25, {"chemistry": 2.0, "capacity_nominal": (7200.0, 50400.0)})]
OUTPUTS = ("hazard_level", "thermal_runaway", "force_short_onset", "voltage_drop", "temperature_rise_rate_log",
           "temperature_peak", "temperature_bulk_peak", "spread_fraction", "time_to_runaway", "short",
           "temperature_peak_window")


def pair(sample: tuple[dict, dict]) -> dict:
    """One draw through the rings and through the FE hot spot: the outputs of both and their wall times [s]."""
    import abuse_fe  # noqa: F401  (before dolfinx)
    from abuse_fe.coupled import IndentationFECoupled

    theta, condition = sample
    row = {"theta": theta, "condition": condition}
    for name, sim in (("rings", IndentationFECoupled()), ("rings_uniform", IndentationFECoupled(through_thickness=False)),
                      ("fe", IndentationFECoupled(thermal="fe"))):
        t0 = time.perf_counter()
        ds = sim.run(theta, condition)
        row[f"{name}_s"] = time.perf_counter() - t0
        row[name] = {k: float(ds[k]) for k in OUTPUTS}
    return row


def errors(shorted: list[dict], model: str, tr_level: int) -> dict:
    """Agreement of ``model``'s outputs with the FE hot spot's over the runs that shorted."""
    tr = lambda r, m: r[m]["hazard_level"] >= tr_level  # noqa: E731
    diff = lambda key: np.array([r["fe"][key] - r[model][key] for r in shorted])  # noqa: E731
    rise = lambda r, m: r[m]["temperature_peak"] - r["condition"]["temperature_ambient"]  # noqa: E731
    peak = np.array([rise(r, model) / rise(r, "fe") - 1 for r in shorted])
    both = [r for r in shorted if r["fe"]["thermal_runaway"] and r[model]["thermal_runaway"]]
    return {
        "runaways": int(sum(tr(r, model) for r in shorted)),
        "runaway_agreement": float(np.mean([tr(r, "fe") == tr(r, model) for r in shorted])),
        "hazard_level_agreement": float(np.mean(diff("hazard_level") == 0)),
        "hazard_level_within_one": float(np.mean(np.abs(diff("hazard_level")) <= 1)),
        "onset_force_max_rel_error": float(np.max(np.abs(diff("force_short_onset"))
                                                  / np.array([r["fe"]["force_short_onset"] for r in shorted]))),
        "voltage_drop_mae_V": float(np.mean(np.abs(diff("voltage_drop")))),
        "rise_rate_log_mae": float(np.mean(np.abs(diff("temperature_rise_rate_log")))),
        "rise_rate_log_bias_fe_minus_model": float(np.mean(diff("temperature_rise_rate_log"))),
        "thermocouple_peak_60s_mae_K": float(np.mean(np.abs(diff("temperature_peak_window")))),
        "peak_rise_rel_error_median": float(np.median(np.abs(peak))),
        "bulk_peak_mae_K": float(np.mean(np.abs(diff("temperature_bulk_peak")))),
        "bulk_peak_bias_fe_minus_model_K": float(np.mean(diff("temperature_bulk_peak"))),
        "spread_fraction_mae": float(np.mean(np.abs(diff("spread_fraction")))),
        "time_to_runaway_median_ratio_model_over_fe": float(np.median([r[model]["time_to_runaway"]
                                                                      / r["fe"]["time_to_runaway"] for r in both]))
        if both else float("nan"),
        "seconds_per_run": float(np.mean([r[f"{model}_s"] for r in shorted])),
    }


def summarise(rows: list[dict], tr_level: int) -> dict:
    shorted = [r for r in rows if r["fe"]["short"]]
    return {"draws": len(rows), "shorted": len(shorted),
            "runaways_fe": int(sum(r["fe"]["hazard_level"] >= tr_level for r in shorted)),
            "seconds_per_run_fe": float(np.mean([r["fe_s"] for r in shorted])),
            "rings": errors(shorted, "rings", tr_level), "rings_uniform": errors(shorted, "rings_uniform", tr_level)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=48, help="prior draws")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)

    import abuse_fe  # noqa: F401
    from abuse_fe.coupled import IndentationFECoupled
    from risk.bayes.model import TR_LEVEL
    from simulators.ensemble import design_sets

    priors = {p.name: p.prior for p in IndentationFECoupled.parameters}
    plan = design_sets(priors, CONDITIONS, SETS, args.n, "sobol", args.seed)
    defaults = {c.name: c.default for c in IndentationFECoupled.conditions}
    samples = [(th, defaults | c) for th, c in (plan.sample(i) for i in range(args.n))]
    t0 = time.perf_counter()
    if args.workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            rows = list(pool.map(pair, samples))
    else:
        rows = [pair(s) for s in samples]
    wall = time.perf_counter() - t0
    summary = summarise(rows, TR_LEVEL) | {"wall_s": wall, "workers": args.workers, "seed": args.seed}

    print(f"{'chem':>5}{'SOC':>6}{'Q [Ah]':>8}{'R_s [Ω]':>9}{'h':>7}  level rings/uniform/FE  {'ΔV drop':>8}"
          f"{'Δ ln rate':>10}{'peak rings/FE [K]':>20}{'s rings/FE':>13}")
    for r in rows:
        c, th = r["condition"], r["theta"]
        print(f"{int(c['chemistry']):>5}{c['soc']:>6.2f}{c['capacity_nominal'] / 3600:>8.2f}{th['short_resistance']:>9.3f}"
              f"{th['heat_transfer_coefficient']:>7.0f}  {int(r['rings']['hazard_level']):>5} / "
              f"{int(r['rings_uniform']['hazard_level'])} / {int(r['fe']['hazard_level'])}"
              f"      {r['fe']['voltage_drop'] - r['rings']['voltage_drop']:>8.3f}"
              f"{r['fe']['temperature_rise_rate_log'] - r['rings']['temperature_rise_rate_log']:>10.3f}"
              f"{r['rings']['temperature_peak']:>11.0f} / {r['fe']['temperature_peak']:<6.0f}"
              f"{r['rings_s']:>6.1f} / {r['fe_s']:.1f}")
    print(f"\n{'against the FE hot spot':<46}{'rings (shipped)':>16}{'rings, uniform in z':>21}")
    for k in summary["rings"]:
        print(f"{k:<46}{summary['rings'][k]:>16.4g}{summary['rings_uniform'][k]:>21.4g}")
    for k, v in summary.items():
        if not isinstance(v, dict):
            print(f"{k:<46}{v:.4g}" if isinstance(v, float) else f"{k:<46}{v}")
    write_result("hotspot_fe_vs_rings", {"summary": summary, "rows": rows})
    return summary


if __name__ == "__main__":
    main()
