"""Ensemble runner: throughput with 1 vs 2 Dask workers, and overhead against a plain loop.

Runs the coupled lumped simulator (`coupled_short_lumped`, ~0.4 s per run) and, for the overhead at
simulations of ≥ 1 s, the PyBaMM plating simulator (`pybamm_plating`, a few seconds per run). Prints a
table of wall times and ratios measured side by side in one run.

    .venv/bin/python benchmarks/ensemble_runner.py [--n 40] [--n-long 8]
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from simulators import load
from simulators.ensemble import design, open_ensemble, run_ensemble


def plain_loop(name: str, options: dict, plan) -> float:
    t0 = time.perf_counter()
    sim = load(name)(**options)
    for i in range(len(plan)):
        sim.run(*plan.sample(i))
    return time.perf_counter() - t0


def runner(name: str, options: dict, plan, workers: int) -> tuple[float, float]:
    """Wall time of `run_ensemble`, and the summed in-worker simulation time."""
    tmp = Path(tempfile.mkdtemp())
    t0 = time.perf_counter()
    res = run_ensemble(name, options, plan, tmp / "e.zarr", workers=workers)
    wall = time.perf_counter() - t0
    sim_time = float(open_ensemble(tmp / "e.zarr")["wall_time"].sum())
    shutil.rmtree(tmp)
    assert not res.failed, f"{len(res.failed)} failures"
    return wall, sim_time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--n-long", type=int, default=8)
    args = ap.parse_args()
    rows = []
    name, options = "coupled_short_lumped", {"n_time": 31}
    cls = load(name)
    plan = design({p.name: p.prior for p in cls.parameters}, {"soc": (0.3, 1.0)}, args.n, "sobol", seed=0)
    loop = plain_loop(name, options, plan)
    (w1, s1), (w2, s2) = runner(name, options, plan, 1), runner(name, options, plan, 2)
    rows += [(name, "plain loop", args.n, loop, loop), (name, "runner, 1 worker", args.n, w1, s1),
             (name, "runner, 2 workers", args.n, w2, s2)]
    long_name = "pybamm_plating"
    long_cls = load(long_name)
    long_plan = design({p.name: p.prior for p in long_cls.parameters},
                       {"c_rate_charge": (1.0, 4.0), "temperature_ambient": (263.15, 298.15)}, args.n_long, "sobol", seed=0)
    long_loop = plain_loop(long_name, {}, long_plan)
    long_w1, long_s1 = runner(long_name, {}, long_plan, 1)
    rows += [(long_name, "plain loop", args.n_long, long_loop, long_loop),
             (long_name, "runner, 1 worker", args.n_long, long_w1, long_s1)]
    # "sim time" is the summed time inside the simulations (for the loop: its wall time)
    print(f"{'simulator':22s} {'mode':20s} {'n':>4s} {'wall [s]':>9s} {'sims/s':>7s} {'sim time [s]':>13s}")
    for sim, mode, n, wall, sim_time in rows:
        print(f"{sim:22s} {mode:20s} {n:4d} {wall:9.2f} {n / wall:7.2f} {sim_time:13.2f}")
    print(f"\nthroughput 2 workers / 1 worker: {w1 / w2:.2f}x")
    print(f"runner (1 worker) / plain loop, {name}: {w1 / loop:.2f}  (includes cluster start-up)")
    print(f"runner (1 worker) / plain loop, {long_name} ({long_loop / args.n_long:.1f} s/sim): {long_w1 / long_loop:.2f}")


if __name__ == "__main__":
    main()
