"""The oven study's lumped model against the FE model it reduces, on fresh draws across the study's prior.

The oven study (`studies/oven_18650.yaml`) simulates a LiCoO2 18650 (Hatchard/Kim kinetics) with `lumped_thermal`:
one temperature for the whole cell. `fe_thermal_18650` resolves the same cell in (r, z): steel can, orthotropic
jelly roll, conduction, the same kinetic set, under the same runaway definition (the whole cell's chemical
self-heating above 1 K/s). For each Sobol draw (seed 7) over the study's conditions (oven 130–175 °C, SOC 0.5–1) and
the lumped model's priors of the parameters both models share, both run the study's oven: 3 h, the ambient ramped at
5 K/min (the study's default ``oven_ramp_rate``) to the oven temperature and held:

- ``log_A_sei``, ``log_A_anode``, ``log_A_cathode``, ``log_A_electrolyte``: the same in both;
- ``h_conv`` → the FE's ``heat_transfer_coefficient``;
- ``heat_capacity_factor`` → the FE's ``specific_heat_jelly`` = factor × ρc_p / ρ_jelly with the lumped cell's
  ρc_p (Kim et al. 2007: 2580 kg/m³ × 830 J/(kg K)) and the FE's jelly-roll density: the jelly roll at the lumped
  cell's volumetric heat capacity; the can keeps its steel's (~9 % of the FE cell's heat capacity);
- the FE's conductivities at their nominal values; the lumped model's ``c_sei0`` and ``enthalpy_factor`` at theirs.

Two lumped arms: **same physics** (no separator-collapse short, nothing ejected: the reduction alone) and **as the
study runs it** (collapse short, venting and ejection at the draw's prior values, which the FE model does not have).
Reported: runaway agreement, time-to-runaway ratio lumped / FE where both run away, peak temperature difference,
seconds per run. Prints a table, writes ``benchmarks/results/oven_lumped_vs_fe.json``.

    .venv/bin/python benchmarks/oven_lumped_vs_fe.py              # 32 draws, 2 processes (≈ 1 min)
    .venv/bin/python benchmarks/oven_lumped_vs_fe.py --n 16 --workers 1 --resolution medium
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.record import write_result  # noqa: E402

T_END = 10800.0  # s, the oven study's t_end
#: the oven study's conditions [SI]: oven 130-175 degC, SOC 0.5-1, the 2.2 A h cell, ramp 5 K/min (lumped_thermal's
#: default, which the study keeps)
CONDITIONS = {"temperature_oven": (403.15, 448.15), "soc": (0.5, 1.0), "capacity_nominal": 7920.0,
              "oven_ramp_rate": 5.0 / 60.0}
SHARED = ("log_A_sei", "log_A_anode", "log_A_cathode", "log_A_electrolyte", "h_conv", "heat_capacity_factor")
LUMPED_OPTIONS = {"cell": "18650_lco_hatchard2001", "kinetics": "hatchard2001", "t_end": T_END, "n_time": 91}


def pair(args: tuple[dict, dict, str]) -> dict:
    """One draw through the FE model and both lumped arms: runaway, time to runaway, peak temperature, seconds."""
    import abuse_fe  # noqa: F401  (before dolfinx)
    from abuse_fe.materials import JELLY_ROLL_CYLINDRICAL
    from abuse_fe.thermal import FEThermal18650, default_theta
    from simulators.cells import get_cell
    from simulators.lumped import LumpedThermal

    theta, condition, resolution = args
    cell = get_cell(LUMPED_OPTIONS["cell"])
    rho_cp = cell.mass * cell.cp / (math.pi * cell.dims[0] ** 2 / 4 * cell.dims[1])  # [J/(m³ K)]
    row = {"theta": theta, "condition": condition}
    fe = FEThermal18650(resolution=resolution, t_end=T_END, n_time=91)
    th_fe = default_theta(fe) | {k: theta[k] for k in SHARED[:4]} | {
        "heat_transfer_coefficient": theta["h_conv"],
        "specific_heat_jelly": theta["heat_capacity_factor"] * rho_cp / JELLY_ROLL_CYLINDRICAL.density}
    nominal = LumpedThermal(**LUMPED_OPTIONS).default_theta()
    arms = {
        "fe": (fe, th_fe, {k: condition[k] for k in ("soc", "temperature_oven", "oven_ramp_rate")}),
        "lumped_same_physics": (LumpedThermal(**LUMPED_OPTIONS, separator_short=False),
                                nominal | {k: theta[k] for k in SHARED} | {"ejecta_fraction": 0.0}, condition),
        "lumped_as_study": (LumpedThermal(**LUMPED_OPTIONS),
                            theta | {"c_sei0": nominal["c_sei0"], "enthalpy_factor": nominal["enthalpy_factor"]},
                            condition),
    }
    for name, (sim, th, cond) in arms.items():
        t0 = time.perf_counter()
        ds = sim.run(th, cond)
        row[f"{name}_s"] = time.perf_counter() - t0
        row[name] = {"thermal_runaway": bool(ds.thermal_runaway), "time_to_runaway": float(ds.time_to_runaway),
                     "temperature_peak": float(ds.temperature_peak)}
    return row


def errors(rows: list[dict], arm: str) -> dict:
    """Agreement of a lumped arm with the FE model over the draws."""
    agree = [r[arm]["thermal_runaway"] == r["fe"]["thermal_runaway"] for r in rows]
    both = [r for r in rows if r[arm]["thermal_runaway"] and r["fe"]["thermal_runaway"]]
    ratio = np.array([r[arm]["time_to_runaway"] / r["fe"]["time_to_runaway"] for r in both])
    calm = [r for r in rows if not r[arm]["thermal_runaway"] and not r["fe"]["thermal_runaway"]]
    return {
        "runaways": int(sum(r[arm]["thermal_runaway"] for r in rows)),
        "runaway_agreement": float(np.mean(agree)),
        "disagreements": [{"temperature_oven_C": r["condition"]["temperature_oven"] - 273.15,
                           "soc": r["condition"]["soc"], "fe": r["fe"]["thermal_runaway"],
                           arm: r[arm]["thermal_runaway"]} for r, a in zip(rows, agree) if not a],
        "time_to_runaway_ratio_median": float(np.median(ratio)) if both else float("nan"),
        "time_to_runaway_ratio_range": [float(ratio.min()), float(ratio.max())] if both else [],
        "peak_temperature_no_runaway_mae_K": float(np.mean([abs(r[arm]["temperature_peak"] - r["fe"]["temperature_peak"])
                                                           for r in calm])) if calm else float("nan"),
        "seconds_per_run": float(np.mean([r[f"{arm}_s"] for r in rows])),
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=32, help="prior draws")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--resolution", default="coarse", help="FE mesh: coarse | medium | fine")
    args = ap.parse_args(argv)

    from simulators.ensemble import design_sets
    from simulators.lumped import LumpedThermal

    priors = {p.name: p.prior for p in LumpedThermal.parameters}
    plan = design_sets(priors, CONDITIONS, [(1.0, {})], args.n, "sobol", args.seed)
    samples = [(th, c, args.resolution) for th, c in (plan.sample(i) for i in range(args.n))]
    t0 = time.perf_counter()
    if args.workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            rows = list(pool.map(pair, samples))
    else:
        rows = [pair(s) for s in samples]
    wall = time.perf_counter() - t0
    arms = ("lumped_same_physics", "lumped_as_study")
    summary = {"draws": len(rows), "runaways_fe": int(sum(r["fe"]["thermal_runaway"] for r in rows)),
               "seconds_per_run_fe": float(np.mean([r["fe_s"] for r in rows])), "resolution": args.resolution,
               **{arm: errors(rows, arm) for arm in arms}, "wall_s": wall, "workers": args.workers, "seed": args.seed}

    print(f"{'oven [C]':>9}{'SOC':>6}{'h':>6}{'c_p f':>7}  TR FE/same/study   t_TR FE/same/study [s]"
          f"        peak FE/same/study [C]")
    for r in sorted(rows, key=lambda r: r["condition"]["temperature_oven"]):
        c, th = r["condition"], r["theta"]
        tr = "/".join("y" if r[a]["thermal_runaway"] else "n" for a in ("fe", *arms))
        t = " / ".join(f"{r[a]['time_to_runaway']:5.0f}" for a in ("fe", *arms))
        pk = " / ".join(f"{r[a]['temperature_peak'] - 273.15:4.0f}" for a in ("fe", *arms))
        print(f"{c['temperature_oven'] - 273.15:>9.1f}{c['soc']:>6.2f}{th['h_conv']:>6.1f}"
              f"{th['heat_capacity_factor']:>7.2f}  {tr:>11}   {t:>24}   {pk:>22}")
    print(f"\n{'against the FE model (' + args.resolution + ' mesh)':<40}{'same physics':>14}{'as the study':>14}")
    for k in ("runaways", "runaway_agreement", "time_to_runaway_ratio_median", "peak_temperature_no_runaway_mae_K",
              "seconds_per_run"):
        print(f"{k:<40}{summary[arms[0]][k]:>14.4g}{summary[arms[1]][k]:>14.4g}")
    print(f"FE: {summary['runaways_fe']} of {len(rows)} run away, {summary['seconds_per_run_fe']:.2f} s per run; "
          f"wall {wall:.0f} s")
    path = write_result("oven_lumped_vs_fe", {"summary": summary, "rows": rows})
    print(f"wrote {path.relative_to(REPO)}")
    return summary


if __name__ == "__main__":
    main()
