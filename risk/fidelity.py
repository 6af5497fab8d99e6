"""A study's reduced simulator against the higher-fidelity simulator it reduces, on fresh draws across its prior.

An ensemble affords a reduced model; the finite-element model it reduces is the yardstick. Two pairs are mapped
(`REDUCTIONS`, looked up by `reduction`):

- `lumped_thermal` (one temperature for the whole cell) → `fe_thermal_18650` / `_21700` (`abuse_fe.thermal`: can,
  orthotropic jelly roll, conduction in (r, z); the same kinetics and runaway definition);
- `fe_indentation_coupled` with its ring thermal model → the same chain with ``thermal="fe"`` (`abuse_fe.hotspot`:
  the short's hot spot and its spread on an axisymmetric FE mesh through the stack; the same punch, circuit and
  separator meltdown).

`compare` draws a Sobol design over the study's priors and conditions and runs every draw through the reference and
through the reduced model **as the study runs it**, and, where the reduced model has physics the reference lacks,
with it switched off (**same physics**: the error of the reduction alone; for `lumped_thermal`: no separator-collapse
short, nothing ejected). Parameters the reference does not vary (`Reduction.held`) are held at their prior medians
in every run. The runaway is the one definition every stage uses (`sim2real.bridge.simulated_runaway`: hazard level
≥ 6 where the simulator scores hazard levels, else its ``thermal_runaway``). Reported per arm: runaways, runaway
agreement with its Wilson 95 % interval (the issue's yardstick: ≥ 90 % on ≥ 30 fresh full-model runs),
time-to-runaway ratio where both run away, peak-temperature error where neither does, the mean absolute error of
each calibrated observable, seconds per run. A failed run is recorded with its error, not fatal; its draw is left
out of the agreement.
"""
from __future__ import annotations

import math
import multiprocessing
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np

#: arms of the reduced model compared with the reference (``same_physics`` where `Reduction.same_physics` is set)
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
        lacks; None when it has none.
    held : parameters of the reduced simulator the reference does not vary (held at their prior medians).
    note : one sentence for the report: what the reference resolves that the reduced model does not.
    requires : options the study's ``reference.options`` must set (checked when the study is loaded).
    """

    reference: str
    inputs: Callable[..., tuple[dict, dict, dict]]
    same_physics: Callable[[dict, dict], tuple[dict, dict]] | None
    held: tuple[str, ...]
    note: str
    requires: Mapping[str, object] = field(default_factory=dict)

    @property
    def arms(self) -> tuple[str, ...]:
        return ARMS if self.same_physics is not None else ARMS[:1]


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


def _rings_to_fe_hotspot(options: dict, theta: dict, condition: dict, reference: type, reference_options: dict
                         ) -> tuple[dict, dict, dict]:
    """The coupled chain's draw with its thermal model on the FE hot spot (``thermal="fe"``): same θ and condition."""
    ref_options = dict(options) | dict(reference_options)
    if ref_options.get("thermal") != "fe":
        raise ValueError("the reference of the ring thermal model is the chain with thermal: fe (abuse_fe.hotspot)")
    return ref_options, dict(theta), dict(condition)


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
    for name in ("fe_thermal_18650", "fe_thermal_21700")} | {
    ("fe_indentation_coupled", "fe_indentation_coupled"): Reduction(
        reference="fe_indentation_coupled", inputs=_rings_to_fe_hotspot, same_physics=None, held=(),
        requires={"thermal": "fe"},
        note="the same chain with thermal: fe (abuse_fe.hotspot) resolves the short's hot spot and its spread through "
             "the stack on an axisymmetric FE mesh where the study's chain uses concentric rings; the punch, the "
             "circuit and the separator meltdown are the same")}


def reduction(simulator: str, reference: str) -> Reduction:
    """The map of ``simulator`` onto ``reference``; KeyError naming the known pairs if there is none."""
    try:
        return REDUCTIONS[(simulator, reference)]
    except KeyError:
        known = ", ".join(f"{a} → {b}" for a, b in REDUCTIONS)
        raise KeyError(f"no map of {simulator!r} onto {reference!r} (known pairs: {known})") from None


def _outcome(res: dict, observables: tuple[str, ...]) -> dict:
    """Runaway (`sim2real.bridge.simulated_runaway`), time to runaway [s], peak temperature [K], the ``observables``
    (in the simulator's units, NaN where absent) and seconds of one `simulators.ensemble.run_one` result."""
    from sim2real.bridge import simulated_runaway

    if not res["ok"]:
        return {"ok": False, "error": res["error"], "seconds": res["wall_time"]}
    ds = res["dataset"]
    runaway = float(simulated_runaway(ds))
    if not np.isfinite(runaway):
        return {"ok": False, "error": "no runaway outcome in the dataset", "seconds": res["wall_time"]}
    return {"ok": True, "thermal_runaway": bool(runaway), "time_to_runaway": float(ds["time_to_runaway"]),
            "temperature_peak": float(ds["temperature_peak"]), "seconds": res["wall_time"],
            "observables": {k: float(ds[k]) if k in ds else float("nan") for k in observables},
            "units": {k: str(ds[k].attrs.get("units", "")) for k in observables if k in ds}}


def _run_pair(args: tuple) -> dict:
    """One draw through the reference and the arms of the reduced model (a worker process)."""
    from simulators.ensemble import run_one
    from simulators.registry import load

    simulator, options, reference, reference_options, theta, condition, timeout, observables = args
    red = reduction(simulator, reference)
    full_condition = {c.name: c.default for c in load(simulator).conditions} | condition
    row: dict = {"theta": theta, "condition": condition}
    try:
        ref_options, ref_theta, ref_condition = red.inputs(options, theta, full_condition, load(reference),
                                                           dict(reference_options))
    except ValueError as err:
        row["reference"] = {"ok": False, "error": f"ValueError: {err}", "seconds": 0.0}
    else:
        row["reference"] = _outcome(run_one(reference, ref_options, ref_theta, ref_condition, timeout), observables)
    row["as_study"] = _outcome(run_one(simulator, options, theta, condition, timeout), observables)
    if red.same_physics is not None:
        same_options, same_theta = red.same_physics(options, theta)
        row["same_physics"] = _outcome(run_one(simulator, same_options, same_theta, condition, timeout), observables)
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
    ratio = ratio[np.isfinite(ratio)]  # a hazard-level runaway (pouch rupture) may have no time of cell runaway
    k = int(sum(agree))
    return {
        "n": len(ok), "runaways": int(sum(r[arm]["thermal_runaway"] for r in ok)),
        "runaway_agreement": k / len(ok) if ok else float("nan"), "runaway_agreement_wilson95": list(wilson95(k, len(ok))),
        "disagreements": [{"condition": r["condition"], "reference": r["reference"]["thermal_runaway"],
                           arm: r[arm]["thermal_runaway"]} for r, a in zip(ok, agree) if not a],
        "time_to_runaway_ratio_median": float(np.median(ratio)) if len(ratio) else float("nan"),
        "time_to_runaway_ratio_range": [float(ratio.min()), float(ratio.max())] if len(ratio) else [],
        "peak_temperature_mae_no_runaway_K": float(np.mean([abs(r[arm]["temperature_peak"]
                                                                - r["reference"]["temperature_peak"]) for r in calm]))
        if calm else float("nan"),
        "observable_mae": {k: _mae([r[arm]["observables"][k] - r["reference"]["observables"][k] for r in ok])
                           for k in (ok[0]["reference"]["observables"] if ok else {})},
        "seconds_per_run": float(np.mean([r[arm]["seconds"] for r in ok])) if ok else float("nan"),
    }


def _mae(differences: list[float]) -> float:
    """Mean absolute difference over the finite ones (NaN if none)."""
    d = np.abs(np.asarray(differences, float))
    d = d[np.isfinite(d)]
    return float(d.mean()) if len(d) else float("nan")


def compare(simulator: str, options: Mapping, reference: str, reference_options: Mapping, priors: Mapping,
            conditions: Mapping, condition_sets=(), *, n: int, seed: int, workers: int = 0,
            timeout: float = 600.0, observables: tuple[str, ...] = ()) -> dict:
    """``n`` Sobol draws over ``priors`` and ``conditions`` (``condition_sets``: `simulators.ensemble.design_sets`)
    through ``reference`` and the arms of ``simulator`` (module doc), ``workers`` spawned processes at a time (0: in
    this process, which then loads the FE stack beside whatever it holds — a stage passes ≥ 1);
    ``observables``: outputs whose errors are reported (the study's calibrated observables).

    Returns ``{"simulator", "reference", "note", "held", "n_draws", "arms", "observable_units", "reference_runaways",
    "reference_seconds_per_run", <arm>: summary for each arm, "failures": [{"draw", "model", "error"}], "rows",
    "wall_s"}`` (summaries: `summarise`). Times [s], temperatures [K]."""
    from simulators.ensemble import design_sets

    red = reduction(simulator, reference)
    held = {k: float(priors[k].ppf(0.5)) for k in red.held if k in priors}
    plan = design_sets(priors, dict(conditions), list(condition_sets), n, "sobol", seed)
    jobs = [(simulator, dict(options), reference, dict(reference_options), th | held, c, timeout, tuple(observables))
            for th, c in (plan.sample(i) for i in range(len(plan)))]
    t0 = time.perf_counter()
    if workers >= 1 and jobs:
        with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=multiprocessing.get_context("spawn")) as pool:
            rows = list(pool.map(_run_pair, jobs))
    else:
        rows = [_run_pair(j) for j in jobs]
    ref_ok = [r for r in rows if r["reference"]["ok"]]
    return {"simulator": simulator, "reference": reference, "reference_options": dict(reference_options),
            "note": red.note, "held": held,
            "n_draws": len(rows), "seed": seed, "arms": list(red.arms),
            "observable_units": next((r["reference"]["units"] for r in ref_ok), {}), "agreement_target": AGREEMENT_TARGET, "min_runs": MIN_RUNS,
            "reference_runaways": int(sum(r["reference"]["thermal_runaway"] for r in ref_ok)),
            "reference_seconds_per_run": float(np.mean([r["reference"]["seconds"] for r in ref_ok])) if ref_ok
            else float("nan"),
            **{arm: summarise(rows, arm) for arm in red.arms},
            "failures": [{"draw": i, "model": m, "error": r[m]["error"]} for i, r in enumerate(rows)
                         for m in ("reference", *red.arms) if not r[m]["ok"]],
            "rows": rows, "wall_s": time.perf_counter() - t0}
