"""Real test data → xarray: indentation workbooks (ORNL/Sandia) and the Battery Failure Databank.

`read(kind, path)` returns the combined dataset (dim ``test``) that ``risk ingest`` writes as ``real.nc``
with `write_real`; `read_real` opens it again.
"""
from risk.data.registry import READERS, infer_kind, read, read_real, write_real

__all__ = ["READERS", "infer_kind", "read", "read_real", "write_real"]
