"""The electrochemical internal short (PyBaMM DFN + kinetics, `simulators.electrochem_short`) against the
tabulated short of the coupled chain (`simulators.coupled.CoupledShortLumped`) on the same cell, kinetics and
heat losses: a table and ``benchmarks/results/short_electrochem.json``.

Per short resistance and SOC: how the DFN run ended, runaway and time to runaway of both models, the peak
short current [C], the first-law residual of the DFN run and the wall time of each. Both run without the
separator-collapse short, so the comparison isolates the short model.

Run: ``.venv/bin/python benchmarks/short_electrochem.py``
"""
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import write_result  # noqa: E402

import simulators.coupled  # noqa: F401  (registration)
from simulators import load
from simulators.cells import get_cell
from simulators.electrochem_short import internal_short
from simulators.kinetics import load as load_kinetics

RESISTANCES = (0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)  # Ω
SOCS = (1.0, 0.5)
CELL = "21700_nmc_lg_m50"


def main():
    fmt = get_cell(CELL)
    tab = load("coupled_short_lumped")(cell=CELL, separator_short=False)
    theta = tab.default_theta()
    print(f"{'R [Ω]':>6} {'SOC':>4} | {'DFN ended by':<26} {'TR':>3} {'t_TR [s]':>9} {'peak [C]':>8} {'1st law':>8} {'s':>5}"
          f" | {'tab TR':>6} {'t_TR [s]':>9} {'s':>5}")
    rows = []
    for soc in SOCS:
        ks = load_kinetics(fmt.kinetics).at_soc(soc)
        for r in RESISTANCES:
            t0 = time.perf_counter()
            ds = internal_short(r, soc=soc, kinetics=ks, cell=CELL, t_end=3600.0)
            t_dfn = time.perf_counter() - t0
            src = float(ds.energy_short + ds.energy_cell_heat + ds.energy_reactions)
            residual = (src - float(ds.energy_stored + ds.energy_lost)) / src
            t0 = time.perf_counter()
            ref = tab.run({**theta, "short_resistance": r}, {"soc": soc, "temperature_ambient": 298.15})
            t_tab = time.perf_counter() - t0
            row = {"resistance": r, "soc": soc, "termination": ds.attrs["termination"],
                   "dfn_runaway": bool(ds.thermal_runaway), "dfn_time_to_runaway": float(ds.time_to_runaway),
                   "dfn_time_end": float(ds.time_end), "dfn_peak_c_rate": float(np.nanmax(ds.current)) / (fmt.capacity_nominal / 3600.0),
                   "dfn_temperature_peak": float(ds.temperature_peak), "first_law_residual": residual,
                   "dfn_seconds": t_dfn, "tabulated_runaway": bool(ref.thermal_runaway),
                   "tabulated_time_to_runaway": float(ref.time_to_runaway), "tabulated_seconds": t_tab}
            rows.append(row)
            print(f"{r:6.2f} {soc:4.1f} | {row['termination']:<26} {'yes' if row['dfn_runaway'] else 'no':>3} "
                  f"{row['dfn_time_to_runaway']:9.0f} {row['dfn_peak_c_rate']:8.1f} {residual:8.0e} {t_dfn:5.1f}"
                  f" | {'yes' if row['tabulated_runaway'] else 'no':>6} {row['tabulated_time_to_runaway']:9.0f} {t_tab:5.1f}",
                  flush=True)
    decided = [w for w in rows if w["termination"] != "electrolyte depleted"]
    agree = sum(w["dfn_runaway"] == w["tabulated_runaway"] for w in decided)
    both = [w for w in decided if w["dfn_runaway"] and w["tabulated_runaway"]]
    rel = [abs(w["tabulated_time_to_runaway"] / w["dfn_time_to_runaway"] - 1.0) for w in both]
    summary = {"decided": len(decided), "runs": len(rows), "runaway_agreement": agree / max(len(decided), 1),
               "time_to_runaway_rel_error_median": float(np.median(rel)) if rel else float("nan"),
               "time_to_runaway_rel_error_max": float(np.max(rel)) if rel else float("nan"),
               "first_law_residual_max": float(max(abs(w["first_law_residual"]) for w in rows))}
    print(summary)
    write_result("short_electrochem", {"cell": CELL, "rows": rows, "summary": summary})


if __name__ == "__main__":
    main()
