"""The whole stack in one process, each library used once, in the order a study uses them.

Catches import-order breakage (PETSc's HDF5 vs h5py/netCDF4, PETSc's signal handler vs PyMC) early.
Runs in a subprocess so that this process's earlier imports cannot hide a problem.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(r'''
    import abuse_fe                                   # owns the import order
    import numpy as np
    from mpi4py import MPI
    import dolfinx, dolfinx.fem.petsc, ufl
    from petsc4py import PETSc

    # dolfinx: Poisson -Δu = 1 on the unit square, u = 0 on the boundary; max u ≈ 0.07367
    msh = dolfinx.mesh.create_unit_square(MPI.COMM_WORLD, 16, 16)
    V = dolfinx.fem.functionspace(msh, ("Lagrange", 1))
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    facets = dolfinx.mesh.locate_entities_boundary(msh, 1, lambda x: np.full(x.shape[1], True))
    bc = dolfinx.fem.dirichletbc(0.0, dolfinx.fem.locate_dofs_topological(V, 1, facets), V)
    problem = dolfinx.fem.petsc.LinearProblem(ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx, 1.0 * v * ufl.dx,
        bcs=[bc], petsc_options_prefix="stack_", petsc_options={"ksp_type": "preonly", "pc_type": "lu"})
    uh = problem.solve()
    assert abs(uh.x.array.max() - 0.0737) < 2e-3, uh.x.array.max()

    # netCDF + HDF5 after dolfinx (the clash the import order prevents)
    import os, tempfile, xarray as xr, h5py, netCDF4
    d = tempfile.mkdtemp()
    ds = xr.Dataset({"t": ("x", np.arange(3.0), {"units": "K"})})
    ds.to_netcdf(os.path.join(d, "a.nc"), engine="netcdf4"); ds.to_netcdf(os.path.join(d, "b.nc"), engine="h5netcdf")
    assert float(xr.open_dataset(os.path.join(d, "a.nc"))["t"].sum()) == 3.0
    with h5py.File(os.path.join(d, "c.h5"), "w") as f:
        f["x"] = np.ones(4)

    import torch
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 1)
    loss = lin(torch.ones(2, 3)).pow(2).sum(); loss.backward()
    assert lin.weight.grad is not None

    import jax, jax.numpy as jnp, numpyro, numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS
    def model(y): 
        mu = numpyro.sample("mu", dist.Normal(0, 10)); numpyro.sample("y", dist.Normal(mu, 1), obs=y)
    mc = MCMC(NUTS(model), num_warmup=200, num_samples=300, progress_bar=False)
    mc.run(jax.random.PRNGKey(0), y=jnp.full(25, 2.0))
    assert abs(float(mc.get_samples()["mu"].mean()) - 2.0) < 0.15

    import risk, pymc as pm, arviz as az
    with pm.Model():
        m = pm.Normal("m", 0, 10); pm.Normal("y", m, 1, observed=np.full(25, -1.0))
        idata = pm.sample(draws=200, tune=200, chains=2, cores=2, nuts_sampler="numpyro", random_seed=1, progressbar=False)
    assert abs(float(idata.posterior["m"].mean()) + 1.0) < 0.15
    assert float(az.rhat(idata)["m"]) < 1.05

    import pybamm
    sol = pybamm.Simulation(pybamm.lithium_ion.SPM()).solve([0, 600])
    assert sol["Terminal voltage [V]"].entries[-1] < sol["Terminal voltage [V]"].entries[0]
    print("STACK OK")
''')


def test_whole_stack_imports_and_runs_in_one_process(tmp_path):
    res = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert res.returncode == 0 and "STACK OK" in res.stdout, res.stderr[-4000:]
