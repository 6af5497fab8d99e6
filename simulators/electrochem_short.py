r"""Internal short as electrochemistry: PyBaMM DFN + lumped thermal, the short inside the cell, and the
decomposition kinetics in the same DAE (two-way electro-thermal coupling up to the onset of runaway).

The short is PyBaMM's lumped contact resistance :math:`R_s` (option ``"contact resistance"``) with the
terminal held at 0 V (``"operating mode": "voltage"``): the cell drives :math:`I = (U - \eta)/R_s` through
the short, and the short's Joule heat :math:`I^2 R_s` stays in the cell — an internal short heats the cell
it drains, unlike PyBaMM's external-resistance mode where it leaves the model. The decomposition kinetics of
a `simulators.kinetics.KineticSet` are added to the same model as ODE states with Arrhenius rates in the
cell temperature, and PyBaMM's lumped temperature equation is replaced by the cell balance of
`simulators.lumped` (same cell format: datasheet mass and c_p, can surface, emissivity, jelly-roll volume):

.. math::  m c_p \frac{dT}{dt} = Q_{cell} + I^2 R_s + V_{jr}\, q(T, \xi) - h A (T - T_\infty)
           - \varepsilon \sigma A (T^4 - T_\infty^4)

with :math:`Q_{cell}` PyBaMM's electrochemical heat (ohmic, reaction, entropic) [W] and
:math:`q = \sum_x H_x W_x R_x` [W/m³ of jelly roll],

so temperature drives the electrochemistry (PyBaMM's temperature-dependent parameters, entropic heat) and
the kinetics, and both heat the cell. The heat terms are integrated as extra states of the DAE
(``energy_*``), so the first law is checked at solver accuracy:
``energy_short + energy_cell_heat + energy_reactions = energy_stored + energy_lost``.

Why DFN (Doyle, Fuller, Newman, J. Electrochem. Soc. 140 (1993) 1526) and not SPMe: at the 2–25 C of
shorts the electrolyte of the LG M50's 75 µm positive electrode depletes (measured: SPMe reaches
c_e = 1 mol/m³ after 84 s at 0.3 Ω where the DFN discharges the cell fully). Why not PyBaMM's 2.5 V cut-off: the
terminal voltage of a short is 0 by construction; the run ends instead at the first *physical* event:

- ``runaway``: the chemical self-heating rate V_jr q / (m c_p) reaches `simulators.lumped.RUNAWAY_RATE`
  (1 K/s, Feng et al., Energy Storage Mater. 10 (2018) 246), the project's one runaway definition; beyond
  it the electrochemical parameter set is far outside its range of validity,
- ``electrolyte depleted``: min c_e < ``ELECTROLYTE_MIN`` somewhere (Sand's time of a hard short: the
  current beyond it is transport-limited, which the porous-electrode model cannot continue through),
- ``negative electrode drained`` / ``positive electrode full``: a particle surface reaches the end of its
  stoichiometry range (the cell is discharged),
- ``time limit``: ``t_end`` reached.

Cell: a `simulators.cells.CellFormat` with a PyBaMM parameter set; the default ``21700_nmc_lg_m50`` is
Chen2020 (LG M50 21700, NMC811 / graphite-SiOx; Chen et al., J. Electrochem. Soc. 167 (2020) 080534) with the
NMC kinetic set `bilyaz2020`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from simulators.base import Condition, Parameter, SimulationError, Simulator, attach_units
from simulators.cells import SIGMA_SB, get_cell
from simulators.kinetics import KineticSet
from simulators.kinetics import load as load_kinetics
from simulators.kinetics.rates import R_GAS
from simulators.lumped import RUNAWAY_RATE
from simulators.priors import Prior
from simulators.registry import register

ELECTROLYTE_MIN = 1e-3  # mol/m3: electrolyte depleted (the DFN's log c_e and j0 ∝ c_e^0.5 are singular at 0)
STOICHIOMETRY_MARGIN = 1e-3  # a particle surface this close to 0 (negative) or 1 (positive): drained
NUMERICS = {"rtol": 1e-6, "atol": 1e-8}  # IDAKLU tolerances

SHORT_META = {
    "time": ("s", "time since short onset"),
    "current": ("A", "short-circuit current"),
    "short_voltage": ("V", "voltage across the short (I R_s)"),
    "soc": ("1", "state of charge"),
    "temperature": ("K", "volume-averaged cell temperature"),
    "heat_short": ("W", "Joule heat in the short (I² R_s), released inside the cell"),
    "heat_cell": ("W", "electrochemical heat generated in the electrodes (PyBaMM total heating)"),
    "heat_reactions": ("W", "decomposition-reaction heat"),
    "energy_short": ("J", "Joule heat of the short"),
    "energy_cell_heat": ("J", "electrochemical heat generated in the electrodes"),
    "energy_reactions": ("J", "decomposition-reaction heat"),
    "energy_stored": ("J", "sensible heat stored in the cell, m c_p (T_end - T_0)"),
    "energy_lost": ("J", "heat lost to the surroundings (convection + radiation)"),
    "charge_passed": ("A s", "charge passed through the short"),
    "time_end": ("s", "time at which the run ended (see attrs['termination'])"),
}


def _pybamm():
    import pybamm  # heavy: imported only here

    return pybamm


def _add_kinetics(pybamm, model, ks: KineticSet | None, T):
    """Add the decomposition states of ``ks`` (ODEs in ``T`` [K]) to ``model``.

    Returns their heat per jelly-roll volume [W/m3] as a PyBaMM expression (0 without ``ks``).
    """
    if ks is None:
        return pybamm.Scalar(0.0)
    states = {name: pybamm.Variable(f"Decomposition state {name}") for name in ks.state_names}
    rhs = {name: pybamm.Scalar(0.0) for name in ks.state_names}
    q = pybamm.Scalar(0.0)
    for r in ks.reactions:
        k = float(r.A) * pybamm.exp(-float(r.Ea) / (R_GAS * T))
        c = states[r.reactant]
        if r.law == "order":
            rate = k * pybamm.maximum(c, 0.0) ** r.m
            rhs[r.reactant] = rhs[r.reactant] - rate
        elif r.law == "conversion":
            rate = k * c * (1.0 - c)
            rhs[r.reactant] = rhs[r.reactant] + rate
        else:  # sei_limited: consumes the reactant, grows the layer
            rate = k * pybamm.maximum(c, 0.0) * pybamm.exp(-states[r.layer] / r.layer_ref)
            rhs[r.reactant] = rhs[r.reactant] - rate
            rhs[r.layer] = rhs[r.layer] + rate
        q = q + float(r.H) * float(r.W) * rate
    init = ks.initial()
    for name, var in states.items():
        model.rhs[var] = rhs[name]
        model.initial_conditions[var] = pybamm.Scalar(float(init[name]))
        model.variables[var.name] = var
    return q


def internal_short(resistance: float, *, soc: float = 1.0, temperature: float = 298.15,
                   kinetics: KineticSet | None = None, cell: str = "21700_nmc_lg_m50",
                   h_conv: float | None = None, t_end: float = 3600.0, n_time: int = 121,
                   model_name: str = "DFN", var_pts: dict | None = None) -> xr.Dataset:
    """Internal short of ``resistance`` [Ω] in ``cell`` at ``soc`` [1] and ambient ``temperature`` [K].

    ``kinetics`` is a KineticSet already at the cell's SOC (`KineticSet.at_soc`), or None for the short
    alone; ``h_conv`` [W/m2/K] defaults to the cell format's. Returns a dataset on ``time`` (``n_time``
    points in [0, t_end] s, NaN after the run ended) with the series and energies of `SHORT_META`, the
    outcomes ``thermal_runaway``, ``time_to_runaway``, ``temperature_peak``, ``heat_released_total``, and
    ``attrs["termination"]`` (the event that ended the run, module docstring).
    """
    pybamm = _pybamm()
    fmt = get_cell(cell)
    if fmt.pybamm_parameters is None:
        raise ValueError(f"cell {cell!r} has no PyBaMM parameter set")
    h = fmt.h_conv if h_conv is None else float(h_conv)
    mcp, area, v_jr = fmt.mass * fmt.cp, fmt.surface_area, fmt.jelly_roll_volume
    model = getattr(pybamm.lithium_ion, model_name)(
        {"thermal": "lumped", "operating mode": "voltage", "contact resistance": "true"})
    v = model.variables
    T = v["Volume-averaged cell temperature [K]"]
    q_react = _add_kinetics(pybamm, model, kinetics, T)
    current = v["Current [A]"]
    flows = {"energy_short": current ** 2 * float(resistance), "energy_cell_heat": v["Total heating [W]"],
             "energy_reactions": v_jr * q_react,
             "energy_lost": h * area * (T - temperature) + fmt.emissivity * SIGMA_SB * area * (T ** 4 - temperature ** 4)}
    model.rhs[T] = (flows["energy_short"] + flows["energy_cell_heat"] + flows["energy_reactions"]
                    - flows["energy_lost"]) / mcp
    for name, flow in flows.items():
        var = pybamm.Variable(f"Integrated {name} [J]")
        model.rhs[var], model.initial_conditions[var] = flow, pybamm.Scalar(0.0)
        v[var.name] = var
    v["Decomposition heating [W]"] = v_jr * q_react
    events = {
        "runaway": RUNAWAY_RATE - v_jr * q_react / mcp,
        "electrolyte depleted": pybamm.min(v["Electrolyte concentration [mol.m-3]"]) - ELECTROLYTE_MIN,
        "negative electrode drained": v["X-averaged negative particle surface stoichiometry"] - STOICHIOMETRY_MARGIN,
        "positive electrode full": 1.0 - STOICHIOMETRY_MARGIN - v["X-averaged positive particle surface stoichiometry"],
    }
    model.events = [e for e in model.events if "voltage" not in e.name.lower()]  # V ≡ 0: no cut-off
    model.events += [pybamm.Event(name, expr) for name, expr in events.items()]

    pv = pybamm.ParameterValues(fmt.pybamm_parameters)
    pv.update({"Contact resistance [Ohm]": float(resistance), "Voltage function [V]": 0.0,
               "Ambient temperature [K]": temperature, "Initial temperature [K]": temperature},
              check_already_exists=False)
    solver = pybamm.IDAKLUSolver(rtol=NUMERICS["rtol"], atol=NUMERICS["atol"])
    sim = pybamm.Simulation(model, parameter_values=pv, solver=solver, var_pts=var_pts)
    try:
        sol = sim.solve([0.0, t_end], initial_soc=soc)
    except pybamm.SolverError as err:
        raise SimulationError(f"PyBaMM internal short R={resistance} Ω failed: {err}") from err
    termination = sol.termination.removeprefix("event: ")
    termination = "time limit" if termination == "final time" else termination
    t = sol["Time [s]"].entries
    temp = sol["Volume-averaged cell temperature [K]"].entries
    I = sol["Current [A]"].entries
    cap = pv["Nominal cell capacity [A.h]"] * 3600.0
    q_passed = sol["Discharge capacity [A.h]"].entries * 3600.0
    grid = np.linspace(0.0, t_end, n_time)

    def on_grid(y):
        return np.where(grid <= t[-1] + 1e-9, np.interp(grid, t, y), np.nan)

    runaway = termination == "runaway"
    energies = {name: float(sol[f"Integrated {name} [J]"].entries[-1]) for name in flows}
    ds = xr.Dataset(
        {
            "current": ("time", on_grid(I)), "short_voltage": ("time", on_grid(I * float(resistance))),
            "soc": ("time", on_grid(soc - q_passed / cap)), "temperature": ("time", on_grid(temp)),
            "heat_short": ("time", on_grid(I ** 2 * float(resistance))),
            "heat_cell": ("time", on_grid(sol["Total heating [W]"].entries)),
            "heat_reactions": ("time", on_grid(sol["Decomposition heating [W]"].entries)),
            **energies, "energy_stored": mcp * (float(temp[-1]) - temperature),
            "charge_passed": float(q_passed[-1]), "time_end": float(t[-1]),
            "thermal_runaway": runaway, "time_to_runaway": float(t[-1]) if runaway else np.nan,
            "temperature_peak": float(np.max(temp)),
            "heat_released_total": energies["energy_short"] + energies["energy_cell_heat"] + energies["energy_reactions"],
        },
        coords={"time": grid},
        attrs={"cell": cell, "parameter_set": fmt.pybamm_parameters,
               "model": f"{model_name} + lumped thermal + decomposition kinetics",
               "kinetics": kinetics.name if kinetics is not None else "none", "resistance": float(resistance),
               "termination": termination},
    )
    return attach_units(ds, SHORT_META)


@register
@dataclass
class PybammShortRunaway(Simulator):
    """Internal short of uncertain resistance → PyBaMM DFN discharge → decomposition kinetics, one DAE.

    The electrochemical counterpart of `simulators.coupled.CoupledShortLumped` (which tabulates OCV and a
    DC resistance from PyBaMM and caps the current): here the current, its fade as the electrodes and the
    electrolyte polarise, and the heat are PyBaMM's, two-way with temperature (module docstring).
    """

    name = "pybamm_short_runaway"
    parameters = (
        Parameter("short_resistance", "Ohm", Prior("loguniform", low=0.3, high=10.0),
                  "internal short-circuit resistance",
                  "soft to medium shorts of the 5 A h cell (0.1–2.6 C); below 0.2–0.3 Ω its electrolyte depletes "
                  "before runaway is decided (measured, benchmarks/short_electrochem.py)"),
        Parameter("h_conv", "W/m2/K", Prior("loguniform", low=2.0, high=50.0),
                  "heat-transfer coefficient to the surroundings", "natural to forced convection"),
    )
    conditions = (
        Condition("soc", "1", 1.0, "state of charge", (0.05, 1.0)),
        Condition("temperature_ambient", "K", 298.15, "ambient temperature", (233.15, 333.15)),
    )
    cell: str = "21700_nmc_lg_m50"
    kinetics: str | None = None  # default: the cell's set
    t_end: float = 3600.0
    n_time: int = 121

    def _run(self, theta: dict, condition: dict) -> xr.Dataset:
        ks = load_kinetics(self.kinetics or get_cell(self.cell).kinetics).at_soc(condition["soc"])
        ds = internal_short(theta["short_resistance"], soc=condition["soc"], cell=self.cell,
                            temperature=condition["temperature_ambient"], kinetics=ks, h_conv=theta["h_conv"],
                            t_end=self.t_end, n_time=self.n_time)
        if ds.attrs["termination"] == "electrolyte depleted":  # outcome undecided: recorded as a failed run
            raise SimulationError(
                f"pybamm_short_runaway: electrolyte depleted after {float(ds.time_end):.1f} s at "
                f"R_s = {theta['short_resistance']:.3g} Ω, before runaway was decided (transport-limited regime)")
        return ds
