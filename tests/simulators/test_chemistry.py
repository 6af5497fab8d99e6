"""Chemistry as a categorical simulator condition: codes, OCV tables against PyBaMM, the chain per chemistry."""
from __future__ import annotations

import numpy as np
import pytest

from abuse_fe.coupled import CellThermal, IndentationLumped, default_theta, short_thermal_response
from simulators import chemistry as chem


def test_codes_round_trip_and_refuse_non_levels():
    for k, name in enumerate(chem.CATEGORICAL_CONDITIONS["chemistry"]):
        assert chem.code(name) == k and chem.level(float(k)).name == name
        assert chem.categorical_code(f" {name} ") == k
    assert chem.categorical_code("2 A h") is None
    for bad in (0.5, -1.0, 3.0, float("nan")):
        with pytest.raises(ValueError, match="not one of"):
            chem.level(bad)
    with pytest.raises(KeyError, match="levels: LCO, NMC, LFP"):
        chem.code("NCA")


@pytest.mark.parametrize("name", [c.name for c in chem.CHEMISTRIES.values() if c.pybamm_parameters])
def test_stored_ocv_tables_are_pybamms(name):
    """The stored full-cell OCV equals U_p(y) − U_n(x) of the named PyBaMM set (±2 mV), rises with SOC, and its
    ends are the set's voltage cut-offs."""
    c = chem.CHEMISTRIES[name]
    assert np.asarray(c.ocv[1:]) == pytest.approx(chem.ocv_from_pybamm(c.pybamm_parameters), abs=2e-3)
    assert np.all(np.diff(c.ocv) > 0)


@pytest.mark.parametrize("name", list(chem.CHEMISTRIES))
def test_ring_network_conserves_energy_for_every_chemistry(name):
    """Adiabatic faces, a 10 A h pouch of each chemistry at SOC 0.8: heat stored in the cell = Joule + decomposition
    heat (< 0.5 %), with the chemistry's own OCV, energy density and kinetics."""
    c = chem.CHEMISTRIES[name]
    cell = CellThermal.for_chemistry(c)
    Q = 10.0 * 3600.0
    out = short_thermal_response(short_resistance=0.02, current_limit_c_rate=10.0, kinetics_log_rate_shift=0.0,
                                 heat_transfer=0.0, soc=0.8, capacity=Q, thickness=8e-3, spot_radius=3e-3,
                                 temperature_ambient=298.15, t_end=600.0, kinetics=c.kinetics, cell=cell)
    C_total = cell.heat_capacity_volumetric * Q * cell.voltage_nominal / cell.energy_density
    stored = C_total * (out["temperature_mean"][-1] - 298.15)
    assert stored == pytest.approx(out["heat_released_total"], rel=5e-3)


def test_chemistry_sets_the_chain_kinetics_and_voltage():
    """The same 10 A h cell and abuse (prior medians: a 55 mΩ short): the voltage before the short is the chemistry's
    OCV; the LFP cell (mild cathode reaction) releases less decomposition heat than the NMC cell and stays below
    runaway (hazard level < 6) at SOC 1, the NMC cell reaches it (the ORNL NMC 10 A h cells ran away from SOC 0.5, the
    LFP 10 A h cells never): its separator meltdown takes the voltage to near zero within the 60-s window, as in the
    ORNL NMC runaways (drop 3.5-4.2 V), and its bulk to 172 °C, past the pouch's rupture (level 6; the FE hot spot,
    `abuse_fe.hotspot`, gives the same). Its front stalls at a spread of 0.06, so the cell's self-heating, read
    through the 1-s lag (`RUNAWAY_RATE_TIME`), stays below 1 K/s: no level 7. (Read instantaneously, the ignition of
    the shell around the spot counted as a runaway at 1.9 s with a spread of 0.03.)"""
    sim = IndentationLumped()
    theta = default_theta(sim)
    out = {name: sim.run(theta, {"soc": 1.0, "capacity_nominal": 36000.0, "chemistry": chem.code(name)})
           for name in ("NMC", "LFP")}
    assert not bool(out["LFP"].thermal_runaway) and float(out["NMC"].temperature_bulk_peak) > 433.15
    chemical = {k: float(ds.heat_released_total - ds.heat_joule_total) for k, ds in out.items()}
    assert 0 < chemical["LFP"] < 0.6 * chemical["NMC"]
    assert float(out["NMC"].voltage_drop) > 3.4 and float(out["LFP"].voltage_drop) < float(out["NMC"].voltage_drop)
    assert int(out["LFP"].hazard_level) < 6 <= int(out["NMC"].hazard_level)
    with pytest.raises(Exception, match="not one of"):
        sim.run(theta, {"chemistry": 0.5})
