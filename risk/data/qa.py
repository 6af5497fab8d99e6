"""QA plots of indentation tests: raw voltage and force vs time, detected short onset marked (PNG)."""
from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from risk.data.features import indentation_features  # noqa: E402
from risk.data.indentation import thermocouple_names  # noqa: E402


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def plot_test(ds: xr.Dataset, out_dir: str | Path, features: dict | None = None) -> Path:
    """Write ``<out_dir>/<test>.png``: voltage, force and thermocouples vs time, onset as a red line.

    Parameters
    ----------
    ds : one test from `risk.data.indentation.read_workbook`.
    out_dir : folder (created).
    features : precomputed `indentation_features` (computed when None).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    f = features if features is not None else indentation_features(ds)
    t = ds["time"].values
    fig, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    axes[0].plot(t, ds["voltage"].values, lw=0.8)
    axes[0].set_ylabel("voltage [V]")
    axes[1].plot(t, ds["force_indenter"].values, lw=0.8, color="tab:green")
    axes[1].set_ylabel("force [N]")
    for name in thermocouple_names(ds):
        axes[2].plot(ds["time_thermocouple"].values, ds[name].values - 273.15, lw=0.8, label=name[12:])
    axes[2].set_ylabel("temperature [°C]")
    axes[2].set_xlabel("time [s]")
    if thermocouple_names(ds):
        axes[2].legend(fontsize=7)
    if f["short_detected"]:
        for ax in axes:
            ax.axvline(f["time_short_onset"], color="red", lw=1.0, ls="--")
        axes[0].set_title(f"{ds.attrs['test']} — {ds.attrs['cell_family']} — onset {f['time_short_onset']:.1f} s, "
                          f"F={f['force_short_onset']:.0f} N, ΔV={f['voltage_drop']:.2f} V", fontsize=9)
    else:
        axes[0].set_title(f"{ds.attrs['test']} — {ds.attrs['cell_family']} — no short detected", fontsize=9)
    axes[0].axhline(f["voltage_baseline"], color="grey", lw=0.6)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.xaxis.set_minor_locator(matplotlib.ticker.AutoMinorLocator(5))
        ax.grid(which="minor", alpha=0.1)
    fig.tight_layout()
    path = out_dir / f"{_safe(ds.attrs['test'])}.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def plot_tests(tests: list[xr.Dataset], out_dir: str | Path) -> list[Path]:
    """`plot_test` for every test; returns the PNG paths."""
    return [plot_test(ds, out_dir) for ds in tests]


def zoom_onset(ds: xr.Dataset, out_dir: str | Path, half_width: float = 20.0) -> Path | None:
    """PNG of the voltage within ±``half_width`` s of the detected onset (for checking the onset by eye)."""
    f = indentation_features(ds)
    if not f["short_detected"]:
        return None
    t0 = f["time_short_onset"]
    t = ds["time"].values
    m = (t > t0 - half_width) & (t < t0 + half_width)
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.plot(t[m], ds["voltage"].values[m], ".-", ms=2, lw=0.6)
    ax.axvline(t0, color="red", ls="--")
    ax.set_title(f"{ds.attrs['test']} onset {t0:.2f} s", fontsize=9)
    ax.xaxis.set_minor_locator(matplotlib.ticker.AutoMinorLocator(10))
    ax.grid(which="both", alpha=0.3)
    ax.set_xlabel("time [s]")
    ax.set_ylabel("voltage [V]")
    fig.tight_layout()
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    path = Path(out_dir) / f"{_safe(ds.attrs['test'])}_zoom.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


__all__ = ["plot_test", "plot_tests", "zoom_onset", "np"]
