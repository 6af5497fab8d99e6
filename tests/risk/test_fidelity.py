"""The studies' reduced simulators against the FE models they reduce (`risk.fidelity`), with real runs of both: the
oven study's lumped cell against the FE 18650, the default study's ring thermal model against the FE hot spot."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from risk.fidelity import compare, reduction
from simulators.lumped import LumpedThermal

REPO = Path(__file__).resolve().parents[2]
OPTIONS = {"cell": "18650_lco_hatchard2001", "kinetics": "hatchard2001", "t_end": 3600.0, "n_time": 61}
PRIORS = {p.name: p.prior for p in LumpedThermal.parameters}


def test_the_fe_cylinder_holds_the_lumped_jelly_rolls_heat_capacity():
    """The map puts the FE jelly roll at the lumped cell's volumetric heat capacity × the draw's factor, the FE's
    convection at the draw's h and its rates at the draw's multipliers."""
    import abuse_fe  # noqa: F401  (before dolfinx)
    from abuse_fe.thermal import FEThermal18650, theta_at_lumped_inputs
    from simulators.cells import get_cell

    cell, fe = get_cell(OPTIONS["cell"]), FEThermal18650()
    draw = {"log_A_cathode": 0.7, "h_conv": 11.0, "heat_capacity_factor": 1.2, "c_sei0": 0.2}
    theta = theta_at_lumped_inputs(fe, cell, draw)
    rho_cp = cell.mass * cell.cp / (math.pi * cell.dims[0] ** 2 / 4 * cell.dims[1])
    assert theta["specific_heat_jelly"] * fe._materials_default.jelly.density == pytest.approx(1.2 * rho_cp)
    assert theta["heat_transfer_coefficient"] == 11.0 and theta["log_A_cathode"] == 0.7
    assert set(theta) == {p.name for p in fe.parameters}  # a complete FE θ; c_sei0 is not one of its inputs


@pytest.mark.parametrize("oven, runs_away, n", [((393.15, 398.15), False, 2), ((443.15, 448.15), True, 1)],
                         ids=["120-125C", "170-175C"])
def test_clear_cut_ovens_agree_and_the_times_are_close(oven, runs_away, n):
    """Well below and well above Hatchard's ~145 °C threshold every model agrees (fresh draws, real FE runs; an FE
    runaway costs ~10 s); where all run away, the lumped cell does so within 25 % of the FE cell's time (it holds
    8 % less heat capacity, docs/benchmarks.md)."""
    res = compare("lumped_thermal", OPTIONS, "fe_thermal_18650", {"resolution": "coarse"}, PRIORS,
                  {"temperature_oven": oven, "soc": 1.0, "capacity_nominal": 7920.0}, n=n, seed=3)
    assert res["n_draws"] == n and not res["failures"]
    assert res["reference_runaways"] == (n if runs_away else 0)
    for arm in ("as_study", "same_physics"):
        assert res[arm]["runaway_agreement"] == 1.0 and res[arm]["runaways"] == res["reference_runaways"]
        if runs_away:
            assert 0.75 < res[arm]["time_to_runaway_ratio_median"] < 1.05
        else:
            assert res[arm]["peak_temperature_mae_no_runaway_K"] < 5.0
    # held at their medians in every arm: inputs the FE cell does not have
    assert all(r["theta"]["c_sei0"] == pytest.approx(res["held"]["c_sei0"]) for r in res["rows"])


def test_a_draw_the_reference_cannot_run_is_recorded_not_fatal():
    """A heater (not an oven) cannot be run by the FE oven reference: its draws are failures with the reason, the
    lumped arms still run, and the agreement counts no draw."""
    res = compare("lumped_thermal", OPTIONS | {"t_end": 600.0}, "fe_thermal_18650", {}, PRIORS,
                  {"heater_power": 20.0, "heater_duration": 300.0}, n=2, seed=0)
    assert [f["model"] for f in res["failures"]] == ["reference", "reference"]
    assert "oven exposures only" in res["failures"][0]["error"]
    assert all(r["as_study"]["ok"] and r["same_physics"]["ok"] for r in res["rows"])
    assert res["as_study"]["n"] == 0 and np.isnan(res["as_study"]["runaway_agreement"])


def test_an_unknown_pair_names_the_known_ones():
    with pytest.raises(KeyError, match="lumped_thermal → fe_thermal_18650"):
        reduction("lumped_thermal", "fe_thermal_pouch")


def test_the_rings_against_the_fe_hot_spot_compare_the_calibrated_observables():
    """The default study's chain (rings) against the same chain on the FE hot spot, one fresh draw of a charged 2-4 A h
    LCO cell (an FE hot-spot runaway costs ~10-20 s): one arm (the rings have no physics the FE hot spot lacks), the
    runaway by hazard level ≥ 6, and the errors of the study's calibrated observables small against their ranges
    (benchmarks/hotspot_fe_vs_rings.py: 64 of 64 runaways agree)."""
    from risk.study import load_study

    study = load_study(REPO / "studies" / "indentation_pouch.yaml", quick=True)
    observables = tuple(study.sim2real.observables)
    res = compare("fe_indentation_coupled", {}, "fe_indentation_coupled", {"thermal": "fe"}, study.priors(),
                  {"soc": (0.9, 1.0), "capacity_nominal": (7200.0, 14400.0), "chemistry": 0.0}, n=1, seed=1,
                  observables=observables)
    assert res["arms"] == ["as_study"] and "same_physics" not in res and not res["failures"]
    a = res["as_study"]
    assert a["n"] == 1 and a["runaway_agreement"] == 1.0
    assert set(a["observable_mae"]) == set(observables)
    assert a["observable_mae"]["force_short_onset"] == 0.0  # the same punch mechanics in both
    assert a["observable_mae"]["voltage_drop"] < 0.1 and a["observable_mae"]["temperature_rise_rate_log"] < 0.3
    for r in res["rows"]:  # the one runaway definition: hazard level ≥ 6 of each chain's own outcome
        assert r["reference"]["thermal_runaway"] == r["as_study"]["thermal_runaway"]
