"""The coupled indentation chain run one by one against `run_batch` (one ring thermal model per batch): seconds per
simulation and their ratio, side by side in one run, and the largest difference of the outputs.

Samples: a Sobol design over the chain's priors at the default study's condition ranges (SOC 0–1, 0.4–7 A h, LCO;
`ensembles.INDENTATION`), seed 3. ``indentation_lumped`` (mesh-free punch law) shows the thermal model's share;
``fe_indentation_coupled`` (dolfinx punch, what the default study simulates) the gain in a study's simulate stage.
Writes ``benchmarks/results/coupled_chain_batch.json``.

Run: ``.venv/bin/python benchmarks/coupled_chain_batch.py``
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ensembles import INDENTATION  # noqa: E402
from record import write_result  # noqa: E402

import abuse_fe  # noqa: E402,F401  (before dolfinx)
from simulators.ensemble import design  # noqa: E402
from simulators.registry import load  # noqa: E402

CASES = [("indentation_lumped", 64, (8, 64)), ("fe_indentation_coupled", 16, (16,))]
SCALARS = ("force_short_onset", "voltage_drop", "temperature_rise_rate_log", "temperature_peak", "heat_released_total",
           "spread_fraction", "hazard_level")


def main() -> None:
    rows = []
    print(f"{'simulator':<24}{'n':>4}{'batch':>7}{'s/sim':>9}{'speed-up':>10}{'max rel. diff':>15}{'runaways':>10}")
    for name, n, batches in CASES:
        sim = load(name)()
        plan = design({p.name: p.prior for p in sim.parameters}, INDENTATION["conditions"], n, "sobol", seed=3)
        samples = [plan.sample(i) for i in range(n)]
        sim.run(*samples[0])  # warm-up: imports, JIT-free but mesh and form caches
        t0 = time.perf_counter()
        single = [sim.run(th, c) for th, c in samples]
        s_single = (time.perf_counter() - t0) / n
        runaways = int(sum(bool(ds.thermal_runaway) for ds in single))
        rows.append({"simulator": name, "n": n, "batch_size": 1, "seconds_per_sim": s_single, "speedup": 1.0,
                     "max_rel_diff": 0.0, "runaways": runaways})
        print(f"{name:<24}{n:>4}{1:>7}{s_single:>9.3f}{1.0:>10.2f}{0.0:>15.1e}{runaways:>10}")
        for b in batches:
            t0 = time.perf_counter()
            batch = [ds for a in range(0, n, b) for ds in sim.run_batch([s[0] for s in samples[a:a + b]],
                                                                        [s[1] for s in samples[a:a + b]])]
            s_batch = (time.perf_counter() - t0) / n
            diff = max(float(np.nanmax(np.abs(x[v].values - y[v].values) / np.maximum(np.abs(y[v].values), 1e-9),
                                       initial=0.0)) for x, y in zip(batch, single) for v in SCALARS)
            rows.append({"simulator": name, "n": n, "batch_size": b, "seconds_per_sim": s_batch,
                         "speedup": s_single / s_batch, "max_rel_diff": diff,
                         "runaways": int(sum(bool(ds.thermal_runaway) for ds in batch))})
            r = rows[-1]
            print(f"{name:<24}{n:>4}{b:>7}{s_batch:>9.3f}{r['speedup']:>10.2f}{diff:>15.1e}{r['runaways']:>10}")
    out = write_result("coupled_chain_batch", {"conditions": INDENTATION["conditions"], "seed": 3, "rows": rows})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
