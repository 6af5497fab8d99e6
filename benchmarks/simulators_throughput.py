"""Simulations per second of each mesh-free simulator (one core): a table and
``benchmarks/results/simulators_throughput.json``.

Run: ``.venv/bin/python benchmarks/simulators_throughput.py``
"""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import write_result  # noqa: E402

import simulators.coupled  # noqa: F401  (runtime registration until entry points exist)
import simulators.electrochem  # noqa: F401
import simulators.lumped  # noqa: F401
from simulators import load

CASES = [
    ("lumped_thermal", {}, {"heater_power": 906.5, "heater_duration": 94.0}, 5),
    ("lumped_thermal", {"cell": "18650_lco_hatchard2001", "t_end": 10800.0}, {"temperature_oven": 428.15}, 5),
    ("coupled_short_lumped", {}, {"soc": 1.0}, 5),
    ("pybamm_plating", {"n_cycles": 2}, {}, 1),
]


def main():
    print(f"{'simulator':<22} {'options':<40} {'s/sim':>8} {'sims/s':>8}")
    rows = []
    for name, opts, cond, n in CASES:
        sim = load(name)(**opts)
        theta = sim.default_theta() if hasattr(sim, "default_theta") else {p.name: 0.0 for p in sim.parameters}
        sim.run(theta, cond)  # warm-up (imports, cached tables)
        t0 = time.perf_counter()
        for _ in range(n):
            sim.run(theta, cond)
        dt = (time.perf_counter() - t0) / n
        print(f"{name:<22} {str(opts):<40} {dt:8.3f} {1 / dt:8.2f}")
        rows.append({"simulator": name, "options": opts, "conditions": cond, "repeats": n, "seconds_per_sim": dt,
                     "sims_per_s": 1 / dt})
    write_result("simulators_throughput", {"rows": rows})


if __name__ == "__main__":
    main()
