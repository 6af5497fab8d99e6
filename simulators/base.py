"""The `Simulator` contract every simulator implements (lumped, PyBaMM, and FE in `abuse_fe`).

A simulator declares
- `parameters`: uncertain physical parameters θ (name, SI unit, default prior, reference),
- `conditions`: test conditions c that are known for each test (SOC, oven temperature, ...),
and maps one (θ, c) to an `xarray.Dataset` by `run(theta, condition)`:

- observables on a fixed grid (dimension ``time`` [s] or ``displacement`` [m]; the grid depends only
  on the simulator's options, never on θ or c, so ensembles stack),
- scalar outcome variables, at least::

      thermal_runaway      bool   did the cell run away
      time_to_runaway      s      NaN when no runaway
      temperature_peak     K
      heat_released_total  J      chemical + electrical heat released into the cell

Every variable carries ``units`` and ``long_name`` attrs. Failures raise `SimulationError` (or any
exception); the ensemble runner records them per sample and carries on.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import xarray as xr

from simulators.priors import Prior

OUTCOMES: dict[str, tuple[str, str]] = {
    "thermal_runaway": ("1", "thermal runaway occurred"),
    "time_to_runaway": ("s", "time from trigger start to runaway (dT/dt > threshold)"),
    "temperature_peak": ("K", "peak cell temperature"),
    "heat_released_total": ("J", "total heat released inside the cell"),
}


class SimulationError(RuntimeError):
    """A simulation that ran but failed (non-convergence, NaN state, time-out)."""


@dataclass(frozen=True)
class Parameter:
    """An uncertain physical parameter θ_i of a simulator."""

    name: str
    unit: str
    prior: Prior
    long_name: str = ""
    reference: str = ""

    @property
    def bounds(self) -> tuple[float, float]:
        return self.prior.support


@dataclass(frozen=True)
class Condition:
    """A known test condition c_j (e.g. ``soc`` [1], ``temperature_oven`` [K])."""

    name: str
    unit: str
    default: float
    long_name: str = ""
    bounds: tuple[float, float] = (float("-inf"), float("inf"))


@dataclass
class Simulator(ABC):
    """Base class: subclasses set `name`, `parameters`, `conditions` and implement `_run`.

    Options (mesh size, end time, grid size) are dataclass fields of the subclass; they must not
    depend on θ or c.
    """

    name: ClassVar[str] = ""
    parameters: ClassVar[tuple[Parameter, ...]] = ()
    conditions: ClassVar[tuple[Condition, ...]] = ()
    options: dict = field(default_factory=dict, repr=False)

    @property
    def parameter_names(self) -> list[str]:
        return [p.name for p in self.parameters]

    @property
    def condition_names(self) -> list[str]:
        return [c.name for c in self.conditions]

    def run(self, theta: Mapping[str, float], condition: Mapping[str, float] | None = None) -> xr.Dataset:
        """Run one simulation. Missing conditions take their declared defaults.

        Raises `ValueError` naming unknown or missing parameters.
        """
        ds = self._run(*self._checked(theta, condition))
        ds.attrs.setdefault("simulator", self.name)
        return ds

    def run_batch(self, thetas: Sequence[Mapping[str, float]],
                  conditions: Sequence[Mapping[str, float] | None]) -> list[xr.Dataset]:
        """Run several simulations (``thetas[i]`` at ``conditions[i]``), checked as by `run`; one dataset each.

        Simulators with a vectorised path override `_run_batch` (e.g. `abuse_fe.coupled`: one ring thermal model
        for the whole batch); the results equal those of `run`, one by one.
        """
        if len(thetas) != len(conditions):
            raise ValueError(f"{self.name}: {len(thetas)} parameter sets for {len(conditions)} conditions")
        checked = [self._checked(t, c) for t, c in zip(thetas, conditions)]
        out = self._run_batch([t for t, _ in checked], [c for _, c in checked])
        for ds in out:
            ds.attrs.setdefault("simulator", self.name)
        return out

    def _checked(self, theta: Mapping[str, float], condition: Mapping[str, float] | None):
        """``(theta, condition)`` as float dicts, conditions completed by their defaults; `ValueError` naming
        unknown or missing parameters and unknown conditions."""
        theta = dict(theta)
        unknown = set(theta) - set(self.parameter_names)
        missing = set(self.parameter_names) - set(theta)
        if unknown or missing:
            raise ValueError(
                f"{self.name}: theta has unknown {sorted(unknown)} / missing {sorted(missing)} parameters"
            )
        cond = {c.name: c.default for c in self.conditions}
        extra = set(condition or {}) - set(cond)
        if extra:
            raise ValueError(f"{self.name}: unknown conditions {sorted(extra)}; declared: {sorted(cond)}")
        cond.update(condition or {})
        return {k: float(v) for k, v in theta.items()}, {k: float(v) for k, v in cond.items()}

    def _run_batch(self, thetas: list[dict[str, float]], conditions: list[dict[str, float]]) -> list[xr.Dataset]:
        return [self._run(t, c) for t, c in zip(thetas, conditions)]

    def refined(self, factor: float) -> Simulator | None:
        """This simulator with every discretisation parameter refined together by ``factor`` > 1 — cells per mesh
        direction × factor, step-size controls / factor — for the mesh-convergence check (`risk.convergence`);
        None where there is nothing to refine (the default: mesh-free models integrated to a tolerance)."""
        return None

    @abstractmethod
    def _run(self, theta: dict[str, float], condition: dict[str, float]) -> xr.Dataset: ...


def attach_units(ds: xr.Dataset, meta: Mapping[str, tuple]) -> xr.Dataset:
    """Set ``units`` and ``long_name`` attrs from ``meta = {var: (units, long_name[, extra attrs])}``
    (OUTCOMES included); extra attrs such as ``{"transform": "logit"}`` (`sim2real.bridge.TRANSFORMS`)
    tell the decoder the scale to model the variable on."""
    table = {**OUTCOMES, **meta}
    for name in list(ds.variables):
        if name in table:
            units, long_name, *extra = table[name]
            ds[name].attrs.update(units=units, long_name=long_name, **(extra[0] if extra else {}))
    return ds
