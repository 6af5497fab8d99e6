"""Physics validation against real data and published cases (writes ``benchmarks/results/physics_validation.json``).

1. **Databank heat and ejecta share, out of sample.** The calorimetry study (`studies/calorimetry_18650.yaml`,
   lumped simulator with venting and ejection) is run to its cross-validation; per cell type, the physics model
   refitted *without that type* predicts its tests' total heat and the ejecta's share of it
   (``crossval.json`` → ``heat.observables.*.leave_family_out.by_family``): observed mean, predicted median,
   median absolute error and coverage of the 90 % predictive interval, next to the per-group baseline's scores.
2. **Hatchard et al. (2001) oven case** with the model the oven and calorimetry studies use (`lumped_thermal`,
   LiCoO2 18650, Kim et al. 2007 kinetics, nominal θ, oven step): the lowest oven temperature that runs away
   (bisection to 0.25 K) against the published bracket (survives 150 °C, runs away at 155 °C); the same for the FE
   model it reduces (`fe_thermal_18650`, coarse and medium meshes), under the same runaway definition.
3. **Energy balance of the venting model**: the body's first law with the ejecta's sensible heat leaving it,
   worst relative residual over prior draws of the calorimetry study's heater and nail conditions.
4. **Casing breach**: the databank's bottom ruptures among runaway tests per cell type against the simulator's
   prior-predictive breach share among runaway simulations (the ensemble of the same run), and — the breach
   criterion calibrated on the ruptures through the sign of the breach margin — the out-of-sample P(bottom
   rupture) of tests of a cell type the fold never saw (``crossval.json`` → ``heat.bottom_rupture``) against the
   rupture frequency per cell type and per SOC × trigger.
5. **Indentation observables, out of sample** (the default study, `studies/indentation_pouch.yaml`, run to its
   cross-validation): per cell family, the physics model refitted *without that family* predicts its tests' force
   at short onset, 60-s voltage drop and log temperature-rise rate (``crossval.json`` → ``observables.*.
   leave_family_out``): observed mean, predicted median, median absolute error, coverage of the 90 % predictive
   interval; over all held-out tests against a per-family × SOC normal interval fitted on the same training tests,
   and the censored values (saturated thermocouples, no short within the stroke) whose bound the interval reaches.
6. **Indentation mechanics on the real force curves** (four ORNL LCO pouch families, `abuse_fe.calibration`;
   crosshead speed 1 mm/min and thicknesses assumed): each family's loading-branch fit (relative RMSE, in
   sample) and its onset forces predicted from the punch law and critical strain pooled over the *other*
   families (leave-one-family-out median relative error).

    python benchmarks/physics_validation.py [--full] [--run DIR] [--study YAML] [--indentation-run DIR]

``--full`` runs the studies' full mode (calorimetry: ensemble 256, full cross-validation, ~1 h on 2 cores;
indentation: ~15 min); the default is their ``--quick`` mode (~10 min each, the indentation families dealt into two
grouped folds), whose numbers are labelled quick in the result. A run directory that already holds the study's
cross-validation is reused (the stage cache).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.record import write_result  # noqa: E402

STUDY = REPO / "studies" / "calorimetry_18650.yaml"
INDENTATION_STUDY = REPO / "studies" / "indentation_pouch.yaml"
HATCHARD_BRACKET = (150.0, 155.0)  # °C: survives / runs away (Hatchard et al., J. Electrochem. Soc. 148 (2001) A755)


def calorimetry_out_of_sample(run: Path, quick: bool, study: Path = STUDY) -> dict:
    """Run the calorimetry study to its cross-validation (stage cache reused) and return the per-cell-type
    out-of-sample scores of every calibrated observable (module doc, item 1)."""
    cmd = [sys.executable, "-m", "risk.cli", "crossvalidate", str(study), "--out", str(run)]
    cmd += ["--quick"] if quick else []
    subprocess.run(cmd, check=True, cwd=REPO)
    cv = json.loads((run / "crossval.json").read_text())
    heat = cv.get("heat") or {}
    out = {"quick": bool(cv.get("quick", quick)), "observables": {}}
    for name, entry in (heat.get("observables") or {}).items():
        lfo = entry.get("leave_family_out") or {}
        out["observables"][name] = {"units": entry.get("units"), "physics": lfo.get("physics"),
                                    "group_normal": lfo.get("group_normal"), "by_family": lfo.get("by_family", {})}
    out["bottom_rupture"] = {scheme: {k: v for k, v in e.items() if k != "fold_diagnostics"}
                             for scheme, e in (heat.get("bottom_rupture") or {}).items()}
    return out


def indentation_out_of_sample(run: Path, quick: bool, study: Path = INDENTATION_STUDY) -> dict:
    """Run the indentation study to its cross-validation (stage cache reused) and return every observable's
    out-of-sample scores per held-out cell family (module doc, item 5)."""
    cmd = [sys.executable, "-m", "risk.cli", "crossvalidate", str(study), "--out", str(run)]
    cmd += ["--quick"] if quick else []
    subprocess.run(cmd, check=True, cwd=REPO)
    cv = json.loads((run / "crossval.json").read_text())
    return {"quick": bool(cv.get("quick", quick)), "observables": cv.get("observables") or {}}


def stage_seconds(run: Path, upto: str = "crossvalidate") -> dict[str, float]:
    """Seconds each stage of ``run`` took when it was computed, up to ``upto`` (its ``stages.json``): the cost of
    the validation run, also when this script reused it from the stage cache."""
    stages = json.loads((run / "stages.json").read_text())
    order = ("simulate", "ingest", "train", "calibrate", "crossvalidate")
    return {k: round(float(stages[k].get("seconds", float("nan"))), 1) for k in order[:order.index(upto) + 1]
            if k in stages}


def casing_breach(run: Path) -> dict:
    """Bottom ruptures of runaway tests per cell type (real.nc) and the ensemble's breach share among runaway
    simulations (module doc, item 4)."""
    import xarray as xr

    real = xr.open_dataset(run / "real.nc")
    ens = xr.open_zarr(run / "ensemble.zarr", consolidated=False)
    tr, rupture = real["thermal_runaway"].values.astype(bool), real["bottom_rupture"].values.astype(bool)
    fam = real["cell_family"].values.astype(str)
    sim_tr, sim_breach = ens["thermal_runaway"].values.astype(bool), ens["casing_breach"].values.astype(bool)
    return {"data": {f: {"runaway_tests": int((tr & (fam == f)).sum()),
                         "bottom_ruptures": int((tr & rupture & (fam == f)).sum())} for f in sorted(set(fam))},
            "data_share": float(rupture[tr].mean()), "simulated_share": float(sim_breach[sim_tr].mean()),
            "simulated_runaways": int(sim_tr.sum())}


def _oven_threshold(runs_away) -> dict:
    """Lowest oven temperature [°C] at which ``runs_away(celsius)`` (bisection to 0.25 K) and the published bracket."""
    lo, hi = 120.0, 180.0
    assert not runs_away(lo) and runs_away(hi)
    while hi - lo > 0.25:
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if runs_away(mid) else (mid, hi)
    threshold = 0.5 * (lo + hi)
    survives, runs = (not runs_away(HATCHARD_BRACKET[0])), runs_away(HATCHARD_BRACKET[1])
    return {"threshold_celsius": threshold, "published_bracket_celsius": list(HATCHARD_BRACKET),
            "survives_150": survives, "runs_away_155": runs, "agrees": survives and runs,
            "offset_from_bracket_K": 0.0 if HATCHARD_BRACKET[0] <= threshold <= HATCHARD_BRACKET[1]
            else float(min(abs(threshold - b) for b in HATCHARD_BRACKET))}


def hatchard_oven() -> dict:
    """Runaway threshold of the studies' lumped LiCoO2 18650 at nominal θ (module doc, item 2), and of the FE model it
    reduces (`abuse_fe.thermal.FEThermal18650`: can, orthotropic jelly roll, conduction; the same kinetics and runaway
    definition) on its coarse and medium meshes."""
    from simulators.lumped import LumpedThermal

    sim = LumpedThermal(cell="18650_lco_hatchard2001", kinetics="hatchard2001", t_end=10800.0, n_time=181)
    theta = sim.default_theta()
    out = _oven_threshold(lambda celsius: bool(sim.run(theta, {"temperature_oven": 273.15 + celsius,
                                                                "oven_ramp_rate": 100.0}).thermal_runaway))
    out["fe"] = {}
    for resolution in ("coarse", "medium"):
        fe = _fe_oven(resolution)
        out["fe"][resolution] = _oven_threshold(fe) | {"dofs": fe.dofs}
    return out


def _fe_oven(resolution: str):
    """``runs_away(celsius)`` of the FE 18650 in a 3-h oven step (its ``dofs`` attribute: the mesh), at the lumped
    Hatchard cell's inputs: h = 7.17 W/(m² K) (Hatchard et al. 2001) and the jelly roll at Kim et al.'s (2007)
    ρc_p = 2580 kg/m³ × 830 J/(kg K) (the can keeps its steel's); conductivities at their prior medians."""
    import abuse_fe  # noqa: F401  (import order: before dolfinx)
    from abuse_fe.thermal import FEThermal18650, theta_at_lumped_inputs
    from simulators.cells import get_cell

    sim = FEThermal18650(resolution=resolution, t_end=10800.0, n_time=181)
    theta = theta_at_lumped_inputs(sim, get_cell("18650_lco_hatchard2001"))  # the nominal lumped cell's inputs

    def runs_away(celsius: float) -> bool:
        return bool(sim.run(theta, {"temperature_oven": 273.15 + celsius, "oven_ramp_rate": 100.0}).thermal_runaway)

    runs_away.dofs = int(sim.problem().V.dofmap.index_map.size_global)
    return runs_away


def energy_balance(n: int = 40, seed: int = 0) -> dict:
    """Worst first-law residual of the venting lumped model over prior draws (module doc, item 3)."""
    from simulators.lumped import LumpedThermal

    sim = LumpedThermal(cell="18650_nmc_lg_mj1", t_end=1800.0, n_time=61)
    rng = np.random.default_rng(seed)
    defaults = {c.name: c.default for c in sim.conditions}
    worst, ejected, runaway = 0.0, 0, 0
    for k in range(n):
        theta = {p.name: float(p.prior.ppf(rng.uniform())) for p in sim.parameters}
        soc = float(rng.uniform(0.2, 1.0))
        cond = defaults | ({"heater_power": 900.0, "heater_duration": 94.0, "soc": soc} if k % 2 == 0
                           else {"short_resistance": float(rng.uniform(0.005, 0.1)), "soc": soc})
        r = sim.simulate(theta, cond)
        mcp = sim._cell.heat_capacity * theta["heat_capacity_factor"]
        if np.isfinite(r.time_ejection):
            mcp *= 1.0 - theta["ejecta_fraction"] * sim._cell.jelly_roll_fraction
            ejected += 1
        runaway += r.thermal_runaway
        inputs = r.heat_chemical_quadrature + r.energy_short_quadrature + r.energy_heater
        budget = inputs - r.energy_lost - r.heat_ejecta_sensible
        worst = max(worst, abs(mcp * (r.temperature_final - cond["temperature_ambient"]) - budget) / inputs)
    return {"draws": n, "runaway": int(runaway), "ejected": int(ejected), "first_law_residual_max": worst}


def mechanics(data: Path) -> dict:
    """Force-curve fit per family and leave-one-family-out onset force (module doc, item 6)."""
    import warnings

    from abuse_fe.calibration import FAMILIES, fit_family, leave_family_out_onset, read_family

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # openpyxl's workbook-style warnings
        curves = {f: read_family(data, f) for f in FAMILIES}
    curves = {f: c for f, c in curves.items() if c}
    lfo = leave_family_out_onset(curves)
    out = {}
    for fam, cs in curves.items():
        fit = fit_family(cs, fam)
        out[fam] = {"tests": len(cs), "fit_rmse_relative": fit.rmse_relative,
                    "onset_force_measured_mean": float(lfo[fam]["measured"].mean()),
                    "onset_force_predicted_lfo": float(lfo[fam]["predicted"][0]),
                    "onset_force_lfo_median_relative_error": lfo[fam]["median_relative_error"],
                    "pooled_theta_without_family": lfo[fam]["theta"]}
    return {"speed_assumed_m_per_s": 1.0e-3 / 60.0, "families": out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="the study's full mode (default: --quick)")
    ap.add_argument("--run", type=Path, default=None, help="run directory (default runs/physics_validation[_quick])")
    ap.add_argument("--study", type=Path, default=STUDY, help="the calorimetry study file (default the shipped one)")
    ap.add_argument("--indentation-run", type=Path, default=None,
                    help="run directory of the indentation study (default runs/physics_validation_indentation[_quick])")
    args = ap.parse_args()
    quick = not args.full
    run = args.run or REPO / "runs" / ("physics_validation_quick" if quick else "physics_validation")
    calorimetry = calorimetry_out_of_sample(run, quick, args.study)
    ind_run = args.indentation_run or REPO / "runs" / ("physics_validation_indentation" + ("_quick" if quick else ""))
    indentation = indentation_out_of_sample(ind_run, quick)
    t_cal, t_ind = stage_seconds(run), stage_seconds(ind_run)
    oven = hatchard_oven()
    balance = energy_balance()
    mech = mechanics(REPO.parent / "shared" / "data" / "indentation" / "raw")
    breach = casing_breach(run)

    print(f"\nDatabank, leave-cell-type-out ({'quick' if quick else 'full'} calorimetry study)")
    print(f"{'observable':22s} {'cell type':28s} {'n':>3s} {'observed':>9s} {'predicted':>9s} {'|err| med':>9s} "
          f"{'cov90':>6s}")
    for name, entry in calorimetry["observables"].items():
        for fam, r in entry["by_family"].items():
            print(f"{name:22s} {fam:28s} {r['n']:3d} {r['observed_mean']:9.3f} {r['predicted_median']:9.3f} "
                  f"{r['median_abs_error']:9.3f} {r['coverage_90']:6.2f}")
        if entry.get("physics"):
            base = entry.get("group_normal") or {}
            print(f"{name:22s} {'all: physics / group normal':28s} coverage {entry['physics']['coverage_90']:.2f} / "
                  f"{base.get('coverage_90', float('nan')):.2f}, "
                  f"interval score {entry['physics']['interval_score_90']:.3g}"
                  f" / {base.get('interval_score_90', float('nan')):.3g}")
    print(f"\nHatchard oven (lumped LiCoO2 18650, nominal θ): threshold {oven['threshold_celsius']:.2f} °C; "
          f"survives 150 °C: {oven['survives_150']}, runs away at 155 °C: {oven['runs_away_155']}")
    for resolution, r in oven["fe"].items():
        print(f"Hatchard oven (FE 18650, {resolution} mesh, {r['dofs']} dofs): threshold {r['threshold_celsius']:.2f} °C; "
              f"survives 150 °C: {r['survives_150']}, runs away at 155 °C: {r['runs_away_155']}")
    print(f"First law with ejection: worst residual {balance['first_law_residual_max']:.1e} over {balance['draws']} "
          f"prior draws ({balance['ejected']} ejected, {balance['runaway']} ran away)")
    print(f"Casing breach among runaways: databank {breach['data_share']:.3f} (bottom ruptures), simulator prior "
          f"predictive {breach['simulated_share']:.3f} of {breach['simulated_runaways']} runaway simulations")
    for scheme, e in calorimetry["bottom_rupture"].items():
        print(f"P(bottom rupture), {scheme} ({e['n_tests']} tests, {e.get('n_ruptures')} ruptures), log loss / Brier: "
              + ", ".join(f"{m} {e[m]['log_loss']:.3f} / {e[m]['brier']:.3f}" for m in
                          ("physics", "family_frequency", "soc_trigger_frequency") if m in e))
    print(f"\nIndentation observables ({'quick' if indentation['quick'] else 'full'} default study): physics model "
          "refitted without the cell family it predicts")
    print(f"{'observable':26s} {'cell family':18s} {'n':>3s} {'observed':>9s} {'predicted':>9s} {'|err| med':>9s} "
          f"{'cov90':>6s}")
    for name, entry in indentation["observables"].items():
        lfo = entry.get("leave_family_out") or {}
        for fam, r in (lfo.get("by_family") or {}).items():
            print(f"{name:26s} {fam:18s} {r['n']:3d} {r['observed_mean']:9.3f} {r['predicted_median']:9.3f} "
                  f"{r['median_abs_error']:9.3f} {r['coverage_90']:6.2f}")
        if lfo.get("physics"):
            base, bounds = lfo.get("group_normal") or {}, lfo.get("bounds") or {}
            print(f"{name:26s} {'all: physics / group normal':28s} coverage {lfo['physics']['coverage_90']:.2f} / "
                  f"{base.get('coverage_90', float('nan')):.2f}, interval score "
                  f"{lfo['physics']['interval_score_90']:.3g} / {base.get('interval_score_90', float('nan')):.3g}; "
                  f"bounds {bounds.get('n', 0)}, reached {bounds.get('within_90', float('nan')):.2f}")
    print("\nIndentation force curves (ORNL LCO pouch; speed and thickness assumed)")
    print(f"{'family':10s} {'tests':>5s} {'fit rel. RMSE':>13s} {'onset F meas.':>13s} {'LFO pred.':>9s} "
          f"{'LFO rel. err':>12s}")
    for fam, r in mech["families"].items():
        print(f"{fam:10s} {r['tests']:5d} {r['fit_rmse_relative']:13.3f} {r['onset_force_measured_mean']:13.0f} "
              f"{r['onset_force_predicted_lfo']:9.0f} {r['onset_force_lfo_median_relative_error']:12.3f}")
    path = write_result("physics_validation", {"calorimetry": calorimetry, "indentation": indentation,
                                               "hatchard_oven": oven, "energy_balance": balance, "mechanics": mech,
                                               "casing_breach": breach,
                                               # the studies' stage times up to cross-validation, as computed
                                               "seconds_calorimetry": sum(t_cal.values()),
                                               "seconds_indentation": sum(t_ind.values()),
                                               "stage_seconds": {"calorimetry": t_cal, "indentation": t_ind}})
    print(f"wrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
