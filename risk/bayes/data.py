"""Real tests (``real.nc``) → `CalibrationData` in the frozen decoder's spaces.

Observables are mapped by name onto the decoder's layout (`sim2real.bridge.real_to_batch`): normalised,
NaN where a channel or range is missing; conditions stay in SI (the decoder normalises them).
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from risk.bayes.model import CalibrationData


def calibration_data(real: xr.Dataset, decoder) -> CalibrationData:
    """Build the calibration data of the hierarchical model.

    Parameters
    ----------
    real : real tests, dim ``test`` (docs/contracts.md "Real data"); needs ``cell_family``.
    decoder : a `sim2real.FrozenDecoder` (its ``layout`` fixes observables and conditions).
    """
    from sim2real.bridge import real_to_batch

    b = real_to_batch(real, decoder.layout)
    x = b.x.numpy().astype(float)
    obs = np.where(b.mask.numpy() > 0, x, np.nan)
    y = np.where(b.y_mask.numpy() > 0, b.y.numpy().astype(float), np.nan)
    level = np.asarray(real["hazard_level"].values, dtype=float) if "hazard_level" in real else None
    family = (np.asarray(real["cell_family"].values).astype(str) if "cell_family" in real
              else np.full(real.sizes["test"], "all"))
    return CalibrationData(test=np.asarray(real["test"].values).astype(str), family=family,
                           conditions=b.c.numpy().astype(float), observables=obs, hazard_level=level,
                           runaway=None if level is not None else y,
                           observable_names=tuple(decoder.observable_names),
                           condition_names=tuple(decoder.condition_names))
