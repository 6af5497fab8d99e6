"""Run one simulation under ``mpiexec -n N`` (large FE runs), standalone or as an ensemble task.

The FE simulators in `abuse_fe` partition their mesh over ``MPI.COMM_WORLD``; simulators without MPI
support run the same computation on every rank. Rank 0 writes the result.

Command line (any registered simulator)::

    mpiexec -n 4 python -m simulators.mpi fe_thermal_18650 --out ds.nc \
        --theta '{"conductivity_radial": 0.4}' --condition '{"temperature_oven": 443.15}' --option t_end=3600

`run_under_mpi` wraps that command for the ensemble runner (``ensemble.mpi_ranks`` in a study): the
subprocess is killed on time-out, so a hung solver cannot block a Dask worker.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import xarray as xr


class MPIRunError(RuntimeError):
    """The ``mpiexec`` run failed; the message ends with the tail of its stderr."""


def mpiexec() -> str:
    """The ``mpiexec`` beside the interpreter (the MPICH wheel of the venv), else the one on PATH."""
    local = Path(sys.executable).parent / "mpiexec"
    found = str(local) if local.exists() else shutil.which("mpiexec")
    if not found:
        raise MPIRunError("mpiexec not found: install the project (it brings MPICH) or put mpiexec on PATH")
    return found


def run_under_mpi(simulator: str, options: Mapping, theta: Mapping[str, float], condition: Mapping[str, float],
                  ranks: int, timeout: float | None = None) -> xr.Dataset:
    """Run ``simulator`` on ``ranks`` MPI processes and return its result Dataset (loaded in memory).

    Raises `MPIRunError` on a non-zero exit and `subprocess.TimeoutExpired` after ``timeout`` seconds
    (the whole process group is killed first).
    """
    with tempfile.TemporaryDirectory(prefix="trisk-mpi-") as tmp:
        out = Path(tmp) / "result.nc"
        cmd = [mpiexec(), "-n", str(int(ranks)), sys.executable, "-m", "simulators.mpi", simulator, "--out", str(out),
               "--theta", json.dumps(dict(theta)), "--condition", json.dumps(dict(condition)),
               "--options", json.dumps(dict(options))]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                                env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [*sys.path]))})
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
        if proc.returncode != 0 or not out.exists():
            raise MPIRunError(f"mpiexec -n {ranks} {simulator} exited {proc.returncode}: {err.strip()[-1500:]}")
        return xr.load_dataset(out)


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m simulators.mpi`` (run it under ``mpiexec``)."""
    from simulators.registry import load

    ap = argparse.ArgumentParser(prog="python -m simulators.mpi", description=__doc__.split("\n\n")[0])
    ap.add_argument("name", help="registered simulator name")
    ap.add_argument("--out", required=True, help="result NetCDF (written by rank 0)")
    ap.add_argument("--theta", default="{}", help="JSON dict of parameters (missing: prior medians)")
    ap.add_argument("--condition", default="{}", help="JSON dict of conditions (missing: defaults)")
    ap.add_argument("--options", default="{}", help="JSON dict of simulator options")
    ap.add_argument("--option", action="append", default=[], help="one simulator option k=v (JSON value)")
    args = ap.parse_args(argv)
    options = json.loads(args.options)
    for kv in args.option:
        k, _, v = kv.partition("=")
        try:
            options[k] = json.loads(v)
        except json.JSONDecodeError:
            options[k] = v
    sim = load(args.name)(**options)  # imports abuse_fe (and dolfinx) in the right order, before mpi4py
    from mpi4py import MPI

    theta = {p.name: float(p.prior.ppf(0.5)) for p in sim.parameters} | json.loads(args.theta)
    ds = sim.run(theta, json.loads(args.condition))
    comm = MPI.COMM_WORLD
    if comm.rank == 0:
        ds.attrs["mpi_size"] = comm.size
        tmp = Path(args.out).with_suffix(".tmp.nc")
        ds.to_netcdf(tmp)
        tmp.replace(args.out)
        print(f"{args.name}: TR={bool(ds.thermal_runaway)} T_peak={float(ds.temperature_peak):.1f} K ranks={comm.size}")


if __name__ == "__main__":
    main()
