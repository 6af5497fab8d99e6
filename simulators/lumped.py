r"""Lumped (0D) thermal-runaway simulator of one cell: heat capacity, convection + radiation, kinetics.

Energy balance of the cell (uniform temperature T):

.. math::

    m c_p \frac{dT}{dt} = V_{jr}\, q_{chem}(T, \xi) + P_{short} + P_{heater}(t)
        - h A (T - T_\infty(t)) - \varepsilon \sigma A (T^4 - T_\infty^4),

with q_chem the decomposition heat of `simulators.kinetics` (states ξ), V_jr the jelly-roll volume,
A the outer surface. Triggers, matching real abuse tests:

- oven: ambient ramps from ``temperature_ambient`` at ``oven_ramp_rate`` to ``temperature_oven`` and holds
  (UL 1642 heating test: 5 K/min; Hatchard et al. 2001 oven exposures),
- heater: ``heater_power`` [W] for ``heater_duration`` [s] into the cell (as in the Battery Failure
  Databank's fractional calorimetry tests),
- internal short of resistance ``short_resistance``: current I = V_oc(soc) / (R_s + R_int) through the cell,
  all of its Joule heat V_oc I stays in the cell; soc falls at dsoc/dt = -I / Q. The current fades as the
  cell empties (factor soc / (soc + 0.005)),
- separator collapse (option ``separator_short``): above the uncertain ``temperature_separator_collapse``
  the separator fails and the remaining electrical energy discharges through a hard short
  (``resistance_collapse``, 1 mΩ); this is how the stored electrical energy ends up in the runaway heat
  that calorimeters measure.

Venting, ejecta and casing breach (what fractional calorimetry measures, Finegan et al., J. Power Sources 597
(2024) 234106): the safety vent opens when the cell reaches ``temperature_vent`` (a temperature criterion: the
lumped model carries no gas pressure). Once the cell is vented *and* in runaway, a fraction
``ejecta_fraction`` φ of the jelly roll is ejected at once. The ejected material leaves at the cell temperature
with its sensible heat, its unreacted decomposition heat and its stored electrical energy, all released in the
ejecta (assumption: the ejecta react completely in the calorimeter's ejecta chambers); the body keeps the
fraction 1 - φ of every jelly-roll content and of the jelly roll's heat capacity (the can stays).
``heat_fraction_ejecta`` is the ejecta's share of the heat released (NaN without ejection); the ejected mass is φ × the jelly-roll mass fraction (volume fraction
as a proxy). The casing breaches (bottom rupture) when the peak chemical self-heating rate exceeds
``breach_heating_rate``: gas generation, proportional to the reaction rate, then outruns the vent.

Runaway criterion: the chemical self-heating rate V_jr q_chem / (m c_p) exceeds 1 K/s — the T2 "onset of
thermal runaway" definition of Feng et al., Energy Storage Materials 10 (2018) 246 (dT/dt ≥ 1 °C/s). It is
defined on the self-heating part only, so a strong heater (≈2 K/s for 100 W on an 18650) is not mistaken
for runaway; below this rate the reactions can still be quenched by the heat losses.

Integration: scipy ``solve_ivp`` (LSODA: stiff/non-stiff switching, 4–8× faster than Radau/BDF here with
the same runaway times to 1e-3 min; settings in `NUMERICS`), in segments split at the heater switch-off,
the separator-collapse and the ejection events; events are located by root finding on the dense output.
"""
from __future__ import annotations

import dataclasses

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import xarray as xr
from scipy.integrate import solve_ivp

from simulators.base import Condition, Parameter, SimulationError, Simulator, attach_units
from simulators.cells import SIGMA_SB, CellFormat, get_cell
from simulators.kinetics import KineticSet
from simulators.kinetics import load as load_kinetics
from simulators.priors import Prior
from simulators.registry import register

NUMERICS = {"method": "LSODA", "rtol": 1e-6, "atol_T": 1e-6, "atol_soc": 1e-9, "atol_state": 1e-10,
            "atol_energy": 1e-3, "max_step": 60.0}

RUNAWAY_RATE = 1.0  # K/s, chemical self-heating rate defining runaway (Feng et al. 2018)

# A short-circuit model: (soc, T) -> (current [A], heat dissipated inside the cell [W]).
ShortModel = Callable[[float, float], tuple[float, float]]


def linear_ocv_short(cell: CellFormat, resistance: float) -> ShortModel:
    """Short through ``resistance`` [Ω] in series with the cell resistance; linear OCV of `cell`."""

    def short(soc: float, T: float) -> tuple[float, float]:
        s = max(soc, 0.0)
        v = cell.ocv(s)
        current = v / (resistance + cell.resistance_internal) * s / (s + 0.005)
        return current, v * current

    return short


KINETIC_GROUPS = ("sei", "anode", "cathode", "electrolyte")


def perturbed_kinetics(ks: KineticSet, theta: dict, soc: float, loading: float = 1.0) -> KineticSet:
    """Apply log-multipliers ``log_A_<group>``, ``c_sei0`` and the multiplier ``enthalpy_factor`` of every
    exothermic reaction's enthalpy from θ (where given), then the SOC rule of the set.

    ``loading`` [1] multiplies every reaction's enthalpy per jelly-roll volume: the reactive mass of a cell of
    the same format and a different capacity (`LumpedThermal.cell_at`)."""
    log_A = {}
    for r in ks.reactions:
        for g in KINETIC_GROUPS:
            if r.name.startswith(g) and f"log_A_{g}" in theta:
                log_A[r.name] = theta[f"log_A_{g}"]
    init = {"c_sei": theta["c_sei0"]} if "c_sei0" in theta and "c_sei" in ks.state_names else {}
    factor = theta.get("enthalpy_factor", 1.0)
    H = {r.name: (factor if r.H > 0 else 1.0) * loading for r in ks.reactions} \
        if "enthalpy_factor" in theta or loading != 1.0 else None
    return ks.with_(log_A=log_A, H=H, initial=init).at_soc(soc)


@dataclass
class LumpedResult:
    """Raw result of `simulate_lumped` (SI)."""

    time: np.ndarray
    temperature: np.ndarray
    heat_rate: np.ndarray
    soc: np.ndarray
    thermal_runaway: bool
    time_to_runaway: float
    temperature_peak: float
    heat_chemical: float  # J, from the kinetic states (heat_remaining difference × V_jr), ejecta included
    heat_chemical_quadrature: float  # J, ∫ b V q dt integrated along with the ODE (the body only)
    energy_short: float  # J, stored electrical energy converted to heat (from the SOC change), ejecta included
    energy_short_quadrature: float  # J, ∫ P_short dt (the body only)
    energy_heater: float  # J
    energy_lost: float  # J, to the surroundings
    temperature_final: float
    separator_collapse_time: float
    time_vent: float = np.nan  # s, vent opening (NaN if never)
    time_ejection: float = np.nan  # s, ejection of the jelly roll (NaN if none)
    heat_ejecta: float = 0.0  # J, heat released in the ejecta (sensible + chemical + electrical)
    heat_ejecta_sensible: float = 0.0  # J, sensible heat the ejecta carried out of the body
    heat_ejecta_chemical: float = 0.0  # J, unreacted decomposition heat released in the ejecta
    energy_ejecta_electrical: float = 0.0  # J, stored electrical energy released in the ejecta
    mass_fraction_ejected: float = 0.0  # 1, ejected mass / cell mass
    heating_rate_peak: float = 0.0  # K/s, largest chemical self-heating rate of the body
    breach_heating_rate: float = np.inf  # K/s, the casing's breach criterion (inf: never)
    casing_breach: bool = False


def simulate_lumped(cell: CellFormat, ks: KineticSet, *, soc: float, temperature_ambient: float,
                    temperature_oven: float, oven_ramp_rate: float, heater_power: float, heater_duration: float,
                    short: ShortModel | None, h_conv: float, heat_capacity: float,
                    temperature_separator_collapse: float = np.inf, resistance_collapse: float = 1e-3,
                    time_grid: np.ndarray, runaway_rate: float = RUNAWAY_RATE,
                    energy_stored: Callable[[float], float] | None = None,
                    collapse_short: ShortModel | None = None, temperature_vent: float = np.inf,
                    ejecta_fraction: float = 0.0, breach_heating_rate: float = np.inf) -> LumpedResult:
    """Integrate the lumped energy balance (module docstring) on ``time_grid`` [s].

    ``ks`` is already at the cell's SOC (`KineticSet.at_soc`); ``energy_stored(soc)`` [J] defaults to the
    cell's linear-OCV energy and must match the OCV used by ``short``. ``temperature_vent`` [K],
    ``ejecta_fraction`` φ [1] of the jelly roll and ``breach_heating_rate`` [K/s]: venting, ejection and
    breach (module docstring; the defaults switch them off). Returns a `LumpedResult`.
    """
    if not 0.0 <= ejecta_fraction < 1.0:
        raise ValueError(f"ejecta_fraction must lie in [0, 1), got {ejecta_fraction}")
    names = ks.state_names
    n_k = len(names)
    V, A, mcp = cell.jelly_roll_volume, cell.surface_area, heat_capacity
    iT, isoc, iEc, iEe, iEh, iEl = range(6)
    collapse_short = collapse_short or linear_ocv_short(cell, resistance_collapse)
    energy_stored = energy_stored or cell.energy_stored
    w_jr = cell.jelly_roll_fraction  # jelly-roll mass fraction (volume fraction as a proxy)

    def ambient(t):
        if temperature_oven <= temperature_ambient:
            return temperature_ambient
        return temperature_ambient + min(oven_ramp_rate * t, temperature_oven - temperature_ambient)

    def parts(t, y, collapsed, b):
        T = y[iT]
        state = dict(zip(names, y[6:]))
        d, q = ks.rates(T, state)
        Q_chem = b * V * float(q)
        sh = collapse_short if collapsed else short
        current, P_short = sh(y[isoc], T) if sh is not None else (0.0, 0.0)
        P_heat = heater_power if t < heater_duration else 0.0
        Ta = ambient(t)
        loss = h_conv * A * (T - Ta) + cell.emissivity * SIGMA_SB * A * (T**4 - Ta**4)
        return d, Q_chem, current, P_short, P_heat, loss

    def body_mcp(b):
        return mcp * (1.0 - (1.0 - b) * w_jr)

    def rhs(t, y, collapsed, b):
        d, Q_chem, current, P_short, P_heat, loss = parts(t, y, collapsed, b)
        dy = np.empty_like(y)
        dy[iT] = (Q_chem + P_short + P_heat - loss) / body_mcp(b)
        dy[isoc] = -current / (b * cell.capacity_nominal)
        dy[iEc], dy[iEe], dy[iEh], dy[iEl] = Q_chem, P_short, P_heat, loss
        dy[6:] = [float(d[k]) for k in names]
        return dy

    def self_heating(t, y, collapsed, b):
        return parts(t, y, collapsed, b)[1] / body_mcp(b)

    def collapse_event(t, y, collapsed, b):
        return y[iT] - temperature_separator_collapse

    collapse_event.terminal, collapse_event.direction = True, 1

    def runaway_event(t, y, collapsed, b):
        return self_heating(t, y, collapsed, b) - runaway_rate

    runaway_event.direction = 1

    def heating_margin(y, b):  # self-heating rate above the runaway rate, at states y (n_state, k) [K/s]
        _, q = ks.rates(y[iT], ks.clip(dict(zip(names, y[6:]))))
        return b * V * q / body_mcp(b) - runaway_rate

    margins = {  # (y (n_state, k), b) -> (k,): ≥ 0 once the event has happened
        "runaway": heating_margin,
        "collapse": lambda y, b: y[iT] - temperature_separator_collapse,
        "vent": lambda y, b: y[iT] - temperature_vent,
        "ejection": lambda y, b: np.minimum(heating_margin(y, b), y[iT] - temperature_vent),  # vented runaway
    }

    def first_time(sol, margin, b, t_max) -> float:
        """First time ≤ ``t_max`` the ``margin`` reaches 0 in a dense segment (NaN if never): on the solver's
        steps, then by bisection on the dense output — robust where solve_ivp's event location fails (a margin
        that only touches 0)."""
        hit = np.flatnonzero((margin(sol.y, b) >= 0) & (sol.t <= t_max))
        if hit.size == 0:
            return np.nan
        k = int(hit[0])
        if k == 0:
            return float(sol.t[0])
        lo, hi = float(sol.t[k - 1]), float(sol.t[k])
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            lo, hi = (lo, mid) if margin(sol.sol(mid)[:, None], b)[0] >= 0 else (mid, hi)
        return hi

    atol = np.r_[NUMERICS["atol_T"], NUMERICS["atol_soc"], [NUMERICS["atol_energy"]] * 4, [NUMERICS["atol_state"]] * n_k]
    y0 = np.r_[temperature_ambient, soc, 0.0, 0.0, 0.0, 0.0, [ks.initial_state[k] for k in names]]
    t0, t_end = 0.0, float(time_grid[-1])
    collapsed, b = False, 1.0
    segments, t_runaway, t_collapse, t_vent, t_eject = [], np.nan, np.nan, np.nan, np.nan
    ejecta = {"sensible": 0.0, "chemical": 0.0, "electrical": 0.0, "soc": np.nan, "rem": np.nan}
    rate_peak = 0.0
    # the heater switch-off is a discontinuity: start a new segment there
    breaks = sorted({b_ for b_ in (heater_duration,) if 0 < b_ < t_end} | {t_end})
    while t0 < t_end:
        t_stop = next(b_ for b_ in breaks if b_ > t0)
        events = [runaway_event] + ([] if collapsed else [collapse_event])
        kw = dict(method=NUMERICS["method"], rtol=NUMERICS["rtol"], atol=atol, max_step=NUMERICS["max_step"],
                  dense_output=True, args=(collapsed, b))
        with np.errstate(over="ignore", invalid="ignore"):
            try:
                sol = solve_ivp(rhs, (t0, t_stop), y0, events=events, **kw)
                located = True
            except ValueError:  # scipy's event location needs a sign change it did not find: locate on the steps
                sol = solve_ivp(rhs, (t0, t_stop), y0, **kw)
                located = False
        if sol.status == -1:
            raise SimulationError(f"lumped integration failed at t = {sol.t[-1]:.3g} s: {sol.message}")
        t_hi = float(sol.t[-1])
        if located:
            t_r = float(sol.t_events[0][0]) if sol.t_events[0].size else np.nan
            collapse_hit = sol.status == 1
        else:
            t_c = np.nan if collapsed else first_time(sol, margins["collapse"], b, t_hi)
            collapse_hit = bool(np.isfinite(t_c))
            t_hi = t_c if collapse_hit else t_hi
            t_r = first_time(sol, margins["runaway"], b, t_hi)
        t_e = first_time(sol, margins["ejection"], b, t_hi) if ejecta_fraction > 0 and np.isnan(t_eject) else np.nan
        if np.isfinite(t_e) and t_e < t_hi:  # vented runaway: the segment ends at the ejection
            t_hi, collapse_hit = t_e, False
        keep = sol.t <= t_hi
        if np.isnan(t_runaway) and t_r <= t_hi:
            t_runaway = t_r
        if np.isnan(t_vent):
            t_vent = first_time(sol, margins["vent"], b, t_hi)
        states = ks.clip(dict(zip(names, sol.y[6:, keep])))
        _, q_steps = ks.rates(sol.y[iT, keep], states)
        rate_peak = max(rate_peak, float(np.max(b * V * q_steps)) / body_mcp(b))
        segments.append((sol, b, float(sol.t[0]), t_hi))
        y0, t0 = (sol.sol(t_hi) if t_hi < sol.t[-1] else sol.y[:, -1]).copy(), t_hi
        if np.isfinite(t_e) and t_e <= t_hi:  # eject φ of the jelly roll (module docstring)
            t_eject = t_e
            if np.isnan(t_runaway):  # the ejection margin includes the runaway's: it has begun (root-finding ties)
                t_runaway = t_e
            state_e = ks.clip(dict(zip(names, y0[6:])))
            ejecta["rem"], ejecta["soc"] = float(ks.heat_remaining(state_e)), max(float(y0[isoc]), 0.0)
            ejecta["sensible"] = ejecta_fraction * w_jr * mcp * (y0[iT] - temperature_ambient)
            ejecta["chemical"] = ejecta_fraction * V * ejecta["rem"]
            ejecta["electrical"] = ejecta_fraction * energy_stored(ejecta["soc"])
            b = 1.0 - ejecta_fraction
            breaks = sorted(set(breaks) | {t0})
        elif collapse_hit and not collapsed:  # separator collapse: latch the hard short
            collapsed, t_collapse = True, t0
            breaks = sorted(set(breaks) | {t0})

    # observables on the fixed grid: evaluate each segment's dense output on its own interval
    Y = np.empty((y0.size, time_grid.size))
    b_grid = np.ones(time_grid.size)
    for i, (sol, b_seg, lo, hi) in enumerate(segments):
        mask = (time_grid >= lo) & ((time_grid <= hi) if i == len(segments) - 1 else (time_grid < hi))
        if mask.any():
            Y[:, mask] = sol.sol(time_grid[mask])
            b_grid[mask] = b_seg
    state_grid = ks.clip(dict(zip(names, Y[6:])))
    _, q_grid = ks.rates(Y[iT], state_grid)
    short_grid = np.zeros(time_grid.size)
    for j, t in enumerate(time_grid):
        coll = not np.isnan(t_collapse) and t >= t_collapse
        sh = collapse_short if coll else short
        if sh is not None:
            short_grid[j] = sh(Y[isoc, j], Y[iT, j])[1]
    T_peak = max(float(np.max(s.y[iT][s.t <= hi])) for s, _, _, hi in segments)
    final = ks.clip(dict(zip(names, y0[6:])))
    rem0, rem_f, soc_f = float(ks.heat_remaining(ks.initial())), float(ks.heat_remaining(final)), max(y0[isoc], 0.0)
    if np.isnan(t_eject):
        heat_chem = V * (rem0 - rem_f)
        energy_short = float(energy_stored(soc) - energy_stored(soc_f))
    else:  # before ejection the whole roll; after it the body's share b; the ejecta react completely
        rem_e, soc_e = ejecta["rem"], ejecta["soc"]
        heat_chem = V * (rem0 - rem_e) + b * V * (rem_e - rem_f) + ejecta["chemical"]
        energy_short = float(energy_stored(soc) - energy_stored(soc_e)
                             + b * (energy_stored(soc_e) - energy_stored(soc_f))) + ejecta["electrical"]
    return LumpedResult(
        time=time_grid, temperature=Y[iT], heat_rate=b_grid * V * q_grid + short_grid, soc=Y[isoc],
        thermal_runaway=bool(np.isfinite(t_runaway)), time_to_runaway=t_runaway, temperature_peak=T_peak,
        heat_chemical=heat_chem, heat_chemical_quadrature=float(y0[iEc]),
        energy_short=energy_short,
        energy_short_quadrature=float(y0[iEe]), energy_heater=float(y0[iEh]), energy_lost=float(y0[iEl]), temperature_final=float(y0[iT]),
        separator_collapse_time=t_collapse, time_vent=t_vent, time_ejection=t_eject,
        heat_ejecta=ejecta["sensible"] + ejecta["chemical"] + ejecta["electrical"],
        heat_ejecta_sensible=ejecta["sensible"],
        heat_ejecta_chemical=ejecta["chemical"], energy_ejecta_electrical=ejecta["electrical"],
        mass_fraction_ejected=0.0 if np.isnan(t_eject) else ejecta_fraction * w_jr,
        heating_rate_peak=rate_peak, casing_breach=bool(rate_peak > breach_heating_rate),
        breach_heating_rate=float(breach_heating_rate),
    )


#: shift [J] of the log scale the decoder models the total heat on (``log(Q + shift)``, `sim2real.bridge.TRANSFORMS`):
#: a runaway's heat (25-100 kJ in the Battery Failure Databank rev. 2) then differs between cells and cell types by a
#: factor, while the few kJ of a nail test that did not run away (1.9-6 kJ at SOC 0-40 %) differ by an amount. On the
#: linear scale a per-cell-type offset added the same ~16 kJ to both (calorimetry study: fitted 17 kJ against 2.3 kJ
#: measured at SOC 0, 66 against 88 kJ at SOC 100 %; model discrepancy 0.68 ensemble sd, now 0.13). Measured on the
#: calorimetry study's grouped CV of the heat intervals (90 tests; leave replicates out / leave cell types out):
#: linear scale coverage 0.93 / 0.97, interval score 55.7 / 64.2 kJ; shift 2 kJ 1.00 / 0.90, 54.9 / 85.1 kJ (the
#: decoder's own scale at the runaway cliff of low-SOC nail tests, log(4 kJ) against log(30 kJ), widens the
#: intervals there); shift 10 kJ 0.93 / 0.90, 46.3 / 75.4 kJ, and the runaway log loss 0.141 → 0.127 on unseen types
HEAT_LOG_SHIFT = 10.0e3

META = {
    "temperature": ("K", "cell temperature (lumped)"),
    "heat_released_total": ("J", "total heat released inside the cell",
                            {"transform": "log", "transform_shift": HEAT_LOG_SHIFT}),
    "heat_rate": ("W", "internal heat generation rate (decomposition reactions + short circuit)"),
    "soc": ("1", "state of charge"),
    "heat_released_chemical": ("J", "heat of the decomposition reactions"),
    "energy_electrical_short": ("J", "stored electrical energy dissipated by short circuits"),
    "energy_heater": ("J", "energy supplied by the heater trigger"),
    "time_separator_collapse": ("s", "time of separator collapse (NaN if none)"),
    "time_vent": ("s", "time the safety vent opens (NaN if never)"),
    "heat_ejecta": ("J", "heat released in the ejecta (sensible + unreacted chemical + stored electrical)"),
    "heat_fraction_ejecta": ("1", "ejecta share of the heat of an ejecting runaway (1 - body share; NaN: no ejection)",
                             {"transform": "logit"}),  # modelled on the logit scale (sim2real.bridge.Channel)
    "mass_fraction_ejected": ("1", "ejected mass / cell mass"),
    "heating_rate_peak": ("K/s", "largest chemical self-heating rate of the cell body"),
    "casing_breach": ("1", "casing breach (bottom rupture): peak self-heating rate above breach_heating_rate"),
    "breach_margin_log": ("1", "ln(peak self-heating rate / breach_heating_rate), clipped to ±10: > 0 the casing "
                               "breaches (the databank observes its sign as bottom rupture)"),
    "time": ("s", "time since trigger start"),
}

LUMPED_PARAMETERS = (
    Parameter("log_A_sei", "1", Prior("truncnormal", mu=0.0, sigma=1.0, low=-3.0, high=3.0),
              "natural-log multiplier of the SEI-decomposition frequency factor", "Hatchard et al. 2001"),
    Parameter("log_A_anode", "1", Prior("truncnormal", mu=0.0, sigma=1.0, low=-3.0, high=3.0),
              "natural-log multiplier of the anode–electrolyte frequency factor", "Hatchard et al. 2001"),
    Parameter("log_A_cathode", "1", Prior("truncnormal", mu=0.0, sigma=1.0, low=-3.0, high=3.0),
              "natural-log multiplier of the cathode frequency factor(s)", "Hatchard et al. 2001; Bilyaz et al. 2020"),
    Parameter("log_A_electrolyte", "1", Prior("truncnormal", mu=0.0, sigma=1.0, low=-3.0, high=3.0),
              "natural-log multiplier of the electrolyte-decomposition frequency factor", "Kim et al. 2007"),
    Parameter("c_sei0", "1", Prior("uniform", low=0.05, high=0.25),
              "initial SEI (metastable) fraction", "Hatchard et al. 2001 use 0.15"),
    Parameter("h_conv", "W/(m2 K)", Prior("loguniform", low=3.0, high=30.0),
              "convective heat-transfer coefficient", "natural to mild forced convection"),
    Parameter("heat_capacity_factor", "1", Prior("truncnormal", mu=1.0, sigma=0.1, low=0.7, high=1.3),
              "multiplier of the cell heat capacity m c_p", "spread of measured 18650 c_p"),
    Parameter("temperature_separator_collapse", "K", Prior("uniform", low=423.0, high=493.0),
              "separator collapse (hard internal short) temperature", "PE/PP meltdown 150–220 °C"),
)

# Venting, ejection and breach (module docstring). The lumped model has no gas pressure, so the vent opens at a
# temperature; the priors are wide assumptions, to be informed by the calorimetry data (ejecta heat share).
VENT_PARAMETERS = (
    Parameter("temperature_vent", "K", Prior("uniform", low=383.0, high=473.0),
              "cell temperature at which the safety vent opens",
              "assumption: 110–200 °C, where the electrolyte's vapour pressure opens 18650 vents before runaway "
              "(venting model: Coman et al., J. Power Sources 307 (2016) 56)"),
    Parameter("ejecta_fraction", "1", Prior("uniform", low=0.0, high=0.95),
              "fraction of the jelly roll ejected at a vented runaway",
              "assumption, uninformative: from none to nearly all of the jelly roll (the databank measures ejected "
              "mass and ejecta heat: Finegan et al., J. Power Sources 597 (2024) 234106)"),
    Parameter("breach_heating_rate", "K/s", Prior("loguniform", low=10.0, high=10000.0),
              "peak chemical self-heating rate above which gas generation outruns the vent and the casing breaches",
              "assumption: 10–1e4 K/s spans the peak rates of 18650 runaway in accelerating-rate calorimetry"),
)

LUMPED_CONDITIONS = (
    Condition("soc", "1", 1.0, "state of charge", (0.0, 1.0)),
    Condition("temperature_ambient", "K", 298.15, "initial and ambient temperature", (200.0, 400.0)),
    Condition("temperature_oven", "K", 298.15, "oven hold temperature (≤ ambient: no oven)", (200.0, 800.0)),
    Condition("oven_ramp_rate", "K/s", 5.0 / 60.0, "oven heating rate before the hold", (1e-4, 100.0)),
    Condition("heater_power", "W", 0.0, "heater power into the cell", (0.0, 1e4)),
    Condition("heater_duration", "s", 0.0, "heater on-time", (0.0, 1e6)),
    Condition("short_resistance", "Ohm", 1e6, "internal short resistance (1e6: no short)", (1e-4, 1e6)),
    Condition("capacity_nominal", "A s", 0.0,
              "nominal capacity of the tested cell, same format (≤ 0: the cell format's own; `LumpedThermal.cell_at`)",
              (0.0, 1e7)),
)


@register
@dataclass
class LumpedThermal(Simulator):
    """Lumped thermal-runaway simulator (oven / heater / internal-short triggers).

    Options: ``cell`` (`simulators.cells`), ``kinetics`` (default: the cell's), ``t_end`` [s],
    ``n_time`` (grid points), ``separator_short`` (separator collapse discharges the cell).

    Examples
    --------
    >>> sim = LumpedThermal(cell="18650_lco_hatchard2001", t_end=3600.0, n_time=121)
    >>> ds = sim.run(sim.default_theta(), {"temperature_oven": 428.15})
    """

    name = "lumped_thermal"
    parameters = LUMPED_PARAMETERS + (
        # The chemical heat of a runaway is the least certain output of a kinetic set: the published reaction
        # heats of graphite/NMC cells scatter by a factor of several between DSC/ARC studies (Wang et al.,
        # J. Power Sources 208 (2012) 210, section 3), and vented electrolyte that burns in the calorimeter adds
        # heat no decomposition set holds. Assumption: a factor of 3 either way around the set's enthalpies
        # (at SOC 100 % the Bilyaz et al. 2020 set gives 18.6 kJ of chemical heat in an 18650-MJ1; the
        # databank's 88 kJ minus its ~45 kJ of electrical energy is 43 kJ, factor 2.3: inside the prior).
        Parameter("enthalpy_factor", "1", Prior("loguniform", low=1 / 3, high=3.0),
                  "multiplier of every exothermic reaction enthalpy of the kinetic set",
                  "assumption; scatter of published reaction heats, Wang et al. 2012"),
    ) + VENT_PARAMETERS
    conditions = LUMPED_CONDITIONS

    cell: str = "18650_nmc_lg_mj1"
    kinetics: str | None = None
    t_end: float = 7200.0
    n_time: int = 241
    separator_short: bool = True

    def __post_init__(self):
        self._cell = get_cell(self.cell)
        name = self.kinetics or self._cell.kinetics
        if name is None:
            raise ValueError(f"cell {self.cell!r} has no bundled kinetic set; pass kinetics=... explicitly")
        self._kinetics = load_kinetics(name)

    @property
    def time_grid(self) -> np.ndarray:
        return np.linspace(0.0, self.t_end, self.n_time)

    def default_theta(self) -> dict[str, float]:
        """Nominal θ: published kinetics and enthalpies, the cell's own h and c_p, collapse at 458 K (the
        parameters this simulator declares)."""
        nominal = {"log_A_sei": 0.0, "log_A_anode": 0.0, "log_A_cathode": 0.0, "log_A_electrolyte": 0.0,
                   "c_sei0": self._kinetics.initial_state.get("c_sei", 0.15), "h_conv": self._cell.h_conv,
                   "heat_capacity_factor": 1.0, "temperature_separator_collapse": 458.0, "enthalpy_factor": 1.0,
                   "temperature_vent": 423.0, "ejecta_fraction": 0.5, "breach_heating_rate": 1000.0}
        return {p.name: nominal[p.name] for p in type(self).parameters if p.name in nominal}

    def cell_at(self, condition: dict) -> tuple[CellFormat, float]:
        """The tested cell: the format's cell at the condition's ``capacity_nominal`` [A s], and its active-material
        loading relative to the format's cell [1].

        A cell of the same format and another capacity holds proportionally more active material in the same can
        (capacity ∝ active mass at fixed specific capacity): its stored energy (linear OCV × capacity) and the
        reactive content of every decomposition reaction scale with the capacity; the can, its heat capacity and
        the jelly-roll volume stay the format's. Assumption, first order; the Battery Failure Databank's 18650
        types at SOC 100 % release heat roughly in proportion to capacity (median 29 kJ for the 2.15 A h Sanyo
        18650-A, 66 kJ for the 3.0 A h Samsung 30Q, 76 kJ for the 3.53 A h Sony VC7; NREL/NASA
        Battery Failure Databank rev. 2, 2024; Finegan et al., J. Power Sources 597 (2024) 234106).
        """
        capacity = float(condition.get("capacity_nominal", 0.0))
        if capacity <= 0.0:
            return self._cell, 1.0
        return dataclasses.replace(self._cell, capacity_nominal=capacity), capacity / self._cell.capacity_nominal

    def short_model(self, theta: dict, condition: dict) -> ShortModel | None:
        if condition["short_resistance"] >= 1e6:
            return None
        return linear_ocv_short(self.cell_at(condition)[0], condition["short_resistance"])

    def simulate(self, theta: dict, condition: dict) -> LumpedResult:
        """The raw `LumpedResult` (energy bookkeeping included); `run` wraps it as a dataset."""
        cell, loading = self.cell_at(condition)
        ks = perturbed_kinetics(self._kinetics, theta, condition["soc"], loading)
        return simulate_lumped(
            cell, ks, soc=condition["soc"], temperature_ambient=condition["temperature_ambient"],
            temperature_oven=condition["temperature_oven"], oven_ramp_rate=condition["oven_ramp_rate"],
            heater_power=condition["heater_power"], heater_duration=condition["heater_duration"],
            short=self.short_model(theta, condition), h_conv=theta["h_conv"],
            heat_capacity=self._cell.heat_capacity * theta["heat_capacity_factor"],
            temperature_separator_collapse=theta["temperature_separator_collapse"] if self.separator_short else np.inf,
            time_grid=self.time_grid, temperature_vent=theta.get("temperature_vent", np.inf),
            ejecta_fraction=theta.get("ejecta_fraction", 0.0),
            breach_heating_rate=theta.get("breach_heating_rate", np.inf))

    def _run(self, theta: dict, condition: dict) -> xr.Dataset:
        return to_dataset(self.simulate(theta, condition))


def ejecta_share(r: LumpedResult) -> float:
    """The ejecta's share of the heat released by a vented runaway [1], clipped to [0, 1] (their sensible heat
    may include heater energy, which the databank's corrected total excludes); NaN when nothing was ejected:
    the share is an observable of ejecting runaways only (the databank's few-kJ shares of tests without
    runaway are vent gas, not ejecta)."""
    total = r.heat_chemical + r.energy_short
    if np.isnan(r.time_ejection) or total <= 0:
        return np.nan
    return min(max(r.heat_ejecta / total, 0.0), 1.0)


BREACH_MARGIN_CLIP = 10.0  # |ln ratio| beyond e^10 carries no more information about the sign


def breach_margin(r: LumpedResult) -> float:
    """``ln(heating_rate_peak / breach_heating_rate)`` [1], clipped to ±`BREACH_MARGIN_CLIP` (a cell that never
    self-heats sits at the floor): the casing breaches exactly when it is > 0. A continuous observable whose sign
    the databank's bottom-rupture flag measures (a censored value in `risk.bayes.data`)."""
    if not np.isfinite(r.breach_heating_rate):
        return np.nan
    ratio = r.heating_rate_peak / r.breach_heating_rate
    return float(np.clip(np.log(max(ratio, 1e-300)), -BREACH_MARGIN_CLIP, BREACH_MARGIN_CLIP))


def to_dataset(r: LumpedResult) -> xr.Dataset:
    """The contract dataset of a `LumpedResult`."""
    ds = xr.Dataset(
        {
            "temperature": ("time", r.temperature),
            "heat_rate": ("time", r.heat_rate),
            "soc": ("time", r.soc),
            "thermal_runaway": r.thermal_runaway,
            "time_to_runaway": r.time_to_runaway,
            "temperature_peak": r.temperature_peak,
            "heat_released_total": r.heat_chemical + r.energy_short,
            "heat_released_chemical": r.heat_chemical,
            "energy_electrical_short": r.energy_short,
            "energy_heater": r.energy_heater,
            "time_separator_collapse": r.separator_collapse_time,
            "time_vent": r.time_vent,
            "heat_ejecta": r.heat_ejecta,
            "heat_fraction_ejecta": ejecta_share(r),
            "mass_fraction_ejected": r.mass_fraction_ejected,
            "heating_rate_peak": r.heating_rate_peak,
            "casing_breach": r.casing_breach,
            "breach_margin_log": breach_margin(r),
        },
        coords={"time": r.time},
    )
    return attach_units(ds, META)
