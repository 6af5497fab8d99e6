"""Coupled indentation chain (abuse_fe.coupled) and the hazard mapping (abuse_fe.hazard)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from abuse_fe.coupled import (
    CellThermal, IndentationFECoupled, IndentationLumped, default_theta, short_thermal_response,
)
from abuse_fe.hazard import HazardRules, hazard_level, hazard_levels
from simulators import available, load

BASE = dict(short=True, thermal_runaway=False, temperature_bulk_peak=320.0, discharge_fraction=0.5,
            local_reaction_fraction=0.5, spread_fraction=0.5)


@pytest.mark.parametrize("change, level", [
    (dict(short=False), 1),
    (dict(thermal_runaway=True), 7),
    (dict(temperature_bulk_peak=440.0), 6),
    (dict(temperature_bulk_peak=400.0), 5),
    (dict(discharge_fraction=0.01), 1),
    (dict(local_reaction_fraction=0.01), 2),
    (dict(spread_fraction=0.001), 3),
    ({}, 4),
])
def test_hazard_rules(change, level):
    assert hazard_level({**BASE, **change}) == level


def test_hazard_levels_vectorised_and_rules_are_parameters():
    out = hazard_levels({k: np.array([v, v]) for k, v in BASE.items()} | {"thermal_runaway": np.array([False, True])})
    assert out.tolist() == [4, 7]
    assert hazard_level({**BASE, "temperature_bulk_peak": 400.0}, HazardRules(swelling_temperature=410.0)) == 4


def test_registered():
    assert {"indentation_lumped", "fe_indentation_coupled", "fe_indentation"} <= set(available())
    assert load("indentation_lumped") is IndentationLumped


def test_short_energy_identity():
    """Electrical heat = stored energy drained: Σ U_ocv I Δt = Q ∫ U_ocv dz over the discharged SOC range (< 1 %)."""
    Q, soc = 1800.0, 0.6
    out = short_thermal_response(short_resistance=0.05, current_limit_c_rate=10.0, kinetics_log_rate_shift=-3.0,
                                 heat_transfer=1000.0, soc=soc, capacity=Q, thickness=5e-3, spot_radius=2e-3,
                                 temperature_ambient=298.15, t_end=1200.0)
    z_end = soc - out["discharge_fraction"]
    z = np.linspace(z_end, soc, 2001)
    stored = Q * np.trapezoid(np.interp(z, *CellThermal().ocv), z)
    assert out["heat_joule_total"] == pytest.approx(stored, rel=0.01)
    # current-limited at 10 C: the full 0.6 of capacity drains in ≈ 0.6·360 s
    assert out["discharge_fraction"] == pytest.approx(0.6 + 0.05, abs=0.02)
    assert not out["thermal_runaway"]
    # the same drain through an external short model (simulators.lumped.ShortModel signature)
    ocv = lambda z: float(np.interp(z, *CellThermal().ocv))  # noqa: E731
    model = lambda z, T: (min(ocv(z) / 0.0767, 5.0), ocv(z) * min(ocv(z) / 0.0767, 5.0))  # noqa: E731
    ext = short_thermal_response(short_resistance=0.05, current_limit_c_rate=10.0, kinetics_log_rate_shift=-3.0,
                                 heat_transfer=1000.0, soc=soc, capacity=Q, thickness=5e-3, spot_radius=2e-3,
                                 temperature_ambient=298.15, t_end=1200.0, short_model=model)
    assert ext["heat_joule_total"] == pytest.approx(out["heat_joule_total"], rel=0.01)


def test_lumped_chain_outcomes_and_trends():
    sim = IndentationLumped(t_end=900.0, n_time=91)
    θ = default_theta(sim) | {"strain_critical": 0.4, "short_resistance": 0.02, "current_limit_c_rate": 20.0}
    hot = sim.run(θ | {"heat_transfer_coefficient": 10.0, "kinetics_log_rate_shift": 1.0}, {"soc": 1.0})
    cold = sim.run(θ | {"heat_transfer_coefficient": 1000.0, "kinetics_log_rate_shift": -1.5}, {"soc": 0.2})
    for ds in (hot, cold):
        for v in ds.variables:
            assert "units" in ds[v].attrs and "long_name" in ds[v].attrs, v
        assert ds.sizes == {"displacement": 81, "time": 91}
        assert 1 <= int(ds.hazard_level) <= 7
        assert ds.thermal_runaway.dtype == bool
    # adiabatic-like, fully charged, fast kinetics: runaway (level 7) within the window
    assert bool(hot.thermal_runaway) and int(hot.hazard_level) == 7
    assert 0.0 < float(hot.time_to_runaway) < 900.0 and float(hot.temperature_peak) > 700.0
    # well cooled, 20 % SOC, slow kinetics: no runaway, lower level, bounded heating
    assert not bool(cold.thermal_runaway) and int(cold.hazard_level) < 7
    assert np.isnan(float(cold.time_to_runaway)) and float(cold.temperature_peak) < 400.0
    # onset where the strain reaches ε_c, on the force curve
    d = hot.displacement.values
    assert float(hot.force_short_onset) == pytest.approx(np.interp(float(hot.displacement_short_onset), d, hot.force_indenter.values), rel=1e-9)


def test_no_short_is_level_one():
    sim = IndentationLumped(displacement_max=0.5e-3, n_displacement=11, t_end=60.0, n_time=7)
    ds = sim.run(default_theta(sim) | {"strain_critical": 0.9}, {})
    assert not bool(ds.short) and int(ds.hazard_level) == 1
    assert np.isnan(float(ds.displacement_short_onset)) and float(ds.temperature_peak) == pytest.approx(298.15)


def test_fe_chain_agrees_with_lumped():
    """FE and mesh-free chains on one θ: force within 15 % (lumped-law tolerance), onset within 10 %."""
    kw = dict(displacement_max=2.5e-3, n_displacement=26, t_end=300.0, n_time=31)
    θ = default_theta(IndentationLumped) | {"strain_critical": 0.35}
    fe = IndentationFECoupled(**kw).run(θ, {})
    lu = IndentationLumped(**kw).run(θ, {})
    f_fe, f_lu = fe.force_indenter.values[5:], lu.force_indenter.values[5:]
    both = np.isfinite(f_fe) & np.isfinite(f_lu)
    assert both.sum() >= 5
    np.testing.assert_allclose(f_lu[both], f_fe[both], rtol=0.15)
    assert float(lu.displacement_short_onset) == pytest.approx(float(fe.displacement_short_onset), rel=0.10)
    # both paths end at the first depth past the short onset (NaN beyond: the separator has failed)
    for ds in (fe, lu):
        d, f = ds.displacement.values, ds.force_indenter.values
        last = np.flatnonzero(np.isfinite(f))[-1]
        assert d[last - 1] < float(ds.displacement_short_onset) <= d[last] and last < len(d) - 1
        assert np.isnan(f[last + 1:]).all() and np.isnan(ds.strain_separator_max.values[last + 1:]).all()


SHORT_6AH = dict(short_resistance=0.0548, current_limit_c_rate=10.95, kinetics_log_rate_shift=0.0,
                 heat_transfer=100.0, capacity=23040.0, thickness=10e-3, spot_radius=5.09e-3,
                 temperature_ambient=298.15, t_end=1800.0)


def test_spot_runaway_without_spread_is_local_reaction_level():
    """A 6.4 A h cell shorted at 20 % SOC: the short spot reacts completely, the front stalls after a
    limited spread and the pouch neither ruptures nor runs away (levels 3–5, as observed for the 6.5 A h LCO cells
    at 20–40 % SOC in the dataset); no spurious runaway from round-off at the last, shortest time step. (The spot's
    reaction fraction is 0.72: once the separator around it melts, the short's heat spreads over the molten disc.
    The bulk peaks at 120.1 °C, the swelling threshold: level 5; the FE hot spot, `abuse_fe.hotspot`, 118.7 °C.)"""
    out = short_thermal_response(soc=0.2, **SHORT_6AH)
    assert not out["thermal_runaway"] and np.isnan(out["time_to_runaway"])
    assert out["local_reaction_fraction"] > 0.5 and out["spread_fraction"] < 0.1
    assert hazard_level({**out, "short": True}) in (3, 4, 5)


def test_front_spreads_at_full_charge_and_size_decides_ignition():
    """The same short at 100 % SOC: the reaction front crosses the cell (spread > 0.5, runaway, level 7).
    A 0.5 A h cell (5 mm thick) under the same short and current limit: its spot Joule power I_lim² R_s is 1/164 of
    the 6.4 A h cell's (I_lim ∝ Q), the spot does not ignite (level 2) — the dataset's size effect. (10 mm thick,
    it would: its electrical energy alone heats it by ~580 K adiabatically, and 10 mm of stack at 0.6 W/(m K) keep
    it in — bulk 168 °C in the rings, runaway in the FE hot spot.)"""
    big = short_thermal_response(soc=1.0, **SHORT_6AH)
    assert big["thermal_runaway"] and big["spread_fraction"] > 0.5 and hazard_level({**big, "short": True}) == 7
    small = short_thermal_response(soc=1.0, **(SHORT_6AH | {"capacity": 1800.0, "heat_transfer": 300.0,
                                                             "thickness": 5e-3}))
    assert not small["thermal_runaway"] and small["local_reaction_fraction"] < 0.05
    assert hazard_level({**small, "short": True}) == 2
    # the nearest thermocouple (on the face, 10 mm out) reads the large cell's front at ~9 K/s (the FE hot spot: 5),
    # the small one's ~1 K/s
    assert big["temperature_rise_rate_log"] > math.log(5.0) and small["temperature_rise_rate_log"] < math.log(2.0)


def test_separator_meltdown_spreads_the_short_and_collapses_the_voltage(monkeypatch):
    """Where the separator melts (165 degC) the short spreads and its resistance falls (R_s A_0 / A): the 6.4 A h
    cell at SOC 1 loses 3.1 V within the 60-s window (the ORNL LCO 6.4 A h runaways: 4.0-4.2 V); with a separator
    that never melts the voltage across the same short barely moves (0.46 V) though the cell still runs away.
    Before the spot reaches 165 degC both cells are the same cell."""
    import abuse_fe.coupled as coupled

    melt = short_thermal_response(soc=1.0, **SHORT_6AH)
    monkeypatch.setattr(coupled, "MELTDOWN_TEMPERATURE", np.inf)
    solid = short_thermal_response(soc=1.0, **SHORT_6AH)
    assert melt["thermal_runaway"] and solid["thermal_runaway"]
    assert melt["voltage_drop"] > 3.0 and solid["voltage_drop"] < 0.6
    assert melt["voltage"][0] == solid["voltage"][0]


def test_the_meltdown_front_lies_where_the_rings_temperature_crosses_the_meltdown():
    """Ring temperatures linear in r between centres: the front is where that line crosses 165 degC, inside a ring
    (not at its edge); no melted ring: 0; every ring melted: the outer radius. The spot's power share over the
    shorted disc is by area and sums to one."""
    from abuse_fe.coupled import MELTDOWN_TEMPERATURE as Tm, _disc_share, meltdown_front

    centre = np.array([[0.5, 1.5, 2.5, 3.5]]) * 1e-3
    T = Tm + np.array([[30.0, 10.0, -10.0, -30.0]])  # crosses at r = 2 mm, mid-way between centres 1 and 2
    assert meltdown_front(T, centre, np.array([4e-3]))[0] == pytest.approx(2.0e-3)
    assert meltdown_front(T - 50.0, centre, np.array([4e-3]))[0] == 0.0
    assert meltdown_front(T + 50.0, centre, np.array([4e-3]))[0] == 4e-3
    edges = np.array([[0.0, 1.0, 2.0, 3.0, 4.0]]) * 1e-3
    share = _disc_share(edges, np.array([2.5e-3]))
    assert share.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(share[0], np.array([1.0, 3.0, 2.25, 0.0]) / 6.25)  # r² differences over 2.5²


def test_ring_network_conserves_energy_and_converges():
    """Adiabatic faces: heat stored = Joule + decomposition heat (< 0.5 %); 24 vs 48 rings: same level,
    peak temperature and time to runaway within 5 %."""
    kw = SHORT_6AH | {"soc": 0.8, "heat_transfer": 0.0, "t_end": 600.0}
    out = short_thermal_response(**kw)
    from abuse_fe.coupled import CellThermal

    cell = CellThermal()
    C_total = cell.heat_capacity_volumetric * kw["capacity"] * cell.voltage_nominal / cell.energy_density
    stored = C_total * (out["temperature_mean"][-1] - kw["temperature_ambient"])
    assert stored == pytest.approx(out["heat_released_total"], rel=5e-3)
    fine = short_thermal_response(**kw, n_rings=48)
    assert hazard_level({**fine, "short": True}) == hazard_level({**out, "short": True})
    assert fine["temperature_peak"] == pytest.approx(out["temperature_peak"], rel=0.05)
    assert fine["time_to_runaway"] == pytest.approx(out["time_to_runaway"], rel=0.05)


def test_fe_thermal_option_runs_the_hotspot_fe():
    """thermal="fe" runs the chain with `abuse_fe.hotspot` (the FE hot spot, tests/abuse_fe/test_hotspot.py): a
    dataset of the chain's layout and a hazard level; an unknown option is refused."""
    sim = IndentationLumped(thermal="fe", t_end=300.0, n_time=31)
    ds = sim.run(default_theta(sim) | {"strain_critical": 0.4}, {"soc": 0.3})
    ref = IndentationLumped(t_end=300.0, n_time=31).run(default_theta(sim) | {"strain_critical": 0.4}, {"soc": 0.3})
    assert set(ds.data_vars) == set(ref.data_vars) and ds.sizes["time"] == 31 and 1 <= int(ds.hazard_level) <= 7
    assert float(ds.force_short_onset) == float(ref.force_short_onset)
    with pytest.raises(ValueError, match="thermal"):
        IndentationLumped(thermal="3d")


def test_batched_chain_equals_runs_one_by_one():
    """`run_batch` (one ring thermal model per kinetic set for the whole batch) gives the outputs of `run`, run by
    run: a batch mixing LCO, NMC and LFP cells, a run without a short and runs that run away."""
    sim = IndentationLumped(t_end=600.0, n_time=61)
    rng = np.random.default_rng(7)
    thetas = [{p.name: float(p.prior.ppf(u)) for p, u in zip(sim.parameters, rng.uniform(0.05, 0.95, len(sim.parameters)))}
              for _ in range(9)]
    thetas[0] |= {"strain_critical": 5.0}  # no short within the indentation depth
    thetas[1] |= {"short_resistance": 0.035, "heat_transfer_coefficient": 20.0}
    conds = [{"soc": float(s), "capacity_nominal": float(q), "chemistry": float(c)}
             for s, q, c in zip(rng.uniform(0.3, 1.0, 9), rng.uniform(3600.0, 36000.0, 9), [0, 0, 0, 1, 1, 1, 2, 2, 0])]
    batch = sim.run_batch(thetas, conds)
    single = [sim.run(t, c) for t, c in zip(thetas, conds)]
    assert not bool(batch[0].short) and sum(bool(ds.thermal_runaway) for ds in single) >= 1
    for b, s in zip(batch, single):
        assert set(b.data_vars) == set(s.data_vars)
        for v in s.data_vars:
            np.testing.assert_allclose(b[v].values.astype(float), s[v].values.astype(float), rtol=1e-6, atol=1e-9,
                                       err_msg=v)
    with pytest.raises(ValueError, match="unknown"):
        sim.run_batch([thetas[0] | {"bogus": 1.0}], [conds[0]])


def test_thermocouple_distance_changes_the_reading_not_the_cell():
    """The nearest thermocouple's distance from the spot (uncertain parameter ``thermocouple_distance``) sets
    how fast the simulated logger sees the spot heat — nearer reads faster, smoothly in the distance (linear in
    r between ring centres) — and nothing else: runaway, peaks, heat and voltage are the same cell's."""
    from abuse_fe.coupled import probe_interpolation, short_thermal_response_batch

    centre = np.array([[1.0, 2.0, 4.0, 8.0]])
    i, w = probe_interpolation(np.repeat(centre, 4, 0), np.array([2.0, 3.0, 8.0, 20.0]))
    assert i.tolist() == [1, 1, 2, 2] and np.allclose(w, [0.0, 0.5, 1.0, 1.0])
    d = np.array([2.0, 5.0, 10.0, 10.1, 14.0, 14.1, 20.0]) * 1e-3
    runs = short_thermal_response_batch(short_resistance=0.03, current_limit_c_rate=11.0, kinetics_log_rate_shift=0.0,
                                        heat_transfer=100.0, soc=0.2, capacity=6.4 * 3600, thickness=5e-3,
                                        spot_radius=3e-3, temperature_ambient=298.15, probe_distance=d,
                                        kinetics="hatchard2001")
    rate = np.exp([r["temperature_rise_rate_log"] for r in runs])
    assert np.all(np.diff(rate) <= 1e-9) and rate[0] >= 9.99 and rate[4] < 0.5 * rate[0]
    assert abs(np.log(rate[3] / rate[2])) < 0.05 and abs(np.log(rate[5] / rate[4])) < 0.05  # no jump at 0.1 mm
    peak = np.array([r["temperature_peak_window"] for r in runs])  # the logger's peak within 60 s, ≤ 150 °C
    assert np.all(np.diff(peak) <= 1e-9) and peak[0] > peak[-1] + 5.0 and peak.max() <= 423.15
    assert [r["temperature_peak_window_censored"] for r in runs] == list(peak >= 422.15)
    for r in runs[1:]:
        assert r["thermal_runaway"] == runs[0]["thermal_runaway"]
        for key in ("temperature_peak", "temperature_bulk_peak", "heat_released_total", "voltage_drop"):
            assert r[key] == pytest.approx(runs[0][key], rel=1e-12)
