"""PyBaMM wrappers: OCV/resistance tables, lithium plating under aggressive cycling.

We wrap PyBaMM (Sulzer et al., J. Open Res. Softw. 9 (2021) 14) and never re-implement DFN/SPMe. The
internal short computed by PyBaMM (DFN + kinetics in one DAE) is `simulators.electrochem_short`.
Parameter set: Chen2020 (LG M50 21700; Chen et al., J. Electrochem. Soc. 167 (2020) 080534); plating and
SEI growth: OKane2022 (O'Kane et al., Phys. Chem. Chem. Phys. 24 (2022) 7909).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import xarray as xr

from simulators.base import Condition, Parameter, SimulationError, Simulator, attach_units
from simulators.priors import Prior
from simulators.registry import register



def _pybamm():
    import pybamm  # heavy: imported only here

    return pybamm


@functools.lru_cache(maxsize=8)
def ocv_resistance_table(parameter_set: str = "Chen2020", temperature: float = 298.15, n: int = 41):
    """OCV(soc) [V] from a C/20 discharge and an effective DC resistance [Ω] from a 1C/C/20 pair.

    Cached per (set, temperature): the fast short-circuit surrogate of `simulators.coupled` is built
    from these two PyBaMM runs. Returns ``(soc_grid, ocv, resistance, capacity [A s])``.
    """
    pybamm = _pybamm()
    pv = pybamm.ParameterValues(parameter_set)
    pv.update({"Ambient temperature [K]": temperature, "Initial temperature [K]": temperature})
    cap = pv["Nominal cell capacity [A.h]"] * 3600.0
    soc_grid = np.linspace(0.0, 1.0, n)
    volts = {}
    for crate in (0.05, 1.0):
        exp = pybamm.Experiment([f"Discharge at {crate}C until 2.5 V"])
        sol = pybamm.Simulation(pybamm.lithium_ion.SPMe(), parameter_values=pv, experiment=exp).solve(initial_soc=1.0)
        s = 1.0 - sol["Discharge capacity [A.h]"].entries * 3600.0 / cap
        volts[crate] = np.interp(soc_grid, s[::-1], sol["Voltage [V]"].entries[::-1], left=np.nan)
    ocv = volts[0.05]
    ocv = np.where(np.isnan(ocv), np.nanmin(ocv), ocv)
    I1, I0 = cap / 3600.0, 0.05 * cap / 3600.0
    mid = (soc_grid > 0.2) & (soc_grid < 0.9)
    resistance = float(np.nanmean((volts[0.05][mid] - volts[1.0][mid]) / (I1 - I0)))
    return soc_grid, ocv, resistance, cap


PLATING_META = {
    "cycle": ("1", "cycle number"),
    "capacity_discharge": ("A s", "discharge capacity of each cycle"),
    "lithium_plated": ("mol", "lithium lost to plating (cumulative)"),
    "lithium_lost_sei": ("mol", "lithium lost to SEI growth (cumulative)"),
    "capacity_fade": ("1", "1 - capacity / first-cycle capacity"),
}


@register
@dataclass
class PybammPlating(Simulator):
    """Aggressive cycling (fast charge, low temperature) with PyBaMM's lithium-plating and SEI submodels.

    DFN with ``{"lithium plating": "partially reversible", "SEI": "solvent-diffusion limited"}`` and the
    OKane2022 parameter set. Observables per ``cycle``: discharge capacity, plated lithium, SEI lithium,
    capacity fade. Runaway outcomes are NaN/False: plating is the *route* to failure (it raises the
    short-circuit probability), not a thermal event. Options: ``n_cycles`` (tiny by default).
    """

    name = "pybamm_plating"
    parameters = (
        Parameter("log_k_plating", "1", Prior("truncnormal", mu=0.0, sigma=1.0, low=-3.0, high=3.0),
                  "natural-log multiplier of the lithium-plating kinetic rate constant", "O'Kane et al. 2022"),
    )
    conditions = (
        Condition("c_rate_charge", "1", 3.0, "charge C-rate", (0.1, 10.0)),
        Condition("temperature_ambient", "K", 268.15, "ambient temperature", (233.15, 333.15)),
    )
    n_cycles: int = 3

    def _run(self, theta: dict, condition: dict) -> xr.Dataset:
        pybamm = _pybamm()
        model = pybamm.lithium_ion.DFN({"lithium plating": "partially reversible",
                                        "SEI": "solvent-diffusion limited"})
        pv = pybamm.ParameterValues("OKane2022")
        T = condition["temperature_ambient"]
        pv.update({"Ambient temperature [K]": T, "Initial temperature [K]": T})
        key = "Lithium plating kinetic rate constant [m.s-1]"
        pv.update({key: pv[key] * float(np.exp(theta["log_k_plating"]))})
        c = condition["c_rate_charge"]
        exp = pybamm.Experiment([(f"Charge at {c}C until 4.2 V", "Hold at 4.2 V until C/20",
                                  "Discharge at 1C until 2.5 V")] * self.n_cycles)
        sim = pybamm.Simulation(model, parameter_values=pv, experiment=exp,
                                var_pts={"x_n": 8, "x_s": 5, "x_p": 8, "r_n": 10, "r_p": 10})
        try:
            sol = sim.solve(initial_soc=0.0)
        except pybamm.SolverError as err:
            raise SimulationError(f"pybamm_plating failed: {err}") from err
        caps, plated, sei = [], [], []
        for cyc in sol.cycles[: self.n_cycles]:
            if cyc is None:
                raise SimulationError("pybamm_plating: a cycle did not complete")
            dis = cyc.steps[-1]
            q = dis["Discharge capacity [A.h]"].entries
            caps.append((q[-1] - q[0]) * 3600.0)
            plated.append(float(cyc["Loss of lithium to negative lithium plating [mol]"].entries[-1]))
            sei.append(float(cyc["Loss of lithium to negative SEI [mol]"].entries[-1]))
        caps = np.asarray(caps)
        ds = xr.Dataset(
            {"capacity_discharge": ("cycle", caps), "lithium_plated": ("cycle", plated),
             "lithium_lost_sei": ("cycle", sei), "capacity_fade": ("cycle", 1.0 - caps / caps[0]),
             "thermal_runaway": False, "time_to_runaway": np.nan,
             "temperature_peak": float(np.max(sol["Volume-averaged cell temperature [K]"].entries)),
             "heat_released_total": 0.0},
            coords={"cycle": np.arange(1, self.n_cycles + 1)},
        )
        return attach_units(ds, PLATING_META)
