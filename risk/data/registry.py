"""Kind → reader registry, the `read(kind, path)` entry point, and the netCDF writer for ``real.nc``.

>>> ds = read("ftrc", "../shared/data/bfd/BatteryFailureDatabankV2_train.xlsx")  # doctest: +SKIP
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import xarray as xr

from risk.errors import DataError

Reader = Callable[[Path], xr.Dataset]


def _indentation(path: Path) -> xr.Dataset:
    from risk.data.indentation import read_indentation
    return read_indentation(path)


def _ftrc(path: Path) -> xr.Dataset:
    from risk.data.ftrc import read_ftrc
    return read_ftrc(path)


READERS: dict[str, Reader] = {"indentation": _indentation, "ftrc": _ftrc}


def infer_kind(path: str | Path) -> str:
    """``indentation`` for a folder (tests.csv + raw/), ``ftrc`` for an .xlsx workbook."""
    path = Path(path)
    if path.is_dir():
        return "indentation"
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return "ftrc"
    if not path.exists():
        raise DataError("path not found", path=path)
    raise DataError(f"cannot infer the data kind; pass one of {sorted(READERS)}", path=path)


def read(kind: str | None, path: str | Path) -> xr.Dataset:
    """The combined real-data dataset (dim ``test``) of a study's ``data:`` entry.

    Parameters
    ----------
    kind : ``"indentation"`` or ``"ftrc"`` (None: `infer_kind`).
    path : dataset folder (indentation) or databank workbook (ftrc).
    """
    path = Path(path)
    kind = kind or infer_kind(path)
    if kind not in READERS:
        raise DataError(f"unknown data kind {kind!r}; known: {sorted(READERS)}", path=path, field="kind")
    if not path.exists():
        raise DataError("path not found", path=path)
    return READERS[kind](path)


def write_real(ds: xr.Dataset, path: str | Path) -> Path:
    """Write a real-data dataset to netCDF (bools → int8 with ``flag_values``/``flag_meanings`` and
    ``boolean = 1``; strings as str). `read_real` restores the bools."""
    path = Path(path)
    out = ds.copy()
    for name in list(out.variables):
        var = out[name]
        if var.dtype == bool:
            attrs = dict(var.attrs, flag_values=np.array([0, 1], dtype=np.int8), flag_meanings="false true",
                         boolean=np.int8(1))
            out[name] = var.astype(np.int8).assign_attrs(attrs)
        elif var.dtype.kind in ("U", "O"):
            out[name] = var.astype(str)
    for k, v in list(out.attrs.items()):
        if isinstance(v, (bool, np.bool_)):
            out.attrs[k] = np.int8(v)
    path.parent.mkdir(parents=True, exist_ok=True)
    out.to_netcdf(path)
    return path


def read_real(path: str | Path) -> xr.Dataset:
    """Open a file written by `write_real`, restoring the boolean variables."""
    ds = xr.load_dataset(path)
    for name in list(ds.data_vars):
        if int(ds[name].attrs.get("boolean", 0)) == 1:
            attrs = {k: v for k, v in ds[name].attrs.items() if k not in ("flag_values", "flag_meanings", "boolean")}
            ds[name] = ds[name].astype(bool).assign_attrs(attrs)
    return ds
