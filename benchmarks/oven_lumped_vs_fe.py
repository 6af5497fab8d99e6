"""The oven study's lumped model against the FE model it reduces, on fresh draws across the study's prior.

The oven study (`studies/oven_18650.yaml`) simulates a LiCoO2 18650 (Hatchard/Kim kinetics) with `lumped_thermal`:
one temperature for the whole cell. `fe_thermal_18650` resolves the same cell in (r, z): steel can, orthotropic
jelly roll, conduction, the same kinetic set, under the same runaway definition (the whole cell's chemical
self-heating above 1 K/s). The study's own check (its ``reference:`` section, stage ``fidelity``,
`risk.fidelity.compare`) at a chosen seed and mesh: Sobol draws (seed 7) over the study's conditions (oven
130–175 °C, SOC 0.5–1) and priors, both models in the study's oven (3 h, the ambient ramped at 5 K/min to the oven
temperature and held), the inputs mapped by `abuse_fe.thermal.theta_at_lumped_inputs`:

- ``log_A_sei``, ``log_A_anode``, ``log_A_cathode``, ``log_A_electrolyte``: the same in both;
- ``h_conv`` → the FE's ``heat_transfer_coefficient``;
- ``heat_capacity_factor`` → the FE's ``specific_heat_jelly`` = factor × ρc_p / ρ_jelly with the lumped cell's
  ρc_p (Kim et al. 2007: 2580 kg/m³ × 830 J/(kg K)) and the FE's jelly-roll density: the jelly roll at the lumped
  cell's volumetric heat capacity; the can keeps its steel's (~9 % of the FE cell's heat capacity);
- the FE's conductivities at their prior medians; the lumped model's ``c_sei0`` and ``enthalpy_factor`` held at their
  prior medians (the FE cell has neither).

Two lumped arms: **as the study runs it** (collapse short, venting and ejection at the draw's prior values, which
the FE model does not have) and **same physics** (no separator-collapse short, nothing ejected: the reduction alone).
Reported: runaway agreement, time-to-runaway ratio lumped / FE where both run away, peak temperature difference,
seconds per run. Prints a table, writes ``benchmarks/results/oven_lumped_vs_fe.json``.

    .venv/bin/python benchmarks/oven_lumped_vs_fe.py              # 32 draws, 2 processes (≈ 2 min)
    .venv/bin/python benchmarks/oven_lumped_vs_fe.py --n 16 --workers 1 --resolution medium
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.record import write_result  # noqa: E402

STUDY = REPO / "studies" / "oven_18650.yaml"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=32, help="prior draws")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--resolution", default="coarse", help="FE mesh: coarse | medium | fine")
    args = ap.parse_args(argv)

    from risk.study import load_study
    from risk.fidelity import ARMS, compare

    s = load_study(STUDY)
    res = compare(s.simulator.name, dict(s.simulator.options), s.reference.simulator,
                  dict(s.reference.options) | {"resolution": args.resolution}, s.priors(), s.condition_values(),
                  s.condition_sets(), n=args.n, seed=args.seed, workers=args.workers, timeout=s.ensemble.timeout,
                  observables=tuple(s.sim2real.observables))
    rows = res["rows"]
    print(f"{'oven [C]':>9}{'SOC':>6}{'h':>6}{'c_p f':>7}  TR FE/study/same   t_TR FE/study/same [s]"
          f"        peak FE/study/same [C]")
    models = ("reference", *ARMS)
    for r in sorted((r for r in rows if all(r[m]["ok"] for m in models)),
                    key=lambda r: r["condition"]["temperature_oven"]):
        c, th = r["condition"], r["theta"]
        tr = "/".join("y" if r[m]["thermal_runaway"] else "n" for m in models)
        t = " / ".join(f"{r[m]['time_to_runaway']:5.0f}" for m in models)
        pk = " / ".join(f"{r[m]['temperature_peak'] - 273.15:4.0f}" for m in models)
        print(f"{c['temperature_oven'] - 273.15:>9.1f}{c['soc']:>6.2f}{th['h_conv']:>6.1f}"
              f"{th['heat_capacity_factor']:>7.2f}  {tr:>11}   {t:>24}   {pk:>22}")
    print(f"\n{'against the FE model (' + args.resolution + ' mesh)':<40}{'as the study':>14}{'same physics':>14}")
    for k in ("runaways", "runaway_agreement", "time_to_runaway_ratio_median", "peak_temperature_mae_no_runaway_K",
              "seconds_per_run"):
        print(f"{k:<40}{res[ARMS[0]][k]:>14.4g}{res[ARMS[1]][k]:>14.4g}")
    print(f"FE: {res['reference_runaways']} of {len(rows)} run away, {res['reference_seconds_per_run']:.2f} s per run; "
          f"{len(res['failures'])} failed; wall {res['wall_s']:.0f} s")
    summary = {k: v for k, v in res.items() if k != "rows"} | {"resolution": args.resolution, "workers": args.workers}
    path = write_result("oven_lumped_vs_fe", {"summary": summary, "rows": rows})
    print(f"wrote {path.relative_to(REPO)}")
    return summary


if __name__ == "__main__":
    main()
