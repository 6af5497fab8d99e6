"""A small but genuine physical simulator for sim2real tests and benchmarks, and ensembles built from it.

`OvenCell` is a lumped cell in a hot-box (oven) test with one first-order Arrhenius exotherm:

    m c_p dT/dt = h A_s (T_oven − T) + m q_r soc · A exp(−E_a / (R T)) · α
    dα/dt       = −A exp(−E_a / (R T)) · α,          α(0) = 1, T(0) = 298.15 K

so the thermal balance, the kinetics and the known parameters θ = (A, E_a, h) are real physics at
millisecond cost. Observables: ``temperature_surface`` (time) [K] on a fixed grid plus the contract's
scalar outcomes. The ensemble datasets follow the "Ensemble store" layout of docs/contracts.md.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import xarray as xr
from scipy.integrate import solve_ivp

import simulators
from simulators import Condition, Parameter, Prior, Simulator, attach_units

R_GAS = 8.314462618  # J/(mol K)


@simulators.register
@dataclass
class OvenCell(Simulator):
    """Lumped 18650-like cell in an oven with one Arrhenius exotherm (see module docstring)."""

    name = "test_oven_cell"
    parameters = (
        Parameter("frequency_factor", "1/s", Prior("loguniform", low=1e11, high=1e14),
                  "Arrhenius frequency factor of the exotherm"),
        Parameter("activation_energy", "J/mol", Prior("uniform", low=1.30e5, high=1.50e5),
                  "activation energy of the exotherm"),
        Parameter("heat_transfer_coefficient", "W/(m2 K)", Prior("uniform", low=5.0, high=25.0),
                  "convective heat-transfer coefficient oven air → cell"),
    )
    conditions = (
        Condition("temperature_oven", "K", 438.15, "oven set temperature", (418.15, 458.15)),
        Condition("soc", "1", 1.0, "state of charge", (0.2, 1.0)),
    )
    n_time: int = 48
    time_end: float = 7200.0  # s
    mass: float = 0.045  # kg
    heat_capacity: float = 1000.0  # J/(kg K)
    area: float = 4.2e-3  # m2
    heat_reaction: float = 6.0e5  # J/kg of cell at soc = 1
    runaway_rate: float = 1.0  # K/s threshold on dT/dt

    def _run(self, theta, condition):
        A, Ea, h = theta["frequency_factor"], theta["activation_energy"], theta["heat_transfer_coefficient"]
        T_oven, soc = condition["temperature_oven"], condition["soc"]
        mcp = self.mass * self.heat_capacity
        q = self.heat_reaction * self.mass * max(soc, 0.0)

        def rhs(t, y):
            T, α = y
            k = A * np.exp(-Ea / (R_GAS * T))
            r = k * α
            return [(h * self.area * (T_oven - T) + q * r) / mcp, -r]

        def jac(t, y):
            T, α = y
            k = A * np.exp(-Ea / (R_GAS * T))
            dk = k * Ea / (R_GAS * T * T)
            return [[(-h * self.area + q * dk * α) / mcp, q * k / mcp], [-dk * α, -k]]

        t_grid = np.linspace(0.0, self.time_end, self.n_time)
        sol = solve_ivp(rhs, (0.0, self.time_end), [298.15, 1.0], method="LSODA", jac=jac,
                        rtol=1e-6, atol=[1e-6, 1e-9], dense_output=True)
        if not sol.success:
            raise simulators.base.SimulationError(sol.message)
        T_fine = sol.y[0]
        dTdt = np.array([rhs(t, y)[0] for t, y in zip(sol.t, sol.y.T)])
        runaway = bool(np.any(dTdt > self.runaway_rate))
        t_tr = float(sol.t[np.argmax(dTdt > self.runaway_rate)]) if runaway else np.nan
        ds = xr.Dataset(
            {
                "temperature_surface": ("time", sol.sol(t_grid)[0]),
                "thermal_runaway": ((), runaway),
                "time_to_runaway": ((), t_tr),
                "temperature_peak": ((), float(T_fine.max())),
                "heat_released_total": ((), q * (1.0 - float(sol.y[1, -1]))),
            },
            coords={"time": ("time", t_grid)},
        )
        return attach_units(ds, {"temperature_surface": ("K", "cell surface temperature"),
                                 "time": ("s", "time since the start of the test")})


def run_ensemble(sim: Simulator, n: int, seed: int) -> xr.Dataset:
    """Simulate ``n`` (θ, c) pairs (θ ~ prior, c ~ uniform in the condition bounds) into the store layout."""
    rng = np.random.default_rng(seed)
    theta = np.column_stack([p.prior.ppf(rng.uniform(size=n)) for p in sim.parameters])
    cond = np.column_stack([rng.uniform(*c.bounds, size=n) for c in sim.conditions])
    runs = [sim.run(dict(zip(sim.parameter_names, th)), dict(zip(sim.condition_names, cc)))
            for th, cc in zip(theta, cond)]
    ds = xr.concat(runs, dim="sample")
    ds = ds.assign_coords(sample=np.arange(n, dtype=np.int64), parameter=sim.parameter_names,
                          condition_name=sim.condition_names)
    ds["theta"] = (("sample", "parameter"), theta)
    ds["condition"] = (("sample", "condition_name"), cond)
    ds.attrs["parameter_units"] = json.dumps({p.name: p.unit for p in sim.parameters})
    ds.attrs["condition_units"] = json.dumps({c.name: c.unit for c in sim.conditions})
    return ds


def make_real(ens: xr.Dataset, seed: int, noise_K: float = 1.0, drop_frac: float = 0.2) -> xr.Dataset:
    """Real-like tests from simulations with known θ: measurement noise, missing tails and channels.

    Layout of docs/contracts.md "Real data": dim ``test``; conditions as variables (``soc``, ...).
    The true θ is kept in ``theta_true`` (test, parameter) for checks.
    """
    rng = np.random.default_rng(seed)
    n = ens.sizes["sample"]
    T = ens["temperature_surface"].values + rng.normal(0.0, noise_K, size=ens["temperature_surface"].shape)
    # a fraction of tests stops logging early (missing time range)
    stop = np.where(rng.uniform(size=n) < drop_frac, rng.integers(ens.sizes["time"] // 2, ens.sizes["time"], n),
                    ens.sizes["time"])
    T[np.arange(ens.sizes["time"])[None, :] >= stop[:, None]] = np.nan
    peak = ens["temperature_peak"].values + rng.normal(0.0, noise_K, n)
    peak[rng.uniform(size=n) < drop_frac] = np.nan  # channel missing
    real = xr.Dataset(
        {
            "temperature_surface": (("test", "time"), T),
            "temperature_peak": ("test", peak),
            "thermal_runaway": ("test", ens["thermal_runaway"].values.astype(float)),
            "theta_true": (("test", "parameter"), ens["theta"].values),
        },
        coords={"test": [f"T{i:03d}" for i in range(n)], "time": ens["time"].values,
                "parameter": ens["parameter"].values},
    )
    for j, c in enumerate(ens["condition_name"].values):
        real[str(c)] = ("test", ens["condition"].values[:, j])
    return real


