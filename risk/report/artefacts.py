"""Read the saved artefacts of a run directory for the report (never recomputes a stage).

Every artefact is optional. :func:`load_artefacts` returns an :class:`Artefacts` whose fields are
None for absent files; files that exist but cannot be read are recorded in ``problems`` (so the
report shows the error in the section instead of silently leaving it out).
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xarray as xr

FILES = {
    "study_yaml": "study.yaml", "stages": "stages.json", "provenance": "provenance.json",
    "real": "real.nc", "ensemble": "ensemble.zarr", "failures": "failures.jsonl",
    "metrics": "model/metrics.json", "posterior": "posterior.nc",
    "diagnostics": "diagnostics.json", "predictions": "predictions.nc",
    "sensitivity": "sensitivity.nc", "rare_events": "rare_events.json",
    "crossval": "crossval.json", "mesh_convergence": "mesh_convergence.json",
    "next_test": "next_test.nc", "prior_sensitivity": "prior_sensitivity.json",
    "misspecification": "misspecification.json", "rounds": "rounds.json", "fidelity": "fidelity.json",
}
"""Artefact key → path relative to ``runs/<study>/``."""


@dataclass
class Artefacts:
    """The artefacts of one run; None where the file is absent."""

    run_dir: Path
    study_yaml: str | None = None
    stages: dict | None = None
    provenance: dict | None = None
    real: xr.DataTree | None = None
    ensemble: dict | None = None
    failures: list[dict] | None = None
    metrics: dict | None = None
    posterior: xr.DataTree | None = None
    diagnostics: dict | None = None
    predictions: xr.Dataset | None = None
    sensitivity: xr.Dataset | None = None
    rare_events: Any = None
    crossval: dict | None = None
    mesh_convergence: Any = None
    next_test: xr.Dataset | None = None
    prior_sensitivity: dict | None = None
    misspecification: dict | None = None
    rounds: dict | None = None
    fidelity: dict | None = None
    problems: dict[str, str] = field(default_factory=dict)

    def path(self, key: str) -> Path:
        """Path of artefact ``key``."""
        return self.run_dir / FILES[key]


def _json(path: Path) -> Any:
    return json.loads(path.read_text())


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _netcdf(path: Path) -> xr.Dataset:
    with xr.open_dataset(path) as ds:
        return ds.load()


def _datatree(path: Path) -> xr.DataTree:
    with xr.open_datatree(path) as dt:
        return dt.load()


def _ensemble_summary(path: Path) -> dict:
    """Size and variables of the ensemble store (lazy: only metadata and small coords are read)."""
    with warnings.catch_warnings():  # stores may or may not have consolidated metadata
        warnings.simplefilter("ignore", RuntimeWarning)
        ds = xr.open_zarr(path)
    try:
        return {"n_samples": int(ds.sizes.get("sample", 0)),
                "parameters": [str(p) for p in ds["parameter"].values] if "parameter" in ds else [],
                "variables": sorted(str(v) for v in ds.data_vars),
                "simulator": ds.attrs.get("simulator", ""),
                "wall_time_total": float(ds["wall_time"].sum()) if "wall_time" in ds else None,
                "attrs": {k: v for k, v in ds.attrs.items() if isinstance(v, (str, int, float))}}
    finally:
        ds.close()


_READERS = {
    "study_yaml": lambda p: p.read_text(), "stages": _json, "provenance": _json,
    "real": _datatree, "ensemble": _ensemble_summary, "failures": _jsonl, "metrics": _json,
    "posterior": _datatree, "diagnostics": _json, "predictions": _netcdf,
    "sensitivity": _netcdf, "rare_events": _json, "crossval": _json, "mesh_convergence": _json,
    "next_test": _netcdf, "prior_sensitivity": _json, "misspecification": _json,
    "rounds": _json, "fidelity": _json,
}


def load_artefacts(run_dir: str | Path) -> Artefacts:
    """Read every artefact present in ``run_dir``.

    Parameters
    ----------
    run_dir : ``runs/<study>/``.

    Returns
    -------
    Artefacts
        Absent files are None; unreadable ones are None with the error in ``problems[key]``.
    """
    art = Artefacts(run_dir=Path(run_dir))
    for key, rel in FILES.items():
        path = art.run_dir / rel
        if not path.exists():
            continue
        try:
            setattr(art, key, _READERS[key](path))
        except Exception as err:  # noqa: BLE001 — any failure is shown in the report, not hidden
            art.problems[key] = f"{rel} could not be read: {type(err).__name__}: {err}"
    return art


#: the project's recorded whole-pipeline SBC (benchmarks/sbc_pipeline.py), used when a run has no sbc.json
PROJECT_SBC = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "sbc_pipeline.json"


def sbc_record(art: Artefacts, project_record: Path = PROJECT_SBC) -> dict | None:
    """The simulation-based-calibration evidence for the run's model, or None.

    A run's own ``sbc.json`` is preferred; else the project's recorded SBC of the whole indentation pipeline
    (``benchmarks/results/sbc_pipeline.json``). The record *applies* when the observables it calibrated are
    among those the run's posterior was conditioned on (``posterior.nc``: the discrepancy's ``observable``
    coordinate and the ``observed_data`` variables).

    Returns
    -------
    ``{"source", "applies", "replicates", "m", "min_p_bonferroni", "verdict", "divergences", "bins",
    "observables"}`` or None when no record exists.
    """
    own = art.run_dir / "sbc.json"
    path, source = (own, "this run") if own.exists() else (project_record, "project benchmark "
                                                           "benchmarks/results/sbc_pipeline.json, reduced design")
    if not path.exists():
        return None
    try:
        rec = _json(path)
    except (OSError, ValueError) as err:
        art.problems["sbc"] = f"{path.name} could not be read: {type(err).__name__}: {err}"
        return None
    observables = list((rec.get("design") or {}).get("observables") or [])
    observed: set[str] = set()  # the calibrated observables (the discrepancy's coordinate) and observed variables
    if art.posterior is not None:
        for group, coord in (("posterior", "observable"), ("observed_data", None)):
            if group in art.posterior:
                ds = art.posterior[group].to_dataset()
                observed |= ({str(v) for v in ds[coord].values} if coord and coord in ds.coords
                             else {str(v) for v in ds.data_vars} if coord is None else set())
    return {"source": source, "applies": bool(observables) and set(observables) <= observed,
            "replicates": rec.get("replicates"), "m": rec.get("m"), "min_p_bonferroni": rec.get("min_p_bonferroni"),
            "verdict": rec.get("verdict"), "divergences": rec.get("divergences"), "bins": rec.get("bins"),
            "observables": observables}
