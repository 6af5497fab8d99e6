"""PyBaMM plating simulator, coupled short → runaway simulator (the PyBaMM short: test_electrochem_short.py)."""

import numpy as np
import pytest

import simulators.coupled  # noqa: F401  (registers coupled_short_lumped until its entry point exists)
from simulators import load


@pytest.mark.slow
def test_plating_grows_over_cycles():
    ds = load("pybamm_plating")(n_cycles=2).run({"log_k_plating": 0.0})
    assert float(ds.lithium_plated[1]) > float(ds.lithium_plated[0]) > 0
    assert float(ds.capacity_fade[1]) > 0


def test_coupled_short_energy_and_cached_table():
    from simulators.electrochem import ocv_resistance_table

    sim = load("coupled_short_lumped")()
    th = sim.default_theta()
    sim.simulate(th, {"soc": 1.0, "temperature_ambient": 298.15})  # builds the cached PyBaMM table
    misses = ocv_resistance_table.cache_info().misses
    hard = sim.simulate({**th, "short_resistance": 0.05}, {"soc": 1.0, "temperature_ambient": 298.15})
    # speed is a benchmark matter (benchmarks/simulators_throughput.py); here: no second PyBaMM solve
    assert ocv_resistance_table.cache_info().misses == misses
    soft = sim.simulate({**th, "short_resistance": 5.0}, {"soc": 1.0, "temperature_ambient": 298.15})
    assert hard.thermal_runaway and not soft.thermal_runaway
    for r in (hard, soft):
        assert r.energy_short_quadrature == pytest.approx(r.energy_short, rel=5e-3)
        assert r.heat_chemical_quadrature == pytest.approx(r.heat_chemical, rel=5e-3, abs=1.0)
    ds = sim.run({**th, "short_resistance": 0.05}, {"soc": 0.5})
    assert ds.sizes["time"] == 121 and ds.heat_released_total.attrs["units"] == "J"


def test_plating_to_short_to_runaway_chain():
    """Colder/faster charging plates more lithium; past the critical fraction a hard short runs away."""
    sim = load("plating_short_runaway")(n_cycles=1, n_time=31)
    th = {p.name: float(p.prior.ppf(0.5)) for p in sim.parameters} | {"short_resistance": 0.02}
    cold = sim.run(th | {"plated_fraction_critical": 1e-5}, {"c_rate_charge": 3.0, "temperature_ambient": 263.15})
    warm = sim.run(th | {"plated_fraction_critical": 1e-5}, {"c_rate_charge": 1.0, "temperature_ambient": 298.15})
    assert float(cold.plated_fraction) > 3 * float(warm.plated_fraction) >= 0
    assert bool(cold.internal_short) and bool(cold.thermal_runaway)
    assert float(cold.energy_electrical_short) > 0
    safe = sim.run(th | {"plated_fraction_critical": 1.0}, {"c_rate_charge": 3.0, "temperature_ambient": 263.15})
    assert not bool(safe.internal_short) and not bool(safe.thermal_runaway)
    assert float(safe.temperature_peak) == pytest.approx(263.15, abs=0.5)  # no short: the cell stays at ambient
    for name in ("plated_fraction", "internal_short", "temperature_peak", "lithium_plated"):
        assert cold[name].attrs.get("units") is not None, name
