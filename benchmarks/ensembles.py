"""Ensembles of the project's simulators for the benchmarks, cached on disk by their hash.

`cached_ensemble` draws the design with `simulators.ensemble.design_sets` (the simulator's own priors,
conditions as SI values or ``(low, high)`` ranges), runs it with `simulators.ensemble.run_ensemble` (one Dask
worker by default, ``batch_size`` samples per task through the simulator's `run_batch`) into
``benchmarks/.cache/<simulator>-<hash>/ensemble.zarr`` and returns the opened store. The hash is of (simulator
name, options, conditions, design, size, seed), not of how it was run (workers and batch size do not change the
results): a rerun reuses a finished store and finishes an interrupted one.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import xarray as xr

from simulators.ensemble import design_sets, open_ensemble, run_ensemble
from simulators.registry import load

CACHE = Path(__file__).resolve().parent / ".cache"


def ensemble_key(simulator: str, options: dict, conditions: dict, design: str, n: int, seed: int) -> str:
    """16 hex digits of the SHA-1 of the ensemble's defining arguments (JSON, sorted keys)."""
    spec = json.dumps({"simulator": simulator, "options": options, "conditions": conditions, "design": design,
                       "size": n, "seed": seed}, sort_keys=True)
    return hashlib.sha1(spec.encode()).hexdigest()[:16]


def cached_ensemble(simulator: str, options: dict, conditions: dict, n: int, design: str = "sobol",
                    seed: int = 0, timeout: float = 300.0, workers: int = 1, batch_size: int = 1) -> xr.Dataset:
    """The ensemble of ``n`` samples of ``simulator`` (registered name) over its priors, from the cache or run now.

    Failed samples (``failures.jsonl`` beside the store) are left out, as in a study's ensemble.
    """
    store = CACHE / f"{simulator}-{ensemble_key(simulator, options, conditions, design, n, seed)}" / "ensemble.zarr"
    done = store.with_name("done.json")
    if not done.exists():
        priors = {p.name: p.prior for p in load(simulator).parameters}
        plan = design_sets(priors, conditions, [], n, design, seed)
        res = run_ensemble(simulator, options, plan, store, workers=workers, timeout=timeout, batch_size=batch_size)
        done.write_text(json.dumps({"samples": res.n_total, "failed": len(res.failed), "seconds": res.wall_time}))
    return open_ensemble(store)


#: the mesh-free coupled indentation chain over the default study's condition ranges (studies/indentation_pouch.yaml:
#: SOC 0–1, nominal capacity 0.4–7 A h = 1440–25200 A s); the other conditions at their defaults
INDENTATION = {"simulator": "indentation_lumped", "options": {},
               "conditions": {"soc": (0.0, 1.0), "capacity_nominal": (1440.0, 25200.0)}}
