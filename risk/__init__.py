"""Study schema, CLI, real-data ingestion, Bayesian calibration, P(TR), reports and exports."""
import ctypes.util as _cu
import os as _os

# PyTensor cannot link the BLAS bundled in numpy's wheel and probes for seconds at every import; the
# Makefile installs Debian's libopenblas-dev, which links as plain -lopenblas (../shared/ARCHITECTURE.md).
if "PYTENSOR_FLAGS" not in _os.environ and _cu.find_library("openblas"):
    _os.environ["PYTENSOR_FLAGS"] = "blas__ldflags=-lopenblas"

#: CPU devices XLA shows (`risk.bayes.sampling.default_chain_method`): one per chain of a fit (4 by default), so that
#: NumPyro runs the chains in parallel threads on the cores instead of vectorised on one. XLA reads it when JAX starts
#: its backend (numpyro.set_host_device_count sets the same flag); a user's own setting wins.
HOST_DEVICES = 4
if "xla_force_host_platform_device_count" not in _os.environ.get("XLA_FLAGS", ""):
    _os.environ["XLA_FLAGS"] = f"{_os.environ.get('XLA_FLAGS', '')} " \
                               f"--xla_force_host_platform_device_count={HOST_DEVICES}".strip()
