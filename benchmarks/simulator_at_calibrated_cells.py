"""The study's simulator run at the calibrated cells of the real tests, against what those tests did.

The physics model's P(TR) rests on the decoder; this check asks the simulator itself. For every real test of a
finished run (``risk run``), ``--per-test`` posterior draws give a new cell of the test's family
(`risk.bayes.physics._new_cells`, the cells `risk predict` reasons about; a cell beyond the decoder's design region
on its boundary) under the test's own conditions; the study's simulator runs each, and the simulated runaway
fraction per test (hazard level ≥ TR_LEVEL, the one definition) is scored against the test's outcome: Brier score and
log loss (fractions clipped to 1/(2K + 2) for K draws), per family the observed and simulated runaway shares and the
simulated observables beside the real ones, and the calibrated cells' median parameters. A faithful physics model
puts cells where the simulator reproduces both the observables and the outcomes; a posterior that buys the
observables with cells where the chain runs away (or not) against the tests shows up here, not in the decoder's
scores. Prints a table per run, writes ``benchmarks/results/simulator_at_calibrated_cells.json``.

    .venv/bin/python benchmarks/simulator_at_calibrated_cells.py runs/indentation_pouch
    .venv/bin/python benchmarks/simulator_at_calibrated_cells.py RUN_A RUN_B --per-test 3 --workers 2
    .venv/bin/python benchmarks/simulator_at_calibrated_cells.py OLD_RUN --fixed thermocouple_distance=0.010
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.record import write_result  # noqa: E402

OBSERVABLES = ("voltage_drop", "temperature_rise_rate_log", "temperature_peak_window")
LABELS = {"voltage_drop": "voltage drop [V]", "temperature_rise_rate_log": "ln rise rate",
          "temperature_peak_window": "peak in 60 s [K]"}  # real / simulated means per family


def simulate(job: tuple) -> list[dict]:
    """One batch ``(simulator, options, thetas, conditions)`` → per run its hazard level and observables."""
    import abuse_fe  # noqa: F401  (before dolfinx)
    from simulators import load

    name, options, thetas, conditions = job
    return [{"hazard_level": int(ds.hazard_level), **{k: float(ds[k]) for k in OBSERVABLES if k in ds}}
            for ds in load(name)(**options).run_batch(thetas, conditions)]


def calibrated_cells(run: Path, per_test: int, seed: int, fixed_parameters: dict[str, float]):
    """``(study, real tests, test index (n,), thetas, conditions)``: ``per_test`` posterior draws' new cells per test."""
    import xarray as xr

    from risk.bayes.physics import _new_cells
    from risk.bayes.sampling import load_posterior
    from risk.pipeline import RunContext
    from risk.stages import _physics_inputs
    from risk.study import load_study

    study = load_study(run / "study.yaml")
    decoder, data, _ = _physics_inputs(RunContext(study=study, out=run))
    tree = load_posterior(run / "posterior.nc")
    rng = np.random.default_rng(seed)
    conditions = np.asarray(data.conditions, float)
    u, _, _ = _new_cells(tree, [str(f) for f in data.family], conditions, rng=rng, n_cells=per_test, max_draws=None)
    draws = rng.choice(u.shape[0], size=per_test, replace=False)
    names = list(decoder.condition_names)
    fixed = study.condition_values()
    test, thetas, conds = [], [], []
    for t in range(u.shape[1]):
        cond = {c: float(conditions[t, names.index(c)]) if c in names else float(v) for c, v in fixed.items()}
        for k, s in enumerate(draws):
            theta = decoder.from_unconstrained(u[s, t, k][None])[0]
            thetas.append(fixed_parameters | dict(zip(decoder.parameter_names, map(float, theta))))
            conds.append(cond)
            test.append(t)
    real = xr.open_dataset(run / "real.nc").load()
    return study, real, np.array(test), thetas, conds


def check(run: Path, per_test: int, workers: int, seed: int, fixed_parameters: dict[str, float]) -> dict:
    """The simulator at one run's calibrated cells, scored against its real tests."""
    from risk.bayes.model import TR_LEVEL

    study, real, test, thetas, conds = calibrated_cells(run, per_test, seed, fixed_parameters)
    jobs = [(study.simulator.name, dict(study.simulator.options), thetas[i:i + 16], conds[i:i + 16])
            for i in range(0, len(thetas), 16)]
    with ProcessPoolExecutor(workers) as pool:
        runs = [r for part in pool.map(simulate, jobs) for r in part]
    n = real.sizes["test"]
    p_sim = np.array([np.mean([runs[i]["hazard_level"] >= TR_LEVEL for i in np.flatnonzero(test == t)])
                      for t in range(n)])
    level = real["hazard_level"].values.astype(float)
    known = np.isfinite(level)
    y = (level >= TR_LEVEL).astype(float)
    eps = 1.0 / (2 * per_test + 2)
    pc = np.clip(p_sim, eps, 1 - eps)
    family = real["cell_family"].values.astype(str)
    sim = {k: np.array([r.get(k, np.nan) for r in runs]) for k in OBSERVABLES}
    families = {}
    for f in np.unique(family):
        m, rows = (family == f) & known, np.isin(test, np.flatnonzero(family == f))
        families[f] = {"tests": int(m.sum()), "observed_runaway": float(y[m].mean()) if m.any() else None,
                       "simulated_runaway": float(p_sim[m].mean()) if m.any() else None,
                       **{f"{k}_real_mean": float(np.nanmean(real[k].values[family == f])) for k in OBSERVABLES
                          if k in real and np.isfinite(real[k].values[family == f]).any()},
                       **{f"{k}_simulated_mean": float(np.nanmean(sim[k][rows])) for k in OBSERVABLES
                          if np.isfinite(sim[k][rows]).any()}}
    params = list(thetas[0])
    theta = np.array([[t[p] for p in params] for t in thetas])
    return {"run": str(run), "simulations": len(runs), "per_test": per_test,
            "brier": float(np.mean((p_sim[known] - y[known]) ** 2)),
            "log_loss": float(-np.mean(y[known] * np.log(pc[known]) + (1 - y[known]) * np.log(1 - pc[known]))),
            "simulated_runaway": float(p_sim[known].mean()), "observed_runaway": float(y[known].mean()),
            "families": families, "theta_median": dict(zip(params, np.median(theta, axis=0).tolist()))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="finished run directories (risk run --out)")
    ap.add_argument("--per-test", type=int, default=3, help="posterior draws (simulations) per real test")
    ap.add_argument("--workers", type=int, default=min(2, len(os.sched_getaffinity(0))))
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--fixed", action="append", default=[], metavar="NAME=VALUE",
                    help="a simulator parameter the run's decoder lacks (a run of an older simulator), in SI")
    args = ap.parse_args(argv)
    fixed = {k: float(v) for k, v in (item.split("=", 1) for item in args.fixed)}
    results = []
    for run in args.runs:
        r = check(run, args.per_test, args.workers, args.seed, fixed)
        r["fixed_parameters"] = fixed
        results.append(r)
        print(f"\n{run}: {r['simulations']} simulations; Brier {r['brier']:.3f}, log loss {r['log_loss']:.3f}, "
              f"simulated runaway {r['simulated_runaway']:.3f} against observed {r['observed_runaway']:.3f}")
        print(f"{'family':18s} {'tests':>5s} {'obs TR':>6s} {'sim TR':>6s}  " + "  ".join(f"{LABELS[k]:>22s}" for k in OBSERVABLES))
        for f, v in r["families"].items():
            cells = "  ".join(f"{v.get(k + '_real_mean', np.nan):10.2f}/{v.get(k + '_simulated_mean', np.nan):<11.2f}"
                              for k in OBSERVABLES)
            obs = "" if v["observed_runaway"] is None else f"{v['observed_runaway']:6.2f} {v['simulated_runaway']:6.2f}"
            print(f"{f:18s} {v['tests']:5d} {obs:>13s}  {cells}")
        print("median calibrated cell:", {k: float(f"{x:.3g}") for k, x in r["theta_median"].items()})
    write_result("simulator_at_calibrated_cells", {"runs": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
