"""Derived features of one indentation test (a dataset from `risk.data.indentation.read_workbook`).

Algorithms
----------
Smoothing: voltage and force are median-filtered over a window of ``smooth_time`` seconds (odd sample
count ≥ 3, from the median sampling interval); median filters reject single-sample spikes without shifting
steps.

Internal-short onset (`detect_short_onset`):
1. Baseline: median of the smoothed voltage before contact — the samples before the force first exceeds
   ``contact_fraction`` × peak force (at least the first ``min_baseline_samples``). Noise σ = 1.4826·MAD of
   the raw voltage in that window, floored at 1 mV.
2. Threshold Δ = max(``drop_threshold``, 8 σ). Candidate crossings: times where the smoothed voltage falls
   below baseline − Δ. The first crossing after which the smoothed voltage stays below baseline − Δ/2 for
   ``dwell_time`` seconds (or until the end of the record) is the collapse; glitches that recover are ignored.
3. Onset refinement: walk back from the crossing to the last sample where the smoothed voltage was still
   ≥ baseline − max(3 σ, 2 mV): that is when the collapse began. ``time_short_onset`` is that time;
   ``force_short_onset`` and ``displacement_short_onset`` are the smoothed force and the displacement there
   (displacement measured from first contact, `contact_index`; NaN when not measured). No qualifying crossing → no short: NaN onset, ``short_detected``
   False.

Voltage drop: baseline − minimum smoothed voltage within 60 s after the onset [V] (≥ 0;
`simulators.features.voltage_drop`, which says why 60 s); without a detected short, over the whole record.
Peak force: maximum of the smoothed compressive force [N]; ``force_suspect`` when it is below
``min_plausible_force`` (20 N: no cell is indented to failure under 20 N — a mislabelled unit, e.g. klbf).
Peak temperature: maximum over the thermocouples (3-sample median filter) [K]. A channel is saturated when its
maximum is within ``saturation_tolerance`` of ``saturation_temperature`` (150 °C, the ORNL logger's ceiling)
and held for ≥ 3 samples; ``temperature_peak_censored`` is True when the channel that gives the peak
saturated (the true peak is then ≥ the reported value).
Peak temperature after the short: the highest median-filtered thermocouple temperature within 60 s of the onset
[K] (`simulators.features.peak_within`, which says why 60 s), censored when within ``saturation_tolerance`` of the
ceiling; NaN without a short.
Temperature-rise rate: per channel, the slope (T(t+τ) − T(t))/τ' over the first sample at least τ = 1 s later
(τ' the actual spacing) of the median-filtered signal; maximum over time and channels [K/s].
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import xarray as xr
from scipy.ndimage import median_filter

from risk.data.indentation import thermocouple_names
from simulators import features as shared

KELVIN = 273.15


@dataclass(frozen=True)
class OnsetSettings:
    """Tuning of the short-onset detector (see the module docstring)."""

    smooth_time: float = 1.0  # s
    drop_threshold: float = 0.05  # V
    dwell_time: float = 5.0  # s
    contact_fraction: float = 0.05
    min_baseline_samples: int = 10


@dataclass(frozen=True)
class ShortOnset:
    """Result of `detect_short_onset`: times [s], voltages [V]; NaN when no short."""

    detected: bool
    time: float
    index: int
    baseline: float
    noise: float
    threshold: float


def _window(t: np.ndarray, seconds: float) -> int:
    dt = np.median(np.diff(t)) if t.size > 1 else 1.0
    n = int(round(seconds / dt)) if dt > 0 else 3
    n = max(3, n)
    return n + 1 - n % 2


def _smooth(x: np.ndarray, n: int) -> np.ndarray:
    """Median filter that tolerates NaN (filled by nearest valid sample first)."""
    x = np.asarray(x, float)
    ok = np.isfinite(x)
    if not ok.any():
        return x.copy()
    if not ok.all():
        idx = np.arange(x.size)
        x = np.interp(idx, idx[ok], x[ok])
    return median_filter(x, size=n, mode="nearest")


def detect_short_onset(time: np.ndarray, voltage: np.ndarray, force: np.ndarray,
                       settings: OnsetSettings = OnsetSettings()) -> ShortOnset:
    """Detect the internal-short onset as the start of a sustained voltage collapse.

    Parameters
    ----------
    time : (n,) [s], non-decreasing.
    voltage : (n,) [V].
    force : (n,) [N], compression positive (sets the pre-contact baseline window).

    Returns
    -------
    ShortOnset
    """
    n_win = _window(time, settings.smooth_time)
    vs = _smooth(voltage, n_win)
    fs = _smooth(force, n_win)
    fpk = np.nanmax(fs) if np.isfinite(fs).any() else 0.0
    above = np.flatnonzero(fs > settings.contact_fraction * fpk) if fpk > 0 else np.array([], int)
    n_base = int(above[0]) if above.size else time.size // 10
    n_base = max(n_base, settings.min_baseline_samples)
    n_base = min(n_base, time.size)
    vb = voltage[:n_base][np.isfinite(voltage[:n_base])]
    if vb.size == 0:
        return ShortOnset(False, math.nan, -1, math.nan, math.nan, math.nan)
    baseline = float(np.median(vs[:n_base]))
    noise = max(1.4826 * float(np.median(np.abs(vb - np.median(vb)))), 1e-3)
    delta = max(settings.drop_threshold, 8.0 * noise)
    below = vs < baseline - delta
    half = vs < baseline - delta / 2
    # end index of the dwell window for each sample
    dwell_end = np.searchsorted(time, time + settings.dwell_time, side="left")
    # number of "half" samples in [i, dwell_end) via cumulative sums
    cs = np.concatenate([[0], np.cumsum(~half)])
    for i in np.flatnonzero(below):
        j = min(dwell_end[i], time.size)
        if cs[j] - cs[i] == 0:
            k = i
            level = baseline - max(3.0 * noise, 2e-3)
            while k > 0 and vs[k] < level:
                k -= 1
            return ShortOnset(True, float(time[k]), int(k), baseline, noise, delta)
    return ShortOnset(False, math.nan, -1, baseline, noise, delta)


def indentation_features(ds: xr.Dataset, settings: OnsetSettings = OnsetSettings(), *,
                         saturation_temperature: float = 150.0 + KELVIN, saturation_tolerance: float = 1.0,
                         min_plausible_force: float = 20.0) -> dict[str, float | bool | int]:
    """Scalar features of one test (see the module docstring for each algorithm).

    Returns
    -------
    dict with ``time_short_onset`` [s], ``displacement_short_onset`` [m], ``force_short_onset`` [N],
    ``short_detected`` (bool), ``voltage_baseline`` [V], ``voltage_drop`` [V], ``force_peak`` [N],
    ``force_suspect`` (bool), ``temperature_peak`` [K], ``temperature_peak_censored`` (bool),
    ``temperature_rise_rate_max`` [K/s], ``temperature_rise_rate_log`` [1] and
    ``temperature_rise_rate_censored`` (bool) (`simulators.features`: the same definitions as the simulators').
    """
    t = ds["time"].values
    v = ds["voltage"].values
    f = ds["force_indenter"].values
    onset = detect_short_onset(t, v, f, settings)
    n_win = _window(t, settings.smooth_time)
    vs = _smooth(v, n_win)
    fs = _smooth(f, n_win)
    out: dict[str, float | bool | int] = {
        "short_detected": onset.detected,
        "time_short_onset": onset.time,
        "voltage_baseline": onset.baseline,
        # without a short there is no onset: the lowest voltage over the whole record
        "voltage_drop": shared.voltage_drop(onset.baseline, vs, t - onset.time if onset.detected else np.zeros_like(t)),
        "force_peak": float(np.nanmax(fs)) if np.isfinite(fs).any() else math.nan,
    }
    out["force_suspect"] = bool(not (out["force_peak"] >= min_plausible_force))
    if onset.detected:
        out["force_short_onset"] = float(fs[onset.index])
        d = ds["displacement_indenter"].values
        out["displacement_short_onset"] = float(d[onset.index] - d[contact_index(f, t)])
    else:
        out["force_short_onset"] = math.nan
        out["displacement_short_onset"] = math.nan
    peak, censored, rate, early = math.nan, False, math.nan, math.nan
    tt = ds["time_thermocouple"].values
    for name in thermocouple_names(ds):
        temp = _smooth(ds[name].values, 3)
        if not np.isfinite(temp).any():
            continue
        tmax = float(np.nanmax(temp))
        raw = ds[name].values
        sat = (abs(tmax - saturation_temperature) <= saturation_tolerance
               and int(np.sum(np.abs(raw - tmax) <= 0.05)) >= 3)
        if math.isnan(peak) or tmax > peak:
            peak, censored = tmax, sat
        r = shared.rise_rate_max(tt, temp, ceiling=None)  # the logger already clipped it
        if not math.isnan(r) and (math.isnan(rate) or r > rate):
            rate = r
        if onset.detected:
            e = shared.peak_within(tt - onset.time, temp, ceiling=saturation_temperature)
            if not math.isnan(e) and (math.isnan(early) or e > early):
                early = e
    out["temperature_peak"] = peak
    out["temperature_peak_censored"] = bool(censored)
    out["temperature_rise_rate_max"] = rate
    out["temperature_rise_rate_log"] = shared.log_rise_rate(rate)
    out["temperature_rise_rate_censored"] = shared.rate_censored(rate)
    out["temperature_peak_window"] = early
    out["temperature_peak_window_censored"] = bool(
        math.isfinite(early) and early >= saturation_temperature - saturation_tolerance)
    return out


def contact_index(force: np.ndarray, time: np.ndarray, *, smooth_time: float = 1.0,
                  min_force: float = 10.0, fraction: float = 0.01) -> int:
    """Index of first contact: the smoothed force first exceeds max(``min_force`` [N], ``fraction`` × peak).

    Displacements of the combined dataset are measured from the displacement at this sample.
    Returns 0 when the force never exceeds the level.
    """
    fs = _smooth(force, _window(time, smooth_time))
    if not np.isfinite(fs).any():
        return 0
    level = max(min_force, fraction * float(np.nanmax(fs)))
    idx = np.flatnonzero(fs > level)
    return int(idx[0]) if idx.size else 0
