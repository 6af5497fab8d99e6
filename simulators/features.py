"""Summary features computed the same way from a simulated run and from a real indentation test.

The real workbooks (`risk.data.features`) and the coupled indentation chain (`abuse_fe.coupled`) both
call these functions, so a calibrated observable means the same thing on both sides.

- `voltage_drop`: pre-short voltage minus the lowest voltage within `VOLTAGE_WINDOW` (60 s) after the short
  onset [V] (≥ 0). A fixed window because the real records end at different times: the ORNL loggers of the
  large cells (NMC 10 A h, LCO 6.4 A h) stop 66–430 s after the onset, those of the small LCO pouches after
  1200–2800 s, while the simulators run 30 min; over its whole history a simulated 10 A h cell drains through
  any short below ~0.4 Ω, so the lowest voltage said "drained within 30 min", which no real record of a
  large cell shows. Within 60 s (shorter than every record) both sides measure the same thing: how hard
  the short pulls the voltage down.
- `rise_rate_max`: largest temperature-rise rate [K/s] of a thermocouple signal, read as the logger
  reads it: values above the logger's ceiling are clipped (the ORNL thermocouples saturate at 150 °C),
  slopes over at least ``tau`` = 1 s.
- `log_rise_rate`: ``ln(rate / (1 K/s))`` clipped to ``[ln RATE_FLOOR, ln RATE_CEILING]``. The rates span
  two decades; the floor (1 K/s) is the thermocouples' noise (the Soteria SCC tests, which never
  shorted, read 0.18–0.92 K/s); above the ceiling (10 K/s) the thermocouples read venting gas and
  flame, which no simulator here resolves (real runaway tests read 25–540 K/s;
  the coupled chain's thermocouple is a conduction-resolved face temperature near the short, not a
  flame), so a rate at the ceiling only says "at least 10 K/s": `rate_censored` marks it and the
  calibration uses it as a lower bound (`risk.bayes.data`).
- `peak_within`: the highest thermocouple temperature within `TEMPERATURE_WINDOW` (60 s) after the short onset
  [K], read through the logger's ceiling (150 °C; at the ceiling it is a lower bound, `reached_ceiling`). The
  window for the reason the voltage drop has one (the large cells' records end 66 s after the onset); the peak
  says how much of the short's heat reaches the face, which the rise rate alone does not (a 0.5 A h pouch drains
  within a minute and peaks at 77–95 °C, a 6.4 A h one at SOC 0.2 reads 10–47 K/s and peaks at 79–97 °C).
- `reached_ceiling`: the signal reached the logger's ceiling.
"""
from __future__ import annotations

import math

import numpy as np

KELVIN = 273.15
#: Ceiling of the ORNL thermocouple logger [K] (Lin et al., J. Energy Storage 61 (2023) 106798, raw data)
THERMOCOUPLE_CEILING = 150.0 + KELVIN
#: Rates below this are thermocouple noise over one second [K/s] (no-short ORNL tests read up to 0.92 K/s)
RATE_FLOOR = 1.0
#: Rates above this are venting and flame, not resolved by the simulators [K/s] (see the module doc)
RATE_CEILING = 10.0
#: Window after the short onset over which `voltage_drop` looks for the lowest voltage [s]: shorter than the
#: shortest real record after the onset (66 s, LCO-LP-6400mAh-100SOC-cell1; see the module doc)
VOLTAGE_WINDOW = 60.0
#: Window after the short onset over which `peak_within` reads the peak temperature [s] (as `VOLTAGE_WINDOW`)
TEMPERATURE_WINDOW = VOLTAGE_WINDOW


def voltage_drop(baseline: float, voltage: np.ndarray, time_since_onset: np.ndarray,
                 window: float = VOLTAGE_WINDOW) -> float:
    """``baseline − min(voltage)`` over ``0 ≤ time_since_onset ≤ window`` [V], ≥ 0; NaN when there is no finite
    voltage there. ``voltage`` [V] and ``time_since_onset`` [s] are ``(n,)``."""
    t = np.asarray(time_since_onset, dtype=float)
    v = np.asarray(voltage, dtype=float)
    v = v[(t >= 0.0) & (t <= window)]
    if not np.isfinite(v).any() or not math.isfinite(baseline):
        return math.nan
    return max(0.0, float(baseline - np.nanmin(v)))


def rise_rate_max(time: np.ndarray, temperature: np.ndarray, *, tau: float = 1.0,
                  ceiling: float | None = THERMOCOUPLE_CEILING) -> float:
    """Largest slope ``(T(t') − T(t)) / (t' − t)`` with ``t'`` the first sample at least ``tau`` later [K/s].

    ``time`` [s] and ``temperature`` [K] are ``(n,)``; NaN samples are skipped; the signal is clipped
    at ``ceiling`` first (None: no clipping). NaN when fewer than 3 samples.
    """
    t, temp = np.asarray(time, dtype=float), np.asarray(temperature, dtype=float)
    ok = np.isfinite(temp) & np.isfinite(t)
    t, temp = t[ok], temp[ok]
    if ceiling is not None:
        temp = np.minimum(temp, ceiling)
    if t.size < 3:
        return math.nan
    j = np.searchsorted(t, t + tau, side="left")
    valid = j < t.size
    if not valid.any():
        return math.nan
    i = np.flatnonzero(valid)
    dt = t[j[valid]] - t[i]
    good = dt > 0
    if not good.any():
        return math.nan
    return float(np.max((temp[j[valid]][good] - temp[i][good]) / dt[good]))


def peak_within(time_since_onset: np.ndarray, temperature: np.ndarray, window: float = TEMPERATURE_WINDOW,
                ceiling: float = THERMOCOUPLE_CEILING) -> float:
    """Highest ``temperature`` [K] over ``0 ≤ time_since_onset ≤ window`` [s], clipped at ``ceiling``; both
    ``(n,)``; NaN when there is no finite sample there."""
    t, temp = np.asarray(time_since_onset, dtype=float), np.asarray(temperature, dtype=float)
    inside = (t >= 0.0) & (t <= window) & np.isfinite(temp)
    return float(min(np.max(temp[inside]), ceiling)) if inside.any() else math.nan


def log_rise_rate(rate: float, floor: float = RATE_FLOOR, ceiling: float = RATE_CEILING) -> float:
    """``ln(rate / (1 K/s))`` clipped to ``[ln floor, ln ceiling]`` [1]; NaN stays NaN."""
    if not math.isfinite(rate):
        return math.nan
    return math.log(min(max(rate, floor), ceiling))


def rate_censored(rate: float, ceiling: float = RATE_CEILING) -> bool:
    """The rate reached the ceiling: its clipped log is a lower bound."""
    return bool(math.isfinite(rate) and rate >= ceiling)


def reached_ceiling(temperature: np.ndarray, ceiling: float = THERMOCOUPLE_CEILING, tolerance: float = 1.0) -> bool:
    """The signal came within ``tolerance`` [K] of the logger ceiling (its rate is then a lower bound)."""
    temp = np.asarray(temperature, dtype=float)
    return bool(np.isfinite(temp).any() and np.nanmax(temp) >= ceiling - tolerance)
