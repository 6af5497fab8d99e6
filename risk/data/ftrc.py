"""Battery Failure Databank (NREL/NASA, fractional thermal-runaway calorimetry) → tidy `xarray.Dataset`.

The header row of ``Fractional-Calorimetry-Data`` (and ``Cell-Characteristics``) is located by searching
for the ``Test-ID`` (``Cell-Description``) cell, not by a fixed row number. Values ``-``, empty, ``N/A`` and
Excel errors (``#DIV/0!``, ``#N/A``, ``#VALUE!`` …) become missing; the count per source column is stored in
the attr ``missing_counts`` (JSON). Units converted to SI: kJ → J, g → kg, °C → K, % → fraction.
Failure mechanism is normalised (case, spaces, typo ``Bottum`` → ``Bottom``); ``bottom_rupture`` is True
when it names a bottom rupture or breach; ``thermal_runaway`` is read from it (`RUNAWAY_RULE`).
``heat_fraction_ejecta`` is the ejecta's share of a runaway's heat (positive + negative ejecta, else 1 - body
share; NaN for tests without runaway, which eject nothing).
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import xarray as xr

from risk.data.limits import check_workbook
from risk.errors import DataError

MISSING_STRINGS = {"", "-", "n/a", "na", "none", "nan"}

#: output variable → (source column, factor to SI, units, long_name)
NUMERIC = {
    "soc": ("Pre-Test-State-of-Charge-%", 0.01, "1", "pre-test state of charge (0-1)"),
    "voltage_open_circuit_pre": ("Pre-Test-Cell-Open-Circuit-Voltage-V", 1.0, "V", "pre-test open-circuit voltage"),
    "mass_cell_pre": ("Pre-Test-Cell-Mass-g", 1e-3, "kg", "pre-test cell mass"),
    "heat_total": ("Corrected-Total-Energy-Yield-kJ", 1e3, "J", "corrected total heat output"),
    "heat_body": ("Energy-Fraction-Cell-Body-kJ", 1e3, "J", "heat through the cell body"),
    "heat_positive_ejecta": ("Energy-Fraction-Positive-Ejecta-kJ", 1e3, "J", "heat of positive-side ejecta"),
    "heat_negative_ejecta": ("Energy-Fraction-Negative-Ejecta-kJ", 1e3, "J", "heat of negative-side ejecta"),
    "fraction_body": ("Energy-Percent-Cell-Body-%", 0.01, "1", "fraction of heat through the cell body"),
    "fraction_positive_ejecta": ("Energy-Percent-Positive-Ejecta-%", 0.01, "1", "fraction of heat, positive ejecta"),
    "fraction_negative_ejecta": ("Energy-Percent-Negative-Ejecta-%", 0.01, "1", "fraction of heat, negative ejecta"),
    "mass_ejected": ("Mass-Ejected", 1e-3, "kg", "ejected mass"),
    "fraction_mass_ejected": ("Percent-Original-Mass-Ejected", 0.01, "1", "ejected fraction of the original mass"),
    "heater_power": ("Heater-Power-W", 1.0, "W", "heater power"),
    "heater_time_on": ("Heater-Time-On-s", 1.0, "s", "heater on time"),
    "energy_trigger": ("Energy-Applied-to-Trigger-kJ", 1e3, "J", "energy applied to trigger"),
    "temperature_trigger": ("Avg-Cell-Temp-At-Trigger-degC", None, "K", "average cell temperature at trigger"),
    "voltage_open_circuit_post": ("Post-Test-Open-Circuit-Voltage-V", 1.0, "V", "post-test open-circuit voltage"),
}
TEXT = {
    "cell_type": ("Cell-Description", "cell type (manufacturer model)"),
    "trigger": ("Trigger-Mechanism", "trigger mechanism"),
    "test_series": ("Test-Series", "test series"),
    "failure_mechanism": ("Cell-Failure-Mechanism", "cell failure mechanism (normalised)"),
}
CELL = {
    "cell_format": ("Cell-Format", None, "1", "cell format"),
    "capacity_nominal": ("Cell-Capacity-Ah", 3600.0, "A s", "nominal capacity (charge)"),
    "voltage_nominal": ("Cell-Nominal-Voltage-V", 1.0, "V", "nominal voltage"),
    "energy_nominal": ("Cell-Energy-Wh", 3600.0, "J", "nominal energy"),
    "casing_thickness": ("Cell-Casing-Thickness-µm", 1e-6, "m", "casing thickness"),
    "bottom_vent": ("Bottom-Vent-Yes-No", None, "1", "cell has a bottom vent"),
}


def _missing(v) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    if isinstance(v, str):
        s = v.strip().lower()
        return s in MISSING_STRINGS or s.startswith("#")
    return False


def _find_header(rows: list, key: str, path: Path, sheet: str) -> tuple[int, dict[str, int]]:
    for i, r in enumerate(rows[:30]):
        cells = [str(c).strip() if c is not None else "" for c in r]
        if key in cells:
            return i, {c: j for j, c in enumerate(cells) if c}
    raise DataError(f"header row with {key!r} not found in sheet {sheet!r}", path=path)


def normalise_failure(text: str) -> str:
    """Normalised failure mechanism: single spaces, ``Bottum`` → ``Bottom``, title case kept."""
    s = re.sub(r"\s+", " ", str(text)).strip()
    s = re.sub(r"(?i)\bbottum\b", "Bottom", s)
    return s


def is_bottom_rupture(text: str) -> bool:
    """True when a failure-mechanism text names a bottom rupture or breach."""
    return bool(re.search(r"(?i)bottom (rupture|breach)", normalise_failure(text)))


#: how a databank test's runaway outcome is read (the workbook has no runaway column)
RUNAWAY_RULE = ("ran away unless the failure mechanism is 'No Ejection': in this databank every test without "
                "ejection (nail tests at SOC <= 60 %) released 1.4-16.7 kJ, below the cell's stored electrical "
                "energy at its SOC (under 3 kJ at SOC 0 %), while every ejecting test at SOC >= 40 % released "
                "19-111 kJ (Finegan et al., J. Power Sources 597 (2024) 234106: no ejection = no self-sustained "
                "runaway)")


def ran_away(failure_mechanism: str) -> float:
    """1.0 when a normalised failure mechanism shows a runaway (any ejection), 0.0 for ``No Ejection``,
    NaN when the mechanism is not recorded (`RUNAWAY_RULE`)."""
    text = normalise_failure(failure_mechanism).lower()
    if not text:
        return float("nan")
    return 0.0 if text == "no ejection" else 1.0


def read_ftrc(path: str | Path) -> xr.Dataset:
    """Read the Battery Failure Databank workbook into a dataset with dim ``test`` (coord = Test-ID).

    Returns
    -------
    xarray.Dataset with the variables of `NUMERIC` (SI), `TEXT` (str), `CELL` (joined from
    ``Cell-Characteristics`` on ``Cell-Description``) and ``bottom_rupture`` (bool); attrs ``kind``,
    ``missing_counts`` (JSON: source column → count), ``cells_without_characteristics`` (JSON list).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path=path)
    check_workbook(path)
    try:
        import openpyxl
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as err:
        raise DataError(f"cannot read workbook ({type(err).__name__}: {err}): corrupt file?", path=path) from err
    try:
        for sheet in ("Fractional-Calorimetry-Data", "Cell-Characteristics"):
            if sheet not in wb.sheetnames:
                raise DataError(f"sheet {sheet!r} missing; sheets: {wb.sheetnames}", path=path)
        data = [list(r) for r in wb["Fractional-Calorimetry-Data"].iter_rows(values_only=True)]
        cells = [list(r) for r in wb["Cell-Characteristics"].iter_rows(values_only=True)]
    finally:
        wb.close()
    h, cols = _find_header(data, "Test-ID", path, "Fractional-Calorimetry-Data")
    for src, *_ in list(NUMERIC.values()) + list(TEXT.values()):
        if src not in cols:
            raise DataError(f"column {src!r} missing", path=path, field=src)
    rows = [r for r in data[h + 1:] if not _missing(r[cols["Test-ID"]] if cols["Test-ID"] < len(r) else None)]
    if not rows:
        raise DataError("no test rows", path=path)
    missing: dict[str, int] = {}

    def get(r, src):
        j = cols[src]
        return r[j] if j < len(r) else None

    out: dict[str, tuple] = {}
    for name, (src, factor, units, long) in NUMERIC.items():
        vals = np.full(len(rows), np.nan)
        for k, r in enumerate(rows):
            v = get(r, src)
            if _missing(v):
                continue
            if not isinstance(v, (int, float)):
                raise DataError(f"not a number: {v!r} (Test-ID {get(r, 'Test-ID')})", path=path, field=src)
            vals[k] = float(v) + 273.15 if factor is None else float(v) * factor
        missing[src] = int(np.isnan(vals).sum())
        out[name] = ("test", vals, {"units": units, "long_name": long, "source_column": src})
    for name, (src, long) in TEXT.items():
        vals = []
        for r in rows:
            v = get(r, src)
            vals.append("" if _missing(v) else str(v).strip())
        missing[src] = sum(1 for v in vals if v == "")
        if name == "failure_mechanism":
            vals = [normalise_failure(v) for v in vals]
        out[name] = ("test", np.array(vals, dtype=str), {"units": "1", "long_name": long, "source_column": src})
    out["bottom_rupture"] = ("test", np.array([is_bottom_rupture(v) for v in out["failure_mechanism"][1]]),
                             {"units": "1", "long_name": "bottom rupture or breach"})
    out["thermal_runaway"] = ("test", np.array([ran_away(v) for v in out["failure_mechanism"][1]]),
                              {"units": "1", "long_name": "thermal runaway (material ejected)",
                               "rule": RUNAWAY_RULE})
    # the ejecta's share of a runaway's heat; tests without runaway eject nothing (their few-kJ shares are vent gas)
    pos, neg, body = (out[k][1] for k in ("fraction_positive_ejecta", "fraction_negative_ejecta", "fraction_body"))
    ejecta = np.clip(np.where(np.isfinite(pos) & np.isfinite(neg), pos + neg, 1.0 - body), 0.0, 1.0)
    out["heat_fraction_ejecta"] = ("test", np.where(out["thermal_runaway"][1], ejecta, np.nan),
                                   {"units": "1", "long_name": "ejecta share of the heat of a runaway (positive + "
                                    "negative ejecta, else 1 - body share; NaN without runaway)",
                                    "source_column": "Energy-Percent-*-%"})
    # Cell-Characteristics join
    hc, ccols = _find_header(cells, "Cell-Description", path, "Cell-Characteristics")
    table = {}
    for r in cells[hc + 1:]:
        key = r[ccols["Cell-Description"]] if ccols["Cell-Description"] < len(r) else None
        if not _missing(key):
            table[str(key).strip()] = r
    cell_types = out["cell_type"][1]
    unknown = sorted({c for c in cell_types if c not in table})
    for name, (src, factor, units, long) in CELL.items():
        if src not in ccols:
            raise DataError(f"column {src!r} missing in Cell-Characteristics", path=path, field=src)
        j = ccols[src]
        if name in ("cell_format", "bottom_vent"):
            vals = []
            for c in cell_types:
                v = table[c][j] if c in table and j < len(table[c]) else None
                if name == "cell_format":
                    vals.append("" if _missing(v) else (f"{v:g}" if isinstance(v, float) else str(v)))
                else:
                    vals.append(np.int8(-1) if _missing(v) else np.int8(str(v).strip().lower() == "yes"))
            if name == "bottom_vent":
                out[name] = ("test", np.array(vals, dtype=np.int8),
                             {"units": "1", "long_name": long, "flag_values": "-1 0 1",
                              "flag_meanings": "unknown no yes"})
            else:
                out[name] = ("test", np.array(vals, dtype=str), {"units": "1", "long_name": long})
            continue
        vals = np.full(len(rows), np.nan)
        for k, c in enumerate(cell_types):
            v = table[c][j] if c in table and j < len(table[c]) else None
            if not _missing(v) and isinstance(v, (int, float)):
                vals[k] = float(v) * factor
        out[name] = ("test", vals, {"units": units, "long_name": long, "source_column": f"Cell-Characteristics/{src}"})
    test_ids = np.array([str(get(r, "Test-ID")).strip() for r in rows], dtype=str)
    if len(set(test_ids)) != len(test_ids):
        dup = sorted({t for t in test_ids if list(test_ids).count(t) > 1})
        raise DataError(f"duplicate Test-ID values {dup[:5]}", path=path, field="Test-ID")
    ds = xr.Dataset(out, coords={"test": ("test", test_ids, {"units": "1", "long_name": "Test-ID"})})
    ds.attrs.update({"kind": "ftrc", "source": str(path), "missing_counts": json.dumps(missing),
                     "cells_without_characteristics": json.dumps(unknown), "skipped": json.dumps([])})
    return ds


def apply_trigger_conditions(ds: xr.Dataset, trigger_conditions: dict[str, dict[str, float]],
                             fixed: dict[str, float] | None = None) -> tuple[xr.Dataset, dict[str, int]]:
    """Set the simulator conditions that represent each trigger mechanism on that trigger's tests.

    ds : tests (dim ``test``) with a ``trigger`` variable; trigger_conditions : trigger → {condition: SI value}
    (a study's ``data.trigger_conditions``); fixed : the study's fixed condition values, given to the other
    tests of a condition the data lack (else NaN: unknown). Returns the updated dataset and the number of
    tests per trigger.
    """
    if trigger_conditions and "trigger" not in ds:
        raise DataError("data.trigger_conditions is set but the data have no trigger column",
                        field="trigger_conditions")
    counts = {}
    for trig, conds in trigger_conditions.items():
        rows = xr.DataArray((ds["trigger"] == trig).values, dims="test")
        for name, value in conds.items():
            if name not in ds:
                other = (fixed or {}).get(name, np.nan)
                ds[name] = ("test", np.full(ds.sizes["test"], float(other)), {"units": "SI", "long_name": name})
            ds[name] = ds[name].where(~rows, float(value))
        counts[trig] = int(rows.sum())
    return ds, counts

