"""Coupled lumped simulator: internal short (uncertain resistance) + electrochemical short current + kinetics.

The short current comes from a PyBaMM-built surrogate (documented choice; a full SPMe short costs ~2–7 s,
too slow for 200-member ensembles on 2 cores): I = OCV(soc) / (R_short + R_dc), with OCV(soc) tabulated
from a C/20 SPMe discharge and R_dc the effective DC resistance from a 1C vs C/20 pair, both from the
Chen2020 (LG M50) set and cached per process (`simulators.electrochem.ocv_resistance_table`). The stored
electrical energy uses the same OCV table, so the energy books close. Separator collapse is modelled as
in `simulators.lumped`. Measured: ≈0.3–0.5 s per simulation after the one-off ~2 s table build.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from simulators.base import Condition, Parameter, Simulator
from simulators.electrochem import PybammPlating
from simulators.lumped import (LUMPED_PARAMETERS, LumpedThermal, ShortModel, perturbed_kinetics, simulate_lumped,
                               to_dataset)
from simulators.priors import Prior
from simulators.registry import register


def tabulated_short(soc_grid, ocv, resistance_dc, resistance_short) -> tuple[ShortModel, callable]:
    """Short model and stored-energy function of an OCV table (shapes (n,)) [V], resistances [Ω]."""
    energy_cum = np.concatenate([[0.0], np.cumsum(np.diff(soc_grid) * 0.5 * (ocv[1:] + ocv[:-1]))])

    def short(soc: float, T: float):
        s = max(soc, 0.0)
        v = float(np.interp(s, soc_grid, ocv))
        current = v / (resistance_short + resistance_dc) * s / (s + 0.005)
        return current, v * current

    return short, energy_cum


@register
@dataclass
class CoupledShortLumped(LumpedThermal):
    """Internal short of uncertain resistance → Joule heat (PyBaMM surrogate) → decomposition kinetics."""

    name = "coupled_short_lumped"
    parameters = LUMPED_PARAMETERS + (
        Parameter("short_resistance", "Ohm", Prior("loguniform", low=1e-3, high=10.0),
                  "internal short-circuit resistance", "soft to hard shorts (mΩ–Ω)"),
    )
    conditions = (
        Condition("soc", "1", 1.0, "state of charge", (0.0, 1.0)),
        Condition("temperature_ambient", "K", 298.15, "ambient temperature", (200.0, 400.0)),
    )
    cell: str = "21700_nmc_lg_m50"
    parameter_set: str = "Chen2020"
    t_end: float = 3600.0
    n_time: int = 121

    def simulate(self, theta: dict, condition: dict):
        from simulators.electrochem import ocv_resistance_table

        soc_grid, ocv, r_dc, cap = ocv_resistance_table(self.parameter_set, 298.15)
        short, energy_cum = tabulated_short(soc_grid, ocv, r_dc, theta["short_resistance"])
        kin = {k: v for k, v in theta.items() if k != "short_resistance"}
        ks = perturbed_kinetics(self._kinetics, kin, condition["soc"])
        soc = condition["soc"]
        return simulate_lumped(
            self._cell, ks, soc=soc, temperature_ambient=condition["temperature_ambient"],
            temperature_oven=condition["temperature_ambient"], oven_ramp_rate=1.0, heater_power=0.0,
            heater_duration=0.0, short=short, h_conv=theta["h_conv"],
            heat_capacity=self._cell.heat_capacity * theta["heat_capacity_factor"],
            temperature_separator_collapse=theta["temperature_separator_collapse"] if self.separator_short else np.inf,
            collapse_short=tabulated_short(soc_grid, ocv, r_dc, 1e-3)[0],
            time_grid=self.time_grid, energy_stored=lambda s: cap * float(np.interp(s, soc_grid, energy_cum)))

    def default_theta(self) -> dict[str, float]:
        return {**super().default_theta(), "short_resistance": 0.05}

    def _run(self, theta: dict, condition: dict) -> xr.Dataset:
        return to_dataset(self.simulate(theta, condition))


@register
@dataclass
class PlatingShortRunaway(Simulator):
    """Fast charge → lithium plating (PyBaMM, `PybammPlating`) → internal short → runaway (`CoupledShortLumped`).

    The route to failure of issue-level "fast charge at low temperature": after ``n_cycles`` cycles of the
    charge protocol, the plated fraction of the cell's lithium inventory, ``f = n_plated F / Q_1`` (Q_1 the
    first discharge capacity [A s]), is compared with an uncertain critical fraction at which dendrites
    bridge the separator (``plated_fraction_critical``; no published threshold exists, hence a wide
    log-uniform prior, an explicit assumption of the study). Beyond it an internal short of uncertain
    resistance forms in the charged cell (SOC 1) and the coupled lumped simulator decides runaway; below it
    the same simulator runs without a short (R → ∞), so every sample carries the same variables.
    Same cell as the OKane2022 set (LG M50, NMC811/graphite-SiOx 21700, 5 Ah).
    """

    name = "plating_short_runaway"
    parameters = (
        PybammPlating.parameters[0],
        Parameter("plated_fraction_critical", "1", Prior("loguniform", low=1e-5, high=1e-2),
                  "plated fraction of the lithium inventory at which a dendrite short forms",
                  "assumption (no published threshold); wide prior"),
        *CoupledShortLumped.parameters,
    )
    conditions = PybammPlating.conditions
    n_cycles: int = 3
    t_end: float = 3600.0
    n_time: int = 61

    def __post_init__(self):
        self._short = CoupledShortLumped(t_end=self.t_end, n_time=self.n_time)

    def _run(self, theta: dict, condition: dict) -> xr.Dataset:
        plating = PybammPlating(n_cycles=self.n_cycles).run({"log_k_plating": theta["log_k_plating"]}, condition)
        faraday = 96485.33212
        fraction = float(plating["lithium_plated"].values[-1]) * faraday / float(plating["capacity_discharge"].values[0])
        shorted = fraction > theta["plated_fraction_critical"]
        short_theta = {p.name: theta[p.name] for p in self._short.parameters}
        if not shorted:
            short_theta["short_resistance"] = 1e9  # no dendrite: an open circuit
        ds = self._short.run(short_theta, {"soc": 1.0, "temperature_ambient": condition["temperature_ambient"]})
        ds = ds.merge(plating.drop_vars(["thermal_runaway", "time_to_runaway", "temperature_peak",
                                         "heat_released_total"]))
        ds["plated_fraction"] = xr.DataArray(fraction, attrs={"units": "1", "long_name": "plated fraction of the lithium inventory after the cycling"})
        ds["internal_short"] = xr.DataArray(shorted, attrs={"units": "1", "long_name": "dendrite internal short formed"})
        return ds
