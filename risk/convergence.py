"""Discretisation error of the study's simulator: the same draws on three systematically refined discretisations.

Solution verification as ASME V&V 20-2009 (§2.4) prescribes it, by the procedure of Celik et al., J. Fluids Eng. 130
(2008) 078001: every discretisation parameter of the simulator (`simulators.base.Simulator.refined`: mesh cells per
direction, rings, step-size controls) is refined together by a constant ratio r, giving three levels — the study's own
(φ0, the coarsest), r and r² finer (φ1, φ2). Per draw and per scalar output φ, with ε10 = φ1 − φ0, ε21 = φ2 − φ1:

- **converged**: both changes within round-off → no discretisation error;
- **monotone** (ε10 ε21 > 0) with apparent order p = ln(ε10 / ε21) / ln r in [`P_MIN`, `P_MAX`]: Richardson's
  extrapolation φ_ext = φ2 + ε21 / (r^p − 1), and the numerical uncertainty of the study's level
  U = Fs |φ0 − φ_ext| with Fs = 1.25 (Roache, J. Fluids Eng. 116 (1994) 405: three levels, observed order);
- otherwise (**oscillatory**, or an order outside the asymptotic range): U = 3 max(|φ0 − φ1|, |φ0 − φ2|), Roache's
  safety factor for an order that is not established (Roache, Verification and Validation in Computational Science
  and Engineering, Hermosa 1998, §5.9).

The yardstick is the one ASME V&V 20 sets beside it: the input uncertainty. The numerical uncertainty of an output
is negligible when its root mean square over the draws is at most `INPUT_FRACTION` of the output's spread over the
study's ensemble (the prior's effect on it), so that it adds at most half a per cent to √(u_num² + u_input²). The
runaway (`sim2real.bridge.simulated_runaway`, the one definition every stage uses) and the hazard level must not
change between the study's level and the finest in any draw. A failed run is recorded with its error and its draw
left out; the stage does not stop.
"""
from __future__ import annotations

import math
import multiprocessing
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor

import numpy as np

#: refinement ratio between successive levels (Celik et al. 2008 recommend r > 1.3)
RATIO = 1.5
#: apparent orders taken as asymptotic; outside, the conservative estimate (module doc)
P_MIN, P_MAX = 0.5, 4.0
#: safety factors of the grid convergence index: observed order on three levels / order not established
FS_OBSERVED, FS_UNKNOWN = 1.25, 3.0
#: numerical uncertainty negligible when its RMS is at most this fraction of the output's spread over the ensemble
INPUT_FRACTION = 0.1
#: scalar outputs checked besides the study's calibrated observables
EXTRA_OUTPUTS = ("temperature_peak", "time_to_runaway")


def refinable(simulator: str) -> bool:
    """Has the registered ``simulator`` a discretisation to refine (it overrides `Simulator.refined`)? Decided
    without importing it (`simulators.registry.overrides`): loading a study must not load its FE stack."""
    from simulators.registry import overrides

    return overrides(simulator, "refined")


def estimate(phi: tuple[float, float, float], ratio: float = RATIO) -> dict:
    """The study level's numerical uncertainty from one output on three levels ``phi`` = (φ0 study, φ1, φ2 finest),
    in φ's units (module doc). Returns ``{"state", "order", "extrapolated", "uncertainty"}`` (NaN where φ is not
    finite on every level; ``order`` NaN unless monotone)."""
    f0, f1, f2 = map(float, phi)
    nan = {"state": "missing", "order": math.nan, "extrapolated": math.nan, "uncertainty": math.nan}
    if not all(map(math.isfinite, phi)):
        return nan
    e10, e21 = f1 - f0, f2 - f1
    tol = 1e-10 * max(abs(f0), abs(f1), abs(f2), 1e-300)
    if abs(e10) <= tol and abs(e21) <= tol:
        return {"state": "converged", "order": math.nan, "extrapolated": f2, "uncertainty": 0.0}
    if e10 * e21 > 0 and abs(e21) > tol:
        p = math.log(e10 / e21) / math.log(ratio)
        if P_MIN <= p <= P_MAX:
            ext = f2 + e21 / (ratio**p - 1.0)
            return {"state": "monotone", "order": p, "extrapolated": ext, "uncertainty": FS_OBSERVED * abs(f0 - ext)}
    state = "oscillatory" if e10 * e21 < 0 else "not asymptotic"
    return {"state": state, "order": math.nan, "extrapolated": math.nan,
            "uncertainty": FS_UNKNOWN * max(abs(e10), abs(f2 - f0))}


def _outcome(res: dict, outputs: tuple[str, ...]) -> dict:
    """Runaway, hazard level, the ``outputs`` (NaN where absent) and seconds of one `simulators.ensemble.run_one`
    result."""
    from sim2real.bridge import simulated_runaway

    if not res["ok"]:
        return {"ok": False, "error": res["error"], "seconds": res["wall_time"]}
    ds = res["dataset"]
    runaway = float(simulated_runaway(ds))
    if not np.isfinite(runaway):
        return {"ok": False, "error": "no runaway outcome in the dataset", "seconds": res["wall_time"]}
    return {"ok": True, "runaway": bool(runaway), "seconds": res["wall_time"],
            "hazard_level": int(ds["hazard_level"]) if "hazard_level" in ds else None,
            "outputs": {k: float(ds[k]) if k in ds else math.nan for k in outputs},
            "units": {k: str(ds[k].attrs.get("units", "")) for k in outputs if k in ds}}


def _run_levels(args: tuple) -> list[dict]:
    """One draw on the study's level and the refined ones (a worker process); a draw of ``reduced_from`` is first
    mapped onto ``simulator``, its reference (`risk.fidelity.Reduction.inputs`)."""
    from simulators.ensemble import run_one
    from simulators.registry import load

    simulator, options, theta, condition, timeout, outputs, levels, reduced_from = args
    if reduced_from is not None:
        from risk.fidelity import reduction

        name, study_options = reduced_from
        full = {c.name: c.default for c in load(name).conditions} | condition
        try:
            options, theta, condition = reduction(name, simulator).inputs(dict(study_options), theta, full,
                                                                          load(simulator), dict(options))
        except ValueError as err:
            return [{"ok": False, "error": f"ValueError: {err}", "seconds": 0.0, "options": {}}] * levels
    base = load(simulator)(**dict(options))
    rows = []
    for level in range(levels):
        opts = _options(base if level == 0 else base.refined(RATIO**level))
        rows.append(_outcome(run_one(simulator, opts, theta, condition, timeout), outputs) | {"options": opts})
    return rows


def _options(sim) -> dict:
    """The dataclass options of a simulator instance (what `simulators.ensemble.run_one` rebuilds it from)."""
    from dataclasses import fields

    return {f.name: getattr(sim, f.name) for f in fields(sim) if f.init and f.name != "options"}


def check(simulator: str, options: Mapping, priors: Mapping, conditions: Mapping, condition_sets=(), *, n: int,
          seed: int, input_spread: Mapping[str, float], workers: int = 0, timeout: float = 600.0,
          observables: tuple[str, ...] = (), levels: int = 3,
          reduced_from: tuple[str, Mapping] | None = None) -> dict:
    """``n`` Sobol draws over ``priors`` and ``conditions`` (``condition_sets``: `simulators.ensemble.design_sets`)
    on ``levels`` discretisations of ``simulator`` refined by `RATIO` (module doc) in ``workers`` spawned processes
    (0: in this process, which then loads the simulator's FE stack beside whatever it holds — a stage passes ≥ 1).

    input_spread : per output, its standard deviation over the study's ensemble [output units] (the yardstick).
    reduced_from : ``(name, options)`` of the study's simulator when ``simulator`` is the reference it reduces
        (a mesh-free model's FE reference): the draws are the study simulator's, mapped as `risk.fidelity` maps
        them, with the parameters the reference does not vary at their prior medians.

    Returns ``{"simulator", "ratio", "levels", "level_options", "n_draws", "outputs": {name: {"units", "n",
    "states", "uncertainty_rms", "uncertainty_max", "order_median", "input_spread", "ratio_to_input",
    "negligible"}}, "runaway_changes", "hazard_level_changes", "converged", "failures", "rows", "wall_s"}``
    (``negligible`` None where no draw has the output on every level or it has no spread to judge by;
    ``converged``: every draw ran on every level, no runaway or hazard-level change, every output judged is
    negligible, and at least one is judged)."""
    from simulators.ensemble import design_sets

    outputs = tuple(dict.fromkeys((*observables, *EXTRA_OUTPUTS)))
    plan = design_sets(priors, dict(conditions), list(condition_sets), n, "sobol", seed)
    held = {}
    if reduced_from is not None:
        from risk.fidelity import reduction

        held = {k: float(priors[k].ppf(0.5)) for k in reduction(reduced_from[0], simulator).held if k in priors}
        reduced_from = (reduced_from[0], dict(reduced_from[1]))
    jobs = [(simulator, dict(options), th | held, c, timeout, outputs, levels, reduced_from)
            for th, c in (plan.sample(i) for i in range(len(plan)))]
    t0 = time.perf_counter()
    if workers >= 1 and jobs:
        with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=multiprocessing.get_context("spawn")) as pool:
            rows = list(pool.map(_run_levels, jobs))
    else:
        rows = [_run_levels(j) for j in jobs]
    ok = [r for r in rows if all(x["ok"] for x in r)]
    units = next((r[0]["units"] for r in ok), {})
    table = {}
    for name in outputs:
        est = [estimate(tuple(x["outputs"][name] for x in r)) for r in ok]
        est = [e for e in est if e["state"] != "missing"]
        u = np.array([e["uncertainty"] for e in est], float)
        spread = float(input_spread.get(name, math.nan))
        rms = float(np.sqrt(np.mean(u**2))) if len(u) else math.nan
        ratio = rms / spread if spread > 0 else math.nan
        orders = [e["order"] for e in est if e["state"] == "monotone"]
        table[name] = {"units": units.get(name, ""), "n": len(est),
                       "states": {s: sum(e["state"] == s for e in est)
                                  for s in ("converged", "monotone", "oscillatory", "not asymptotic")},
                       "uncertainty_rms": rms, "uncertainty_max": float(u.max()) if len(u) else math.nan,
                       "order_median": float(np.median(orders)) if orders else math.nan,
                       "input_spread": spread, "ratio_to_input": ratio,
                       "negligible": bool(ratio <= INPUT_FRACTION) if len(u) and math.isfinite(ratio) else None}
    runaway_changes = sum(r[0]["runaway"] != r[-1]["runaway"] for r in ok)
    level_changes = sum(r[0]["hazard_level"] != r[-1]["hazard_level"] for r in ok)
    return {"simulator": simulator, "reduced_from": reduced_from[0] if reduced_from else None, "held": held,
            "ratio": RATIO, "levels": levels, "seed": seed,
            "level_options": next(([x["options"] for x in r] for r in rows if all(x["ok"] for x in r)), []),
            "level_seconds_per_run": [float(np.mean([r[k]["seconds"] for r in ok])) if ok else math.nan
                                      for k in range(levels)],
            "n_draws": len(rows), "n_complete": len(ok), "input_fraction": INPUT_FRACTION, "outputs": table,
            "runaways": int(sum(r[0]["runaway"] for r in ok)),
            "runaway_changes": int(runaway_changes), "hazard_level_changes": int(level_changes),
            "converged": len(ok) == len(rows) > 0 and runaway_changes == 0 and level_changes == 0
            and all(v["negligible"] is not False for v in table.values())
            and any(v["negligible"] for v in table.values()),
            "failures": [{"draw": i, "level": k, "error": x["error"]} for i, r in enumerate(rows)
                         for k, x in enumerate(r) if not x["ok"]],
            "rows": [{"theta": j[2], "condition": j[3],
                      "levels": [{k: v for k, v in x.items() if k not in ("units", "options")} for x in r]}
                     for j, r in zip(jobs, rows)],
            "wall_s": time.perf_counter() - t0}


def ensemble_spread(ensemble, outputs) -> dict[str, float]:
    """Per output, the standard deviation over the ensemble's completed runs where it is finite [its units]."""
    out = {}
    for name in outputs:
        if name in ensemble and ensemble[name].ndim == 1:
            v = np.asarray(ensemble[name].values, float)
            v = v[np.isfinite(v)]
            out[name] = float(v.std(ddof=1)) if len(v) > 1 else math.nan
    return out
