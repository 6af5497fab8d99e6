"""The FE hot spot of the internal short (abuse_fe.hotspot): first law, mesh convergence, and the ring model
(abuse_fe.coupled.short_thermal_response) as its limit when the stack conducts as well across as along."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import abuse_fe  # noqa: F401  (before dolfinx)
from abuse_fe.coupled import CellThermal, short_thermal_response
from abuse_fe.hotspot import short_thermal_response_fe

#: a 1.8 A h LCO pouch at SOC 0.6 with a 55 mΩ short: local heating to ~130 °C, no runaway (hazard level 3-4)
MILD = dict(short_resistance=0.0548, current_limit_c_rate=10.95, kinetics_log_rate_shift=0.0, heat_transfer=100.0,
            soc=0.6, capacity=1800.0, thickness=5e-3, spot_radius=3.5e-3, temperature_ambient=298.15, t_end=900.0,
            n_time=91)
#: a 6.4 A h cell at SOC 1 with a 10 mΩ short at 30 C: the spot melts the separator and the cell runs away
SEVERE = MILD | dict(soc=1.0, capacity=6.4 * 3600, short_resistance=0.01, current_limit_c_rate=30.0)
COARSE = {"n_spot": 2, "n_outer": 20, "n_through": 3}


def test_first_law_through_meltdown_and_runaway():
    """Stored + lost = chemical + Joule heat to round-off (mass-lumped implicit steps), through the separator
    meltdown (the short's resistance falls, the voltage collapses) and the runaway."""
    out = short_thermal_response_fe(**SEVERE, mesh=COARSE)
    assert out["thermal_runaway"] and out["spread_fraction"] > 0.5
    supplied = out["heat_released_total"]
    assert out["heat_released_total"] > out["heat_joule_total"] > 0 and out["heat_lost_total"] > 0
    assert abs(out["energy_balance_residual"]) < 1e-9 * supplied
    assert out["internal_energy_change"] + out["heat_lost_total"] == pytest.approx(supplied, rel=1e-9)
    assert out["voltage"][-1] < 0.1 * out["voltage"][0]  # the molten separator's large-area short
    assert out["discharge_fraction"] > 0.99


def test_mesh_convergence():
    """Peak and bulk-peak temperature rise, spread and the thermocouple's rise rate change by < 2 % from the
    default mesh to one twice as fine in every direction (measured: 0.03 %, 0.2 %, 0.7 %, and 0.013 of the ln rate's
    0.49)."""
    base = short_thermal_response_fe(**MILD)
    fine = short_thermal_response_fe(**MILD, mesh={"n_spot": 8, "n_outer": 80, "n_through": 12})
    T0 = MILD["temperature_ambient"]
    for key in ("temperature_peak", "temperature_bulk_peak"):
        assert base[key] - T0 == pytest.approx(fine[key] - T0, rel=0.02), key
    assert base["spread_fraction"] == pytest.approx(fine["spread_fraction"], rel=0.02)
    assert base["temperature_rise_rate_log"] == pytest.approx(fine["temperature_rise_rate_log"], abs=0.02)
    assert not base["thermal_runaway"] and not fine["thermal_runaway"]


def test_time_to_runaway_does_not_depend_on_the_mesh():
    """The runaway is read through the lag (`RUNAWAY_RATE_TIME`): the severe short's time to runaway on a mesh of
    half the default's resolution and on the default agree within 2 % (measured 34.8 and 34.6 s; 34.9 s on a mesh
    twice as fine; read instantaneously the three gave 1.0, 32.6 and 0.6 s — the ignition of the thin shell just
    outside the spot)."""
    coarse = short_thermal_response_fe(**SEVERE, mesh=COARSE)
    base = short_thermal_response_fe(**SEVERE)
    assert coarse["thermal_runaway"] and base["thermal_runaway"]
    assert coarse["time_to_runaway"] == pytest.approx(base["time_to_runaway"], rel=0.02)
    assert base["time_to_runaway"] > 10.0


def test_rings_are_the_limit_of_a_conducting_stack():
    """With the stack conducting across as well as along (k_through = k_in: no through-thickness gradient at this
    Biot number), the FE and the 48-ring model agree on the short's electrical heat, the peak and bulk-peak rise
    (< 1 %; measured 0.15 % and 0.3 %); with the stack's real k_through (0.6 W/(m K), Biot h H / 2k ≈ 0.4) the faces are cooled less
    effectively from the inside, so the cell keeps more of its heat: a hotter bulk than the rings predict."""
    conducting = replace(CellThermal(), conductivity_through_plane=25.0)
    rings = short_thermal_response(**MILD, n_rings=48, cell=conducting)
    fe = short_thermal_response_fe(**MILD, cell=conducting)
    T0 = MILD["temperature_ambient"]
    assert fe["heat_joule_total"] == pytest.approx(rings["heat_joule_total"], rel=1e-3)
    for key in ("temperature_peak", "temperature_bulk_peak"):
        assert fe[key] - T0 == pytest.approx(rings[key] - T0, rel=0.01), key
    real = short_thermal_response_fe(**MILD)
    assert real["temperature_bulk_peak"] > fe["temperature_bulk_peak"] + 5.0
    assert np.all(np.diff(real["time"]) > 0) and real["temperature_probe"].max() < real["temperature_peak"]
