"""Real tests (``real.nc``) → `CalibrationData` in the frozen decoder's spaces.

Observables are mapped by name onto the decoder's layout (`sim2real.bridge.real_to_batch`): normalised,
NaN where a channel or range is missing; conditions stay in SI (the decoder normalises them).

Censoring and exclusions (every one listed in ``CalibrationData.notes``, nothing dropped silently):

- ``force_short_onset`` of a test whose voltage never collapsed (no internal short within the stroke)
  is a *lower bound*: the cell would have shorted above its peak force ``force_peak``. It enters the
  likelihood as ``P(F_onset > force_peak)`` instead of being dropped (the Soteria SCC cells).
- force values of a test whose peak force is implausibly low (``force_suspect``: a mislabelled unit,
  e.g. klbf read as N) are excluded from the force observables, with that reason.
- ``temperature_rise_rate_log`` at its ceiling (10 K/s, `simulators.features`: venting and flame, which no
  simulator here resolves) is a lower bound (``temperature_rise_rate_censored``), as is
  ``temperature_peak_window`` at the logger's 150 °C (``temperature_peak_window_censored``).
- ``breach_margin_log`` (the simulator's log ratio of peak self-heating rate to the casing's breach rate,
  `simulators.lumped`) is never measured, only its sign: a test whose casing ruptured (``bottom_rupture``)
  has a margin ≥ 0 (a lower bound at 0), every other test with a known outcome a margin ≤ 0 (an upper bound).
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from risk.bayes.model import CalibrationData

FORCE_OBSERVABLES = ("force_short_onset", "force_peak")
BREACH_MARGIN = "breach_margin_log"  # simulators.lumped: ln(peak self-heating rate / breach rate); its sign is observed


def calibration_data(real: xr.Dataset, decoder) -> CalibrationData:
    """Build the calibration data of the hierarchical model.

    Parameters
    ----------
    real : real tests, dim ``test`` (docs/contracts.md "Real data"); needs ``cell_family``.
    decoder : a `sim2real.FrozenDecoder` (its ``layout`` fixes observables and conditions).
    """
    from sim2real.bridge import real_to_batch

    layout = decoder.layout
    real = real.copy()
    names = [c.name for c in layout.channels]
    notes: list[str] = []
    tests = np.asarray(real["test"].values).astype(str)
    censored_tests = np.zeros(real.sizes["test"], bool)
    if "force_short_onset" in names and {"short_detected", "force_peak"} <= set(real.data_vars):
        no_short = ~np.asarray(real["short_detected"].values, bool) & np.isfinite(real["force_peak"].values)
        if no_short.any():
            censored_tests = no_short
            real["force_short_onset"] = real["force_short_onset"].where(~xr.DataArray(no_short, dims="test"),
                                                                       real["force_peak"])
            notes.append(f"force_short_onset censored at the peak force (no short within the stroke): "
                         f"{', '.join(tests[no_short])}")
    if "force_suspect" in real:
        bad = np.asarray(real["force_suspect"].values, bool)
        for name in (n for n in names if n in FORCE_OBSERVABLES and n in real):
            if bad.any():
                real[name] = real[name].where(~xr.DataArray(bad, dims="test"))
        if bad.any() and any(n in FORCE_OBSERVABLES for n in names):
            notes.append(f"force observables excluded (peak force < 20 N: force unit suspect): {', '.join(tests[bad])}")
    breach = None
    if BREACH_MARGIN in names and "bottom_rupture" in real:
        breach = np.asarray(real["bottom_rupture"].values, float)  # 1 / 0, NaN unknown
        real[BREACH_MARGIN] = ("test", np.where(np.isfinite(breach), 0.0, np.nan), {"units": "1"})
        notes.append(f"{BREACH_MARGIN} known by its sign only: ≥ 0 for the {int(np.nansum(breach))} tests whose casing "
                     f"ruptured, ≤ 0 for the {int(np.sum(breach == 0))} others")
    b = real_to_batch(real, layout, as_numpy=True)
    x = b.x.astype(float)
    obs = np.where(b.mask > 0, x, np.nan)
    censored = np.zeros(obs.shape, np.int8)  # risk.bayes.model.censor_sign: +1 lower bound, -1 upper bound
    sl = layout.slices()
    if "force_short_onset" in sl:
        censored[:, sl["force_short_onset"]] = censored_tests[:, None] & np.isfinite(obs[:, sl["force_short_onset"]])
    for name, flag, what in (("temperature_rise_rate_log", "temperature_rise_rate_censored", "rise rate ≥ 10 K/s"),
                             ("temperature_peak_window", "temperature_peak_window_censored", "thermocouple at 150 °C")):
        if name in sl and flag in real:
            hit = np.asarray(real[flag].values, bool)
            censored[:, sl[name]] |= hit[:, None] & np.isfinite(obs[:, sl[name]])
            if hit.any():
                notes.append(f"{name} censored at its ceiling ({what}): {', '.join(tests[hit])}")
    if breach is not None:
        censored[:, sl[BREACH_MARGIN]] = np.where(breach == 1, 1, np.where(breach == 0, -1, 0))[:, None]
    y = np.where(b.y_mask > 0, b.y.astype(float), np.nan)
    level = np.asarray(real["hazard_level"].values, dtype=float) if "hazard_level" in real else None
    family = (np.asarray(real["cell_family"].values).astype(str) if "cell_family" in real
              else np.full(real.sizes["test"], "all"))
    return CalibrationData(test=tests, family=family, conditions=b.c.astype(float), observables=obs,
                           hazard_level=level, runaway=None if level is not None else y,
                           observable_names=tuple(decoder.observable_names),
                           condition_names=tuple(decoder.condition_names), censored=censored, notes=tuple(notes))
