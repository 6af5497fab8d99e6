"""Benchmark of the FE thermal-abuse simulator: wall time per simulation.

18650 oven test (155 °C, Hatchard 2001 kinetics, 3000 s, runaway included) on the coarse / medium /
fine meshes, with the conduction matrix assembled once per Δt vs re-assembled every step, on 1 and 2
MPI ranks. Each configuration runs in its own process (forms come from the JIT cache; the table
separates set-up and solve time). Prints a table and writes ``benchmarks/results/fe_thermal.json``.

    .venv/bin/python benchmarks/fe_thermal.py [--quick]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MPIEXEC = str(ROOT / ".venv/bin/mpiexec")
sys.path.insert(0, str(ROOT / "benchmarks"))


def worker(resolution: str, matrix: str, t_end: float) -> None:
    t0 = time.perf_counter()
    import abuse_fe  # noqa: F401
    from mpi4py import MPI

    from abuse_fe.thermal import FEThermal18650, default_theta

    sim = FEThermal18650(resolution=resolution, matrix=matrix, t_end=t_end)
    p = sim.problem()
    n_dofs = p.V.dofmap.index_map.size_global
    t1 = time.perf_counter()
    ds = sim.run(default_theta(sim))
    t2 = time.perf_counter()
    if MPI.COMM_WORLD.rank == 0:
        print(json.dumps({"resolution": resolution, "matrix": matrix, "ranks": MPI.COMM_WORLD.size, "dofs": n_dofs,
                          "setup_s": t1 - t0, "run_s": t2 - t1, "steps": int(ds.n_steps),
                          "t_tr": float(ds.time_to_runaway), "T_peak": float(ds.temperature_peak),
                          "Q_kin": float(ds.heat_kinetics_total)}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", nargs=2, metavar=("RESOLUTION", "MATRIX"))
    ap.add_argument("--t-end", type=float, default=3000.0)
    ap.add_argument("--quick", action="store_true", help="coarse/medium only")
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker, args.t_end)
        return
    configs = [(r, m, 1) for r in ("coarse", "medium", "fine") for m in ("once", "reassemble")]
    configs += [(r, "once", 2) for r in ("coarse", "medium", "fine")]
    if args.quick:
        configs = [c for c in configs if c[0] != "fine"]
    rows = []
    for res, mat, n in configs:
        cmd = [sys.executable, __file__, "--worker", res, mat, "--t-end", str(args.t_end)]
        if n > 1:
            cmd = [MPIEXEC, "-n", str(n)] + cmd
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    head = f"{'mesh':8s} {'matrix':10s} {'ranks':>5s} {'dofs':>6s} {'steps':>6s} {'setup[s]':>9s} {'run[s]':>8s} " \
           f"{'ms/step':>8s} {'t_TR[s]':>9s} {'T_peak[K]':>9s} {'Q_kin[kJ]':>9s}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['resolution']:8s} {r['matrix']:10s} {r['ranks']:5d} {r['dofs']:6d} {r['steps']:6d} "
              f"{r['setup_s']:9.2f} {r['run_s']:8.2f} {1e3 * r['run_s'] / r['steps']:8.2f} {r['t_tr']:9.1f} "
              f"{r['T_peak']:9.1f} {r['Q_kin'] / 1e3:9.2f}")
    from record import write_result

    write_result("fe_thermal", {"t_end_s": args.t_end, "quick": args.quick, "rows": rows})


if __name__ == "__main__":
    main()
