"""Provenance of every output: package versions, git revision, study hash, data hashes, seeds."""
from __future__ import annotations

import json
import platform
import subprocess
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PACKAGES = ("trisk", "dolfinx-solver-real", "fenics-basix", "torch", "pymc", "pytensor", "numpyro", "jax",
            "arviz", "xarray", "pybamm", "numpy", "scipy", "pydantic", "dask", "distributed", "zarr", "SALib")


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_revision(where: Path | None = None) -> str:
    """``HEAD`` of the repository holding this package (``+dirty`` if modified), or ``"unknown"``."""
    where = where or Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (rev + ("+dirty" if dirty else "")) if rev else "unknown"


def provenance(study, data_hashes: dict[str, str], stage_seeds: dict[str, int] | None = None) -> dict:
    """The provenance record of a run (JSON-serialisable)."""
    return {
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "study_name": study.study.name,
        "study_file": study.source,
        "study_hash": study.hash,
        "seed": study.study.seed,
        "stage_seeds": stage_seeds or {},
        "data_path": str(study.data_path()) if study.data else None,
        "data_hashes": data_hashes,
        "git_revision": git_revision(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
    }


def write_provenance(path: Path, record: dict) -> None:
    path.write_text(json.dumps(record, indent=2, sort_keys=True))
