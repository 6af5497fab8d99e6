"""Study schema, CLI, real-data ingestion, Bayesian calibration, P(TR), reports and exports."""
import ctypes.util as _cu
import os as _os

# PyTensor cannot link the BLAS bundled in numpy's wheel and probes for seconds at every import; the
# Makefile installs Debian's libopenblas-dev, which links as plain -lopenblas (../shared/ARCHITECTURE.md).
if "PYTENSOR_FLAGS" not in _os.environ and _cu.find_library("openblas"):
    _os.environ["PYTENSOR_FLAGS"] = "blas__ldflags=-lopenblas"
