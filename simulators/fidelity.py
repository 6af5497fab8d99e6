"""A reduced simulator against the higher-fidelity simulator it reduces, on fresh draws across a study's prior.

An ensemble affords a reduced model (`simulators.lumped`: one temperature for the whole cell); the finite-element
model it reduces (`abuse_fe.thermal`: can, orthotropic jelly roll, conduction; the same kinetics and the same runaway
definition) is the yardstick. `compare` draws a Sobol design over the study's priors and conditions and runs every
draw through the reference and through the reduced model in two arms:

- **as the study runs it** — the draw as the study's ensemble would simulate it, including physics the reference
  lacks (for `lumped_thermal`: the separator-collapse short, venting and ejection);
- **same physics** — that physics switched off: the error of the reduction alone.

Parameters the reference does not vary (`Reduction.held`) are held at their prior medians in both arms. Reported per
arm: runaways, runaway agreement with its Wilson 95 % interval (the issue's yardstick: ≥ 90 % on ≥ 30 fresh
full-model runs), time-to-runaway ratio where both run away, peak-temperature error where neither does, seconds per
run. A failed run is recorded with its error, not fatal; its draw is left out of the agreement.

A pair needs a map of the reduced model's inputs onto the reference's (`REDUCTIONS`, looked up by `reduction`).
"""
from __future__ import annotations

import math
import multiprocessing
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

#: arms of the reduced model compared with the reference
ARMS = ("as_study", "same_physics")
#: runaway agreement the issue asks of a surrogate or reduction (on ≥ `MIN_RUNS` fresh full-model runs)
AGREEMENT_TARGET, MIN_RUNS = 0.9, 30


@dataclass(frozen=True)
class Reduction:
    """How a reduced simulator's inputs map onto its reference's.

    reference : the registered name of the higher-fidelity simulator.
    inputs : ``(options, theta, condition, reference class, reference options) → (reference options, θ, condition)``
        of one draw (``condition`` with the reduced simulator's defaults filled in); raises ValueError where the
        reference cannot represent the draw.
    same_physics : ``(options, theta) → (options, θ)`` of the reduced simulator without the physics the reference
        lacks.
    held : parameters of the reduced simulator the reference does not vary (held at their prior medians).
    note : one sentence for the report: what the reference resolves that the reduced model does not.
    """

    reference: str
    inputs: Callable[..., tuple[dict, dict, dict]]
    same_physics: Callable[[dict, dict], tuple[dict, dict]]
    held: tuple[str, ...]
    note: str


#: lumped conditions the FE cylinder has (the rest must be at values that leave the oven exposure alone)
_FE_OVEN_CONDITIONS = ("soc", "temperature_oven", "oven_ramp_rate")


def _lumped_to_fe_cylinder(options: dict, theta: dict, condition: dict, reference: type, reference_options: dict
                           ) -> tuple[dict, dict, dict]:
    """`lumped_thermal`'s draw on the FE cylinder (`abuse_fe.thermal.theta_at_lumped_inputs`): same cell, kinetics,
    run length and oven; the FE's initial temperature at the lumped ambient."""
    import abuse_fe  # noqa: F401  (before dolfinx)
    from abuse_fe.thermal import theta_at_lumped_inputs
    from simulators.cells import get_cell
    from simulators.lumped import LumpedThermal

    lumped = LumpedThermal(**options)
    cell = get_cell(lumped.cell)
    if condition.get("heater_power", 0.0) > 0 or condition.get("short_resistance", 1e6) < 1e6:
        raise ValueError("the FE cylinder's reference runs oven exposures only (no heater, no external short)")
    if condition.get("capacity_nominal", 0.0) > 0 and not math.isclose(condition["capacity_nominal"],
                                                                       cell.capacity_nominal, rel_tol=0.01):
        raise ValueError(f"the FE cylinder simulates {cell.name}'s own capacity ({cell.capacity_nominal:g} A s), "
                         f"not {condition['capacity_nominal']:g} A s")
    ref_options = {"t_end": lumped.t_end, "n_time": lumped.n_time, "kinetics": lumped.kinetics or cell.kinetics,
                   "trigger": "oven"} | dict(reference_options)
    ref_condition = {k: float(condition[k]) for k in _FE_OVEN_CONDITIONS} | {
        "temperature_initial": float(condition["temperature_ambient"])}
    return ref_options, theta_at_lumped_inputs(reference(**ref_options), cell, theta), ref_condition


def _lumped_without_extras(options: dict, theta: dict) -> tuple[dict, dict]:
    """`lumped_thermal` without the separator-collapse short and with nothing ejected."""
    return dict(options) | {"separator_short": False}, dict(theta) | {"ejecta_fraction": 0.0}


REDUCTIONS: dict[tuple[str, str], Reduction] = {
    ("lumped_thermal", name): Reduction(
        reference=name, inputs=_lumped_to_fe_cylinder, same_physics=_lumped_without_extras,
        held=("c_sei0", "enthalpy_factor"),
        note=f"{name} resolves the can and the conduction through the orthotropic jelly roll in (r, z) with the same "
             "kinetics and runaway definition (the whole cell's chemical self-heating above 1 K/s); it has no "
             "separator-collapse short, venting or ejection")
    for name in ("fe_thermal_18650", "fe_thermal_21700")}


def reduction(simulator: str, reference: str) -> Reduction:
    """The map of ``simulator`` onto ``reference``; KeyError naming the known pairs if there is none."""
    try:
        return REDUCTIONS[(simulator, reference)]
    except KeyError:
        known = ", ".join(f"{a} → {b}" for a, b in REDUCTIONS)
        raise KeyError(f"no map of {simulator!r} onto {reference!r} (known pairs: {known})") from None


def _outcome(res: dict) -> dict:
    """Runaway, time to runaway [s], peak temperature [K] and seconds of one `simulators.ensemble.run_one` result."""
    if not res["ok"]:
        return {"ok": False, "error": res["error"], "seconds": res["wall_time"]}
    ds = res["dataset"]
    return {"ok": True, "thermal_runaway": bool(ds["thermal_runaway"]), "time_to_runaway": float(ds["time_to_runaway"]),
            "temperature_peak": float(ds["temperature_peak"]), "seconds": res["wall_time"]}


def _run_pair(args: tuple) -> dict:
    """One draw through the reference and both arms of the reduced model (a worker process)."""
    from simulators.ensemble import run_one
    from simulators.registry import load

    simulator, options, reference, reference_options, theta, condition, timeout = args
    red = reduction(simulator, reference)
    full_condition = {c.name: c.default for c in load(simulator).conditions} | condition
    row: dict = {"theta": theta, "condition": condition}
    try:
        ref_options, ref_theta, ref_condition = red.inputs(options, theta, full_condition, load(reference),
                                                           dict(reference_options))
    except ValueError as err:
        row["reference"] = {"ok": False, "error": f"ValueError: {err}", "seconds": 0.0}
    else:
        row["reference"] = _outcome(run_one(reference, ref_options, ref_theta, ref_condition, timeout))
    row["as_study"] = _outcome(run_one(simulator, options, theta, condition, timeout))
    same_options, same_theta = red.same_physics(options, theta)
    row["same_physics"] = _outcome(run_one(simulator, same_options, same_theta, condition, timeout))
    return row


def wilson95(k: int, n: int) -> tuple[float, float]:
    """Wilson score 95 % interval of a binomial fraction k/n (Wilson, JASA 22 (1927) 209)."""
    if n == 0:
        return (0.0, 1.0)
    z, p = 1.959963984540054, k / n
    centre, half = (p + z * z / (2 * n)) / (1 + z * z / n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def summarise(rows: list[dict], arm: str) -> dict:
    """Agreement of ``arm`` of the reduced model with the reference over the draws where both ran."""
    ok = [r for r in rows if r["reference"]["ok"] and r[arm]["ok"]]
    agree = [r[arm]["thermal_runaway"] == r["reference"]["thermal_runaway"] for r in ok]
    both = [r for r in ok if r[arm]["thermal_runaway"] and r["reference"]["thermal_runaway"]]
    calm = [r for r in ok if not r[arm]["thermal_runaway"] and not r["reference"]["thermal_runaway"]]
    ratio = np.array([r[arm]["time_to_runaway"] / r["reference"]["time_to_runaway"] for r in both])
    k = int(sum(agree))
    return {
        "n": len(ok), "runaways": int(sum(r[arm]["thermal_runaway"] for r in ok)),
        "runaway_agreement": k / len(ok) if ok else float("nan"), "runaway_agreement_wilson95": list(wilson95(k, len(ok))),
        "disagreements": [{"condition": r["condition"], "reference": r["reference"]["thermal_runaway"],
                           arm: r[arm]["thermal_runaway"]} for r, a in zip(ok, agree) if not a],
        "time_to_runaway_ratio_median": float(np.median(ratio)) if both else float("nan"),
        "time_to_runaway_ratio_range": [float(ratio.min()), float(ratio.max())] if both else [],
        "peak_temperature_mae_no_runaway_K": float(np.mean([abs(r[arm]["temperature_peak"]
                                                                - r["reference"]["temperature_peak"]) for r in calm]))
        if calm else float("nan"),
        "seconds_per_run": float(np.mean([r[arm]["seconds"] for r in ok])) if ok else float("nan"),
    }


def compare(simulator: str, options: Mapping, reference: str, reference_options: Mapping, priors: Mapping,
            conditions: Mapping, condition_sets=(), *, n: int, seed: int, workers: int = 1,
            timeout: float = 600.0) -> dict:
    """``n`` Sobol draws over ``priors`` and ``conditions`` (``condition_sets``: `simulators.ensemble.design_sets`)
    through ``reference`` and both arms of ``simulator`` (module doc), ``workers`` spawned processes at a time.

    Returns ``{"simulator", "reference", "note", "held", "n_draws", "reference_runaways", "reference_seconds_per_run",
    "as_study": summary, "same_physics": summary, "failures": [{"draw", "model", "error"}], "rows", "wall_s"}``
    (summaries: `summarise`). Times [s], temperatures [K]."""
    from simulators.ensemble import design_sets

    red = reduction(simulator, reference)
    held = {k: float(priors[k].ppf(0.5)) for k in red.held if k in priors}
    plan = design_sets(priors, dict(conditions), list(condition_sets), n, "sobol", seed)
    jobs = [(simulator, dict(options), reference, dict(reference_options), th | held, c, timeout)
            for th, c in (plan.sample(i) for i in range(len(plan)))]
    t0 = time.perf_counter()
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=multiprocessing.get_context("spawn")) as pool:
            rows = list(pool.map(_run_pair, jobs))
    else:
        rows = [_run_pair(j) for j in jobs]
    ref_ok = [r for r in rows if r["reference"]["ok"]]
    return {"simulator": simulator, "reference": reference, "reference_options": dict(reference_options),
            "note": red.note, "held": held,
            "n_draws": len(rows), "seed": seed, "agreement_target": AGREEMENT_TARGET, "min_runs": MIN_RUNS,
            "reference_runaways": int(sum(r["reference"]["thermal_runaway"] for r in ref_ok)),
            "reference_seconds_per_run": float(np.mean([r["reference"]["seconds"] for r in ref_ok])) if ref_ok
            else float("nan"),
            **{arm: summarise(rows, arm) for arm in ARMS},
            "failures": [{"draw": i, "model": m, "error": r[m]["error"]} for i, r in enumerate(rows)
                         for m in ("reference", *ARMS) if not r[m]["ok"]],
            "rows": rows, "wall_s": time.perf_counter() - t0}
