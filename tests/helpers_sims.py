"""Small genuine simulators importable by Dask workers in tests (``"tests.helpers_sims:NewtonCooling"``)."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import xarray as xr

from simulators import Condition, Parameter, Prior, Simulator, attach_units


@dataclass
class NewtonCooling(Simulator):
    """Lumped body heated by a constant power in still air: ρcV dT/dt = P − hA (T − T∞).

    Exact solution T(t) = T∞ + P/(hA) (1 − exp(−t hA/(ρcV))). ``sleep`` [s] makes a run take time
    (for crash tests); ``fail_above`` makes runs with h above it raise (for failure recording).
    """

    name = "newton_cooling"
    parameters = (
        Parameter("h", "W/(m^2*K)", Prior("uniform", low=5.0, high=50.0), "convective coefficient"),
        Parameter("heat_capacity", "J/K", Prior("loguniform", low=20.0, high=80.0), "heat capacity ρcV"),
    )
    conditions = (Condition("power", "W", 5.0, "heater power"),
                  Condition("temperature_ambient", "K", 298.15, "ambient temperature"))
    n_time: int = 11
    t_end: float = 600.0
    sleep: float = 0.0
    fail_above: float = float("inf")
    area: float = 4.2e-3

    def _run(self, theta, condition):
        if theta["h"] > self.fail_above:
            raise RuntimeError(f"h={theta['h']:.1f} above fail_above")
        time.sleep(self.sleep)
        t = np.linspace(0, self.t_end, self.n_time)
        hA = theta["h"] * self.area
        T = condition["temperature_ambient"] + condition["power"] / hA * (1 - np.exp(-t * hA / theta["heat_capacity"]))
        ds = xr.Dataset({"temperature": ("time", T), "thermal_runaway": ((), bool(T.max() > 400.0)),
                         "time_to_runaway": ((), np.nan), "temperature_peak": ((), T.max()),
                         "heat_released_total": ((), condition["power"] * self.t_end)}, coords={"time": t})
        ds["time"].attrs.update(units="s", long_name="time")
        return attach_units(ds, {"temperature": ("K", "body temperature")})
