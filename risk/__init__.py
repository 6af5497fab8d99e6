"""Study schema, CLI, real-data ingestion, Bayesian calibration, P(TR), reports and exports."""
import importlib.util as _ilu
import os as _os

# PyTensor finds no BLAS in a pip-only install and probes for seconds at every import: point it at
# the OpenBLAS that the dolfinx wheel vendors (see ../shared/ARCHITECTURE.md, "PyTensor BLAS").
if "PYTENSOR_FLAGS" not in _os.environ:
    _spec = _ilu.find_spec("dolfinx_solver")
    if _spec is not None and _spec.submodule_search_locations:
        _lib = _os.path.join(list(_spec.submodule_search_locations)[0], "lib")
        if _os.path.exists(_os.path.join(_lib, "libopenblas.so.0")):
            _os.environ["PYTENSOR_FLAGS"] = f"blas__ldflags=-L{_lib} -l:libopenblas.so.0"
