"""Sobol indices of P(TR) with respect to the physical parameters (SALib) → ``sensitivity.nc``.

Inputs are sampled with SALib's Sobol' sequence in Saltelli's scheme (``SALib.sample.sobol``), the
model is evaluated on all ``N (2 D + 2)`` rows, and ``SALib.analyze.sobol`` gives first-order (S1) and
total (ST) indices with bootstrap 95 % half-widths (``*_conf``).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import xarray as xr
from SALib.analyze import sobol as sobol_analyze
from SALib.sample import sobol as sobol_sample


def sobol_indices(f: Callable[[np.ndarray], np.ndarray], parameter_names: Sequence[str],
                  bounds: Sequence[tuple[float, float]], *, n_base: int = 1024, seed: int,
                  units: Sequence[str] | None = None) -> xr.Dataset:
    """Sobol indices of ``f`` over independent uniform inputs.

    Parameters
    ----------
    f : vectorised model ``(n, D) -> (n,)``, e.g. θ ↦ P(TR | θ, scenario) [1].
    parameter_names : the D parameter names.
    bounds : D ``(low, high)`` ranges (in the parameter's unit, or in ``u`` space).
    n_base : Saltelli base sample size (power of 2); cost ``n_base (2 D + 2)`` evaluations.
    seed : seed for the scrambled Sobol' sequence and the bootstrap.
    units : units of the parameters (attrs only).

    Returns
    -------
    Dataset over ``parameter`` with ``S1``, ``S1_conf``, ``ST``, ``ST_conf`` [1] and attr ``n_evaluations``.
    """
    problem = {"num_vars": len(parameter_names), "names": list(parameter_names), "bounds": [list(b) for b in bounds]}
    x = sobol_sample.sample(problem, n_base, calc_second_order=False, seed=seed)
    y = np.asarray(f(x), dtype=float).ravel()
    res = sobol_analyze.analyze(problem, y, calc_second_order=False, seed=seed)
    ds = xr.Dataset(
        {k: ("parameter", np.asarray(res[k]), {"units": "1", "long_name": ln}) for k, ln in
         [("S1", "first-order Sobol index"), ("S1_conf", "95 % half-width of S1"),
          ("ST", "total Sobol index"), ("ST_conf", "95 % half-width of ST")]},
        coords={"parameter": list(parameter_names)})
    if units is not None:
        ds = ds.assign_coords(parameter_units=("parameter", list(units)))
    ds.attrs.update(n_evaluations=int(x.shape[0]), n_base=int(n_base), seed=int(seed))
    return ds
