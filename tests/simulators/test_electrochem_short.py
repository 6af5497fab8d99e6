"""Internal short computed by PyBaMM (DFN) with the decomposition kinetics in the same DAE."""

import numpy as np
import pytest

import simulators.coupled  # noqa: F401  (registration)
from simulators import load
from simulators.base import SimulationError
from simulators.electrochem import ocv_resistance_table
from simulators.electrochem_short import internal_short
from simulators.kinetics import load as load_kinetics


def _quadrature(ds, name):
    y = ds[name].values
    ok = np.isfinite(y)
    return float(np.trapezoid(y[ok], ds.time.values[ok]))


def test_short_to_runaway_first_law_and_tabulated_chain():
    """0.3 Ω in the charged LG M50: the short's Joule heat + electrochemical heat + reaction heat equal the
    stored + lost heat (first law, 1 %; measured 2e-15), the integrated energies equal the quadrature of the
    reported heat series (1 %), and the runaway time agrees with the chain's tabulated short within 10 %
    (measured 299 s vs 311 s)."""
    ks = load_kinetics("bilyaz2020").at_soc(1.0)
    ds = internal_short(0.3, soc=1.0, kinetics=ks, t_end=400.0, n_time=801)
    assert ds.attrs["termination"] == "runaway" and bool(ds.thermal_runaway)
    sources = float(ds.energy_short + ds.energy_cell_heat + ds.energy_reactions)
    assert float(ds.energy_stored + ds.energy_lost) == pytest.approx(sources, rel=0.01)
    for series, total in (("heat_short", "energy_short"), ("heat_cell", "energy_cell_heat"),
                          ("heat_reactions", "energy_reactions")):
        assert _quadrature(ds, series) == pytest.approx(float(ds[total]), rel=0.01), series
    assert float(ds.energy_reactions) > 0.1 * sources  # the kinetics carry the last stage
    assert float(ds.current.max()) / 5.0 == pytest.approx(2.6, abs=0.2)  # ≈ U / (R_s + R_cell)
    tab = load("coupled_short_lumped")(separator_short=False)
    ref = tab.run({**tab.default_theta(), "short_resistance": 0.3}, {"soc": 1.0, "temperature_ambient": 298.15})
    assert float(ref.time_to_runaway) == pytest.approx(float(ds.time_to_runaway), rel=0.10)
    assert ds.energy_short.attrs["units"] == "J" and ds.current.attrs["units"] == "A"


def test_short_without_kinetics_releases_the_stored_energy():
    """1 Ω without decomposition drains the cell: the heat released (short + electrodes) is the electrical
    energy stored, ∫ OCV dq of a C/20 discharge to 2.5 V, within 5 %; the short drains the charge the 2.5 V
    cut-off leaves too (measured: 5.28 A h of the nominal 5 A h)."""
    soc_grid, ocv, _, cap = ocv_resistance_table("Chen2020", 298.15)
    stored = cap * np.trapezoid(ocv, soc_grid)
    ds = internal_short(1.0, soc=1.0, kinetics=None, t_end=7.2e3, n_time=73)
    assert ds.attrs["termination"] in ("negative electrode drained", "positive electrode full")
    assert float(ds.energy_reactions) == 0.0 and not bool(ds.thermal_runaway)
    assert float(ds.energy_short + ds.energy_cell_heat) == pytest.approx(stored, rel=0.05)
    assert 1.0 * cap < float(ds.charge_passed) < 1.1 * cap


def test_hard_short_ends_at_electrolyte_depletion_and_simulator_records_it():
    """0.05 Ω: the electrolyte depletes within seconds (Sand's time); the function says so, the simulator
    raises SimulationError (a recorded failed run, not a claimed 'no runaway'); a soft short with strong
    cooling runs to the time limit without runaway."""
    ds = internal_short(0.05, soc=1.0, kinetics=load_kinetics("bilyaz2020").at_soc(1.0), t_end=60.0, n_time=61)
    assert ds.attrs["termination"] == "electrolyte depleted" and float(ds.time_end) < 30.0
    sim = load("pybamm_short_runaway")(t_end=600.0, n_time=61)
    with pytest.raises(SimulationError, match="electrolyte depleted"):
        sim.run({"short_resistance": 0.05, "h_conv": 7.0}, {"soc": 1.0})
    soft = sim.run({"short_resistance": 5.0, "h_conv": 50.0}, {"soc": 1.0})
    assert soft.attrs["termination"] == "time limit" and not bool(soft.thermal_runaway)
    assert float(soft.temperature_peak) < 320.0
