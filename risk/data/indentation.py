"""Indentation test workbooks (ORNL and Sandia layouts) → one `xarray.Dataset` per test, in SI units.

Layouts
-------
A workbook is recognised by the header row of its first sheet whose header matches a layout signature
(`LAYOUTS`); other sheets (the ``Column1, Column2, Column3`` averaged copies some ORNL workbooks carry) are
ignored. Unknown layouts raise `DataError` listing the header found.

- ``ornl``: blocks that each start with a time column: ``Time (second), Load (lb), Voltage (V)``;
  ``Time (sec), Penetrator Force (N), Cell Voltage (V), Displacement (mm)``; ``Time (sec), TC1 (°C) …``
  (the thermocouples on their own, sparser time base).
- ``sandia``: one block ``Test Time [s], Displacement [mm], Penetrator Force [mm], vCell [V],
  tAmbient [C], TC1 … TC6 [C]`` — the force header's ``[mm]`` is a mislabel: it is a force in N.

Columns are classified by name and unit (`_classify`), so the same code reads other files of these kinds.

Conventions (documented rules, never guesses)
---------------------------------------------
- Time [s] as recorded. The main time base is the block holding the primary force channel. A time that
  restarts (concatenated acquisition segments) is made continuous by `join_segments` and noted in attrs.
- ``force_indenter`` [N] is positive in compression. The primary force channel is the first non-empty force
  column (ORNL: ``Load (lb)`` × 4.4482216152605 N/lbf); when the sign of the largest-magnitude force is
  negative the channel is negated. Every other force column is cross-checked against it and the verdict is
  stored in attr ``force_check`` (e.g. the ``Penetrator Force (N)`` column of some ORNL files is an
  unconverted copy of the lb column).
- ``displacement_indenter`` [m] is the recorded displacement when the column has data, else NaN with attr
  ``displacement_measured = 0``. No displacement is derived from time: the ORNL crosshead speed is not
  documented in the dataset, so no rule applies.
- Thermocouples ``temperature_tc<i>`` [K] (°C + 273.15) live on their own coordinate ``time_thermocouple``
  [s] (the same clock as ``time``; Sandia: identical to ``time``); ``temperature_ambient`` [K] when present.
  Empty channels are dropped and listed in attr ``empty_channels``.
"""
from __future__ import annotations

import json
import math
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from risk.data.limits import LimitError, check_data_folder, check_workbook
from risk.errors import DataError
from risk.data.families import parse_test_name

LBF_TO_N = 4.4482216152605
KELVIN = 273.15

#: Layout name → header names (normalised: stripped, lower case, single spaces) that identify it.
LAYOUTS: dict[str, frozenset[str]] = {
    "ornl": frozenset({"time (second)", "load (lb)", "voltage (v)"}),
    "sandia": frozenset({"test time [s]", "vcell [v]", "penetrator force [mm]"}),
}

_UNIT_RE = re.compile(r"[\(\[]\s*([^\)\]]*)\s*[\)\]]")


def _norm(h) -> str:
    return re.sub(r"\s+", " ", str(h if h is not None else "")).strip().lower()


@dataclass
class Column:
    """One classified column: index in the sheet, header, role, unit, and the conversion to SI."""

    index: int
    header: str
    role: str  # time | force | voltage | displacement | thermocouple | ambient | other
    unit: str
    name: str = ""  # SI variable name (temperature_tc1, ...)
    note: str = ""


def _classify(index: int, header: str) -> Column:
    h = _norm(header)
    m = _UNIT_RE.search(h)
    unit = m.group(1).strip() if m else ""
    base = _UNIT_RE.sub("", h).strip()
    if re.match(r"^(test )?time\b", base):
        return Column(index, header, "time", unit)
    if re.search(r"\b(load|force)\b", base):
        note = ""
        if unit in ("mm", "m", "in"):
            note = f"force column labelled [{unit}]: a documented mislabel, read as N"
            unit = "n"
        return Column(index, header, "force", unit, note=note)
    if re.search(r"voltage|^vcell", base):
        return Column(index, header, "voltage", unit)
    if re.search(r"displacement|stroke", base):
        return Column(index, header, "displacement", unit)
    m_tc = re.match(r"^tc\s*(\d+)", base)
    if m_tc:
        return Column(index, header, "thermocouple", unit, name=f"temperature_tc{int(m_tc.group(1))}")
    if re.search(r"ambient", base):
        return Column(index, header, "ambient", unit, name="temperature_ambient")
    return Column(index, header, "other", unit)


def _force_to_n(unit: str, path: Path, header: str) -> float:
    table = {"lb": LBF_TO_N, "lbf": LBF_TO_N, "lbs": LBF_TO_N, "n": 1.0, "kn": 1000.0, "klb": 1000 * LBF_TO_N}
    if unit not in table:
        raise DataError(f"unknown force unit {unit!r}", path=path, field=header)
    return table[unit]


def _length_to_m(unit: str, path: Path, header: str) -> float:
    table = {"mm": 1e-3, "m": 1.0, "in": 0.0254}
    if unit not in table:
        raise DataError(f"unknown length unit {unit!r}", path=path, field=header)
    return table[unit]


def _temperature_to_k(values: np.ndarray, unit: str, path: Path, header: str) -> np.ndarray:
    u = unit.replace("°", "").replace("deg", "").strip()
    if u in ("c", ""):
        return values + KELVIN
    if u == "k":
        return values
    if u == "f":
        return (values - 32.0) * 5.0 / 9.0 + KELVIN
    raise DataError(f"unknown temperature unit {unit!r}", path=path, field=header)


def _time_to_s(unit: str, path: Path, header: str) -> float:
    table = {"s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0, "min": 60.0, "ms": 1e-3}
    if unit not in table:
        raise DataError(f"unknown time unit {unit!r}", path=path, field=header)
    return table[unit]


# --------------------------------------------------------------------------------------------- workbook IO
def read_sheets(path: str | Path) -> dict[str, list[list]]:
    """All sheets of an .xlsx workbook as lists of rows (python-calamine if installed, else openpyxl).

    Raises `DataError` naming the file when it is missing, not a workbook, or corrupt.
    """
    path = Path(path)
    if not path.exists():
        raise DataError("file not found", path=path)
    if not path.is_file():
        raise DataError("not a file", path=path)
    if not zipfile.is_zipfile(path):
        raise DataError("not an .xlsx workbook (not a zip container): corrupt or wrong format", path=path)
    check_workbook(path)
    try:
        import python_calamine as pc
    except ImportError:  # pragma: no cover - exercised only without python-calamine
        pc = None
    try:
        if pc is not None:
            wb = pc.CalamineWorkbook.from_path(str(path))
            return {name: wb.get_sheet_by_name(name).to_python(skip_empty_area=False)
                    for name in wb.sheet_names}
        import openpyxl
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        try:
            return {ws.title: [list(r) for r in ws.iter_rows(values_only=True)] for ws in wb.worksheets}
        finally:
            wb.close()
    except DataError:
        raise
    except Exception as err:  # calamine/openpyxl raise many types for broken files
        raise DataError(f"cannot read workbook ({type(err).__name__}: {err}): corrupt file?", path=path) from err


def _header_row(rows: list[list]) -> tuple[int, list[str]] | None:
    for i, row in enumerate(rows[:20]):
        cells = [_norm(c) for c in row]
        if any(cells):
            return i, cells
    return None


def detect_layout(sheets: dict[str, list[list]], path: Path) -> tuple[str, str, int]:
    """(layout, sheet name, header row index) of the first sheet whose header matches a layout."""
    seen = []
    for name, rows in sheets.items():
        hr = _header_row(rows)
        if hr is None:
            continue
        i, cells = hr
        for layout, signature in LAYOUTS.items():
            if signature <= set(cells):
                return layout, name, i
        seen.append(f"{name!r}: {[c for c in cells if c][:8]}")
    if not seen:
        raise DataError("workbook has no data (all sheets empty)", path=path)
    raise DataError(f"unknown workbook layout; headers found: {'; '.join(seen)}. Known layouts: "
                    f"{ {k: sorted(v) for k, v in LAYOUTS.items()} }", path=path)


def _numeric(rows: list[list], j: int) -> np.ndarray:
    """Column ``j`` of ``rows`` as floats (n,): numbers kept, anything else (text, dates, booleans, empty or
    missing cells) NaN. The readers return plain ``int``/``float`` cells, hence the exact type test (bool is an
    int subclass; 3x faster than ``isinstance`` per cell, most of a workbook's reading time)."""
    nan = np.nan
    return np.array([r[j] if j < len(r) and (type(r[j]) is float or type(r[j]) is int) else nan for r in rows],
                    dtype=float)


# ----------------------------------------------------------------------------------------------- reading
@dataclass
class _Block:
    time: Column
    channels: list[Column] = field(default_factory=list)


def _blocks(header: list[str]) -> list[_Block]:
    blocks: list[_Block] = []
    for j, h in enumerate(header):
        if not h:
            continue
        col = _classify(j, h)
        if col.role == "time":
            blocks.append(_Block(col))
        elif blocks:
            blocks[-1].channels.append(col)
    return blocks


def join_segments(t: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Make a time vector that restarts (decreases) continuous by joining the segments end to end.

    Rule: some exports hold several acquisition segments one after another, each restarting its clock.
    Every segment that starts with a decrease is shifted so that it begins one median sampling interval
    after the previous segment's last sample (the thermocouple clock of such files, which runs on, confirms
    the order). Returns the joined time [s] and the indices where a new segment started.
    """
    t = np.asarray(t, float).copy()
    d = np.diff(t)
    restarts = [int(k) + 1 for k in np.flatnonzero(d < 0)]
    if not restarts:
        return t, []
    dt = float(np.median(d[d > 0])) if (d > 0).any() else 1.0
    for k in restarts:
        t[k:] += t[k - 1] + dt - t[k]
    return t, restarts


def _attrs(units: str, long_name: str, **extra) -> dict:
    return {"units": units, "long_name": long_name, **extra}


def read_workbook(path: str | Path) -> xr.Dataset:
    """Read one indentation workbook (ORNL or Sandia layout) into an SI `xarray.Dataset`.

    Parameters
    ----------
    path : the ``.xlsx`` file; its stem is the test name.

    Returns
    -------
    xarray.Dataset
        dims ``time`` (n,) [s] and ``time_thermocouple`` (m,) [s]; variables ``force_indenter`` (time) [N],
        ``voltage`` (time) [V], ``displacement_indenter`` (time) [m] (NaN when not measured),
        ``temperature_tc<i>`` (time_thermocouple) [K], optionally ``temperature_ambient``; attrs ``test``,
        ``source_file``, ``layout``, ``sheet``, ``cell_family``, ``soc`` [1], ``capacity_nominal`` [A s],
        ``capacity_name`` [A s], ``displacement_measured`` (0/1), ``force_check``, ``empty_channels``.

    Raises
    ------
    DataError
        missing/corrupt file, unknown layout, no data rows, no force/voltage data, unknown units.
    """
    path = Path(path)
    sheets = read_sheets(path)
    layout, sheet, hrow = detect_layout(sheets, path)
    rows = sheets[sheet]
    header = [_norm(c) for c in rows[hrow]]
    raw_header = [str(c).strip() if c is not None else "" for c in rows[hrow]]
    data = rows[hrow + 1:]
    if not data:
        raise DataError(f"sheet {sheet!r} has a header but no data rows", path=path)
    blocks = _blocks(header)
    if not blocks:
        raise DataError(f"no time column in sheet {sheet!r}", path=path)

    def series(col: Column) -> np.ndarray:
        return _numeric(data, col.index)

    # each block: its time vector and the row mask where time is present
    btime = []
    for b in blocks:
        t = series(b.time) * _time_to_s(b.time.unit, path, raw_header[b.time.index])
        btime.append(t)
    empty: list[str] = []
    notes: list[str] = []

    forces = [(bi, c) for bi, b in enumerate(blocks) for c in b.channels if c.role == "force"]
    forces_data = [(bi, c, series(c)) for bi, c in forces]
    nonempty = [(bi, c, v) for bi, c, v in forces_data if np.isfinite(v).any()]
    if not nonempty:
        raise DataError("no force data: every force column is empty", path=path,
                        field=", ".join(raw_header[c.index] for _, c in forces) or "force")
    main_bi, fcol, fraw = nonempty[0]
    t_main_full = btime[main_bi]
    keep = np.isfinite(t_main_full)
    if keep.sum() < 2:
        raise DataError("fewer than two time samples", path=path, field=raw_header[blocks[main_bi].time.index])
    t_main = t_main_full[keep]
    t_main, restarts = join_segments(t_main)
    if restarts:
        rows_ = [int(np.flatnonzero(keep)[k]) + hrow + 2 for k in restarts]
        notes.append(f"time restarts at rows {rows_}: segments joined end to end (join_segments)")
    force = fraw[keep] * _force_to_n(fcol.unit, path, raw_header[fcol.index])
    if fcol.note:
        notes.append(fcol.note)
    big = np.nanargmax(np.abs(force)) if np.isfinite(force).any() else 0
    sign = -1.0 if force[big] < 0 else 1.0
    force = sign * force
    checks = []
    for bi, c, v in forces_data:
        if c is fcol:
            continue
        label = raw_header[c.index]
        if not np.isfinite(v).any():
            checks.append(f"{label}: empty")
            continue
        other = v[keep] * sign if bi == main_bi else None
        if other is None:  # different block: compare peak magnitudes
            ratio = np.nanmax(np.abs(v)) / max(np.nanmax(np.abs(fraw)), 1e-12)
        else:
            ratio = np.nanmax(np.abs(other)) / max(np.nanmax(np.abs(fraw[keep])), 1e-12)
        factor = _force_to_n(c.unit, path, label) / _force_to_n(fcol.unit, path, raw_header[fcol.index])
        if abs(ratio - 1.0 / factor) < 0.02 / factor:
            checks.append(f"{label}: consistent")
        elif abs(ratio - 1.0) < 0.02:
            checks.append(f"{label}: equals {raw_header[fcol.index]} (unit conversion missing); ignored")
        else:
            checks.append(f"{label}: differs (peak ratio {ratio:.3g}); ignored")

    def on_main(bi: int, v: np.ndarray) -> np.ndarray:
        if bi == main_bi:
            return v[keep]
        tb = btime[bi]
        ok = np.isfinite(tb) & np.isfinite(v)
        if ok.sum() < 2 or np.any(np.diff(tb[ok]) < 0):
            return np.full(t_main.size, np.nan)
        return np.interp(t_main, tb[ok], v[ok], left=np.nan, right=np.nan)

    volts = [(bi, c) for bi, b in enumerate(blocks) for c in b.channels if c.role == "voltage"]
    vsel = [(bi, c, series(c)) for bi, c in volts]
    vsel = [x for x in vsel if np.isfinite(x[2]).any()]
    if not vsel:
        raise DataError("no voltage data: every voltage column is empty", path=path, field="voltage")
    vsel.sort(key=lambda x: x[0] != main_bi)
    vbi, vcol, vraw = vsel[0]
    voltage = on_main(vbi, vraw)

    disp = np.full(t_main.size, np.nan)
    disp_measured = 0
    for bi, b in enumerate(blocks):
        for c in b.channels:
            if c.role != "displacement":
                continue
            v = series(c)
            if np.isfinite(v).any() and not disp_measured:
                disp = on_main(bi, v) * _length_to_m(c.unit, path, raw_header[c.index])
                disp_measured = 1
            elif not np.isfinite(v).any():
                empty.append(raw_header[c.index])

    # thermocouples: on the time base of their block
    tcs = [(bi, c) for bi, b in enumerate(blocks) for c in b.channels if c.role in ("thermocouple", "ambient")]
    tc_bi = sorted({bi for bi, _ in tcs})
    t_tc = np.array([])
    tc_vars: dict[str, np.ndarray] = {}
    tc_headers: dict[str, str] = {}
    if tc_bi:
        bi0 = tc_bi[0]
        tb = btime[bi0]
        ktc = np.isfinite(tb)
        t_tc = tb[ktc]
        t_tc, tc_restarts = join_segments(t_tc)
        if tc_restarts:
            notes.append(f"thermocouple time restarts at {len(tc_restarts)} sample(s): segments joined end to end")
        for bi, c in tcs:
            v = series(c)
            label = raw_header[c.index]
            if not np.isfinite(v).any():
                empty.append(label)
                continue
            if bi != bi0:  # a thermocouple on another time base: only when that base is monotone
                tb2, ok2 = btime[bi], np.isfinite(btime[bi]) & np.isfinite(v)
                if ok2.sum() < 2 or np.any(np.diff(tb2[ok2]) < 0):
                    empty.append(label)
                    continue
                v_on = np.interp(t_tc, tb2[ok2], v[ok2], left=np.nan, right=np.nan)
            else:
                v_on = v[ktc]
            vk = _temperature_to_k(v_on, c.unit, path, label)
            name = c.name
            while name in tc_vars:
                name += "_dup"
            tc_vars[name] = vk
            tc_headers[name] = label

    name = parse_test_name(path.stem, tuple(sheets))
    ds = xr.Dataset(
        {
            "force_indenter": ("time", force, _attrs("N", "indenter force (compression positive)",
                                                     source_column=raw_header[fcol.index])),
            "voltage": ("time", voltage, _attrs("V", "cell voltage", source_column=raw_header[vcol.index])),
            "displacement_indenter": ("time", disp, _attrs("m", "indenter displacement (as recorded)",
                                                           measured=np.int8(disp_measured))),
        },
        coords={
            "time": ("time", t_main, _attrs("s", "test time (force/voltage time base)")),
            "time_thermocouple": ("time_thermocouple", t_tc, _attrs("s", "test time of the thermocouple samples")),
        },
    )
    for var, values in sorted(tc_vars.items(), key=lambda kv: (len(kv[0]), kv[0])):
        long = "ambient temperature" if var == "temperature_ambient" else f"thermocouple {var[13:]} temperature"
        ds[var] = ("time_thermocouple", values, _attrs("K", long, source_column=tc_headers[var]))
    ds.attrs.update({
        "test": path.stem, "source_file": path.name, "layout": layout, "sheet": sheet,
        "cell_family": name.cell_family, "soc": name.soc,
        "capacity_nominal": name.capacity_nominal_ah * 3600.0,
        "capacity_name": name.capacity_name_ah * 3600.0,
        "displacement_measured": np.int8(disp_measured),
        "force_check": "; ".join(checks) or "single force column",
        "empty_channels": json.dumps(empty),
        "notes": "; ".join(notes),
    })
    return ds


def thermocouple_names(ds: xr.Dataset) -> list[str]:
    """Names of the cell thermocouple variables (``temperature_tc<i>``; ambient excluded)."""
    return [v for v in ds.data_vars if re.fullmatch(r"temperature_tc\d+(_dup)*", str(v))]


def is_finite_number(x) -> bool:
    """True for a real finite number."""
    return isinstance(x, (int, float, np.floating, np.integer)) and math.isfinite(float(x))


# ------------------------------------------------------------------------------------ folder + combined
#: Common grids of the combined dataset.
DISPLACEMENT_GRID = np.round(np.arange(0.0, 20.0e-3 + 1e-9, 0.1e-3), 7)  # m, 0–20 mm in 0.1 mm
TIME_SINCE_ONSET_GRID = np.arange(-60.0, 600.0 + 1e-9, 1.0)  # s

DISPLACEMENT_RULE = ("curves on the displacement grid use the measured displacement, zeroed at first "
                     "contact (features.contact_index), loading branch only (up to the maximum displacement, "
                     "running maximum); tests without a measured displacement (all ORNL files here) are NaN: "
                     "the crosshead speed is not documented, so no displacement is derived from time")


@dataclass
class FolderRead:
    """Result of `read_folder`: per-test datasets, skipped files with reasons, and the tests.csv join."""

    tests: list[xr.Dataset]
    skipped: list[dict]
    unmatched_summary_rows: list[dict]
    unmatched_files: list[str]


def _same_prefix(a: xr.Dataset, b: xr.Dataset) -> tuple[int, int]:
    n = min(a.sizes["time"], b.sizes["time"])
    eq = np.ones(n, bool)
    for var in ("time", "force_indenter", "voltage"):
        x, y = a[var].values[:n], b[var].values[:n]
        eq &= (x == y) | (np.isnan(x) & np.isnan(y))
    k = int(np.argmin(eq)) if not eq.all() else n
    return k, n


def raw_files(folder: Path) -> list[Path]:
    """The workbooks of a dataset folder: ``raw/*.xlsx`` (or ``*.xlsx`` directly in the folder)."""
    raw = folder / "raw" if (folder / "raw").is_dir() else folder
    return sorted(p for p in raw.iterdir() if p.suffix.lower() in (".xlsx", ".xlsm") and not p.name.startswith("~$"))


#: a folder with at least this many workbooks is read by worker processes (`read_workbooks`): starting one costs
#: ~1 s of imports, a workbook ~0.2 s of parsing
PARALLEL_MIN_FILES = 24


def _read_or_error(path: Path) -> xr.Dataset | DataError:
    try:
        return read_workbook(path)
    except DataError as err:
        return err


def read_workbooks(paths: list[Path], workers: int | None = None, *, min_files: int = PARALLEL_MIN_FILES
                   ) -> list[xr.Dataset | DataError]:
    """`read_workbook` of every path, in order; a file that cannot be read gives its `DataError` in its place.

    ``workers`` processes (None: the usable cores; spawned, so a caller that imported JAX or started threads is
    safe) read the files, each at least ``min_files / 2`` of them; one process below ``min_files``. The default
    study's 156 workbooks: 28 s in one process, half that on two cores (parsing and the cell-by-cell number test
    are CPU-bound Python and Rust that hold the GIL, so threads would not help).
    """
    n = len(os.sched_getaffinity(0)) if workers is None else workers
    n = min(n, len(paths) // max(1, min_files // 2))
    if n <= 1 or len(paths) < min_files:
        return [_read_or_error(p) for p in paths]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(_read_or_error, paths, chunksize=max(1, len(paths) // (4 * n))))


def read_folder(folder: str | Path, *, on_error: str = "raise", workers: int | None = None) -> FolderRead:
    """Read every workbook of an indentation dataset folder (``tests.csv`` + ``raw/``).

    Files whose name marks them as a copy (``Copy of``, ``-copy``, ``-original``) of another file in the folder
    are skipped with a reason (and their content compared with the kept file). Unreadable files raise
    `DataError` (``on_error="raise"``) or are listed in ``skipped`` (``on_error="skip"``). ``workers``: processes
    reading the workbooks (`read_workbooks`).
    """
    from risk.data.families import copy_marker, join_summary, normalise_stem, read_summary

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError("indentation dataset folder not found", path=folder)
    check_data_folder(folder)
    files = raw_files(folder)
    if not files:
        raise DataError("no .xlsx workbooks found (expected raw/*.xlsx)", path=folder)
    groups: dict[str, list[Path]] = {}
    for p in files:
        groups.setdefault(normalise_stem(p.stem), []).append(p)
    canonical_of: dict[Path, Path] = {}
    for members in groups.values():
        plain = [p for p in members if copy_marker(p.stem) is None]
        if plain and len(members) > 1:
            for p in members:
                if p not in plain:
                    canonical_of[p] = sorted(plain, key=lambda q: len(q.name))[0]
    kept = [p for p in files if p not in canonical_of]
    read = dict(zip(kept + list(canonical_of), read_workbooks(kept + list(canonical_of), workers)))
    tests: dict[Path, xr.Dataset] = {}
    skipped: list[dict] = []
    for p in kept:
        got = read[p]
        if isinstance(got, DataError):
            if on_error != "skip" or isinstance(got, LimitError):
                raise got
            skipped.append({"file": p.name, "reason": str(got.problem)})
        else:
            tests[p] = got
    for p, keep in canonical_of.items():
        reason = f"copy of {keep.name} (file name marks it '{copy_marker(p.stem)}')"
        other = read[p]
        if isinstance(other, LimitError):
            raise other
        if isinstance(other, DataError):
            reason += f"; itself unreadable: {other.problem}"
        elif keep in tests:
            k, n = _same_prefix(tests[keep], other)
            reason += f"; first {k} of {n} common rows identical"
        skipped.append({"file": p.name, "reason": reason})
    summary_path = folder / "tests.csv"
    rows = read_summary(summary_path) if summary_path.is_file() else []
    stems = [p.stem for p in tests]
    matched, unmatched_rows, unmatched_files = join_summary(stems, rows)
    out = []
    for p, ds in tests.items():
        row = matched.get(p.stem)
        ds.attrs["in_summary"] = np.int8(row is not None)
        ds.attrs["hazard_level"] = row.hazard_level if row else math.nan
        ds.attrs["hazard_score_calculated"] = row.calculated_score if row else math.nan
        ds.attrs["summary_file_name"] = row.file_name if row else ""
        if row is not None:
            if math.isnan(ds.attrs["capacity_nominal"]):
                ds.attrs["capacity_nominal"] = row.capacity_ah * 3600.0
            if math.isnan(ds.attrs["soc"]):
                ds.attrs["soc"] = row.soc
            elif not math.isnan(row.soc) and abs(row.soc - ds.attrs["soc"]) > 1e-9:
                ds.attrs["notes"] = (ds.attrs["notes"] + "; " if ds.attrs["notes"] else "") + \
                    f"SOC in name {ds.attrs['soc']:g} differs from tests.csv {row.soc:g}"
        out.append(ds)
    return FolderRead(out, skipped,
                      [{"file_name": r.file_name, "line": r.line} for r in unmatched_rows], unmatched_files)


def _on_displacement_grid(ds: xr.Dataset, i_contact: int) -> tuple[np.ndarray, np.ndarray]:
    nan = np.full(DISPLACEMENT_GRID.size, np.nan)
    d = ds["displacement_indenter"].values
    if not int(ds.attrs.get("displacement_measured", 0)) or not np.isfinite(d).any():
        return nan, nan.copy()
    d = d - d[i_contact]
    seg = slice(i_contact, int(np.nanargmax(d)) + 1)
    dd, ff, vv = d[seg], ds["force_indenter"].values[seg], ds["voltage"].values[seg]
    ok = np.isfinite(dd)
    dd, ff, vv = dd[ok], ff[ok], vv[ok]
    run = np.maximum.accumulate(dd)
    inc = np.concatenate([[True], np.diff(run) > 0])
    if inc.sum() < 2:
        return nan, nan.copy()
    x = run[inc]
    return (np.interp(DISPLACEMENT_GRID, x, ff[inc], left=np.nan, right=np.nan),
            np.interp(DISPLACEMENT_GRID, x, vv[inc], left=np.nan, right=np.nan))


def _temperature_since_onset(ds: xr.Dataset, t_onset: float) -> np.ndarray:
    out = np.full(TIME_SINCE_ONSET_GRID.size, np.nan)
    names = thermocouple_names(ds)
    if math.isnan(t_onset) or not names or ds.sizes["time_thermocouple"] < 2:
        return out
    tmax = np.nanmax(np.vstack([ds[n].values for n in names]), axis=0)
    tt = ds["time_thermocouple"].values
    ok = np.isfinite(tmax)
    if ok.sum() < 2:
        return out
    return np.interp(t_onset + TIME_SINCE_ONSET_GRID, tt[ok], tmax[ok], left=np.nan, right=np.nan)


_FEATURE_ATTRS = {
    "short_detected": ("1", "internal short detected (sustained voltage collapse)"),
    "time_short_onset": ("s", "time of the internal-short onset"),
    "displacement_short_onset": ("m", "indenter displacement from contact at the internal-short onset"),
    "force_short_onset": ("N", "indenter force at the internal-short onset"),
    "voltage_baseline": ("V", "pre-contact cell voltage (median)"),
    "voltage_drop": ("V", "pre-contact voltage minus minimum smoothed voltage"),
    "force_peak": ("N", "peak indenter force"),
    "force_suspect": ("1", "peak force implausibly low (< 20 N): unit of the force column suspect"),
    "temperature_peak": ("K", "peak thermocouple temperature"),
    "temperature_peak_censored": ("1", "peak thermocouple saturated (true peak >= reported)"),
    "temperature_rise_rate_max": ("K/s", "maximum thermocouple temperature-rise rate"),
    "temperature_rise_rate_log": ("1", "ln of the maximum temperature-rise rate in K/s, clipped to 1-10 K/s "
                                       "(simulators.features)"),
    "temperature_rise_rate_censored": ("1", "the rise rate reached 10 K/s: its clipped log is a lower bound"),
    "temperature_peak_window": ("K", "peak thermocouple temperature within 60 s of the short onset "
                                     "(simulators.features.peak_within)"),
    "temperature_peak_window_censored": ("1", "that peak reached the logger's 150 degC ceiling (a lower bound)"),
}


def _chemistry_code(family: str) -> float:
    """Code of the family's chemistry (`risk.data.families.chemistry_format`) among the simulators' levels, else NaN."""
    from risk.data.families import chemistry_format
    from simulators.chemistry import categorical_code

    level_code = categorical_code(chemistry_format(str(family))[0])
    return math.nan if level_code is None else level_code


def combine(read: FolderRead, folder: str | Path = "") -> xr.Dataset:
    """Combined dataset (dim ``test``) of docs/contracts.md "Real data" from a `FolderRead`.

    Variables: metadata ``cell_family`` (str), ``chemistry`` (code, NaN if not a simulated level),
    ``capacity_nominal`` [A s], ``soc`` [1], ``hazard_level``
    (1–7 or NaN), ``hazard_score_calculated`` [1], ``layout``/``source_file`` (str), ``in_summary`` (bool);
    features of `risk.data.features.indentation_features`; curves ``force_indenter`` and ``voltage``
    (test, displacement) on `DISPLACEMENT_GRID` [m] (see `DISPLACEMENT_RULE`) and ``temperature_max_tc``
    (test, time_since_onset) [K] on `TIME_SINCE_ONSET_GRID` (NaN when no short was detected).
    """
    from risk.data.features import contact_index, indentation_features

    if not read.tests:
        raise DataError("no readable indentation tests", path=folder)
    tests = sorted(read.tests, key=lambda d: d.attrs["test"])
    n = len(tests)
    feats = [indentation_features(ds) for ds in tests]
    force_grid = np.full((n, DISPLACEMENT_GRID.size), np.nan)
    volt_grid = np.full_like(force_grid, np.nan)
    temp_grid = np.full((n, TIME_SINCE_ONSET_GRID.size), np.nan)
    for i, ds in enumerate(tests):
        ic = contact_index(ds["force_indenter"].values, ds["time"].values)
        force_grid[i], volt_grid[i] = _on_displacement_grid(ds, ic)
        temp_grid[i] = _temperature_since_onset(ds, feats[i]["time_short_onset"])

    def meta(key):
        return np.array([ds.attrs[key] for ds in tests])

    data = {
        "cell_family": ("test", meta("cell_family").astype(str), {"long_name": "cell family", "units": "1"}),
        "chemistry": ("test", np.array([_chemistry_code(f) for f in meta("cell_family")], dtype=float),
                      _attrs("1", "cathode chemistry code (simulators.chemistry: 0 LCO, 1 NMC, 2 LFP; NaN: other "
                                  "or not stated)")),
        "capacity_nominal": ("test", meta("capacity_nominal").astype(float),
                             _attrs("A s", "nominal cell capacity (charge)")),
        "soc": ("test", meta("soc").astype(float), _attrs("1", "state of charge (0-1)")),
        "hazard_level": ("test", meta("hazard_level").astype(float),
                         _attrs("1", "observed hazard level 1-7 (tests.csv), NaN if unknown")),
        "hazard_score_calculated": ("test", meta("hazard_score_calculated").astype(float),
                                    _attrs("1", "authors' calculated severity score 0-100 (tests.csv)")),
        "layout": ("test", meta("layout").astype(str), _attrs("1", "workbook layout")),
        "source_file": ("test", meta("source_file").astype(str), _attrs("1", "raw workbook file name")),
        "in_summary": ("test", meta("in_summary").astype(bool), _attrs("1", "test has a row in tests.csv")),
        "displacement_measured": ("test", meta("displacement_measured").astype(bool),
                                  _attrs("1", "the workbook has a displacement channel with data")),
    }
    for key, (units, long) in _FEATURE_ATTRS.items():
        vals = np.array([f[key] for f in feats])
        flag = all(isinstance(f[key], (bool, np.bool_)) for f in feats)
        data[key] = ("test", vals.astype(bool) if flag else vals.astype(float), _attrs(units, long))
    data["force_indenter"] = (("test", "displacement"), force_grid,
                              _attrs("N", "indenter force on the common displacement grid"))
    data["voltage"] = (("test", "displacement"), volt_grid, _attrs("V", "cell voltage on the displacement grid"))
    data["temperature_max_tc"] = (("test", "time_since_onset"), temp_grid,
                                  _attrs("K", "maximum thermocouple temperature vs time since short onset"))
    out = xr.Dataset(data, coords={
        "test": ("test", np.array([ds.attrs["test"] for ds in tests], dtype=str), {"units": "1", "long_name": "test (file stem)"}),
        "displacement": ("displacement", DISPLACEMENT_GRID, _attrs("m", "indenter displacement from contact")),
        "time_since_onset": ("time_since_onset", TIME_SINCE_ONSET_GRID, _attrs("s", "time since short onset")),
    })
    out.attrs.update({
        "kind": "indentation",
        "source": str(folder),
        "skipped": json.dumps(read.skipped),
        "unmatched_summary_rows": json.dumps(read.unmatched_summary_rows),
        "unmatched_files": json.dumps(read.unmatched_files),
        "displacement_rule": DISPLACEMENT_RULE,
        "force_check": json.dumps({ds.attrs["test"]: ds.attrs["force_check"] for ds in tests}),
        "notes": json.dumps({ds.attrs["test"]: ds.attrs["notes"] for ds in tests if ds.attrs["notes"]}),
    })
    return out


def read_indentation(folder: str | Path, *, on_error: str = "raise") -> xr.Dataset:
    """Read an indentation dataset folder into the combined real-data dataset (`combine` of `read_folder`)."""
    return combine(read_folder(folder, on_error=on_error), folder)
