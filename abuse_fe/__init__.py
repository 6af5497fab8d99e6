"""Finite-element abuse simulators (FEniCSx/dolfinx) implementing `simulators.Simulator`.

Importing this package fixes the import order the stack needs (see ../shared/ARCHITECTURE.md):
PETSc's signal handler is disabled (else multi-process PyMC sampling dies in MPI_Abort), and h5py and
netCDF4 are loaded before dolfinx brings PETSc's own HDF5 into the global symbol space.
Import `dolfinx` only after `import abuse_fe`.
"""
import os

_opts = os.environ.get("PETSC_OPTIONS", "")
if "-no_signal_handler" not in _opts:
    os.environ["PETSC_OPTIONS"] = (_opts + " -no_signal_handler").strip()

import h5py  # noqa: E402,F401  (must precede dolfinx: HDF5 symbol clash)
import netCDF4  # noqa: E402,F401  (idem)
import dolfinx_solver  # noqa: E402,F401  (must precede dolfinx/petsc4py)
