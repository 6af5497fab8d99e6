"""Point evaluation of finite-element functions at thermocouple positions, identical on every MPI rank.

The cells containing the probe points are located once (bounding-box tree + exact collision on the
rank's *owned* cells); at every evaluation each rank evaluates the points it owns and the values are
combined with an ``allreduce`` so every rank gets the same array (the owner with the lowest rank wins a
point lying on a partition boundary).

Example
-------
>>> probe = Probes(T.function_space.mesh, np.array([[0.0, 0.03], [0.009, 0.03]]))
>>> probe(T)        # (2,) values on every rank
"""
from __future__ import annotations

import abuse_fe  # noqa: F401  (import order: before dolfinx)

import numpy as np
from dolfinx import fem, geometry
from mpi4py import MPI


class Probes:
    """Evaluator of scalar functions at fixed points.

    Parameters
    ----------
    msh : dolfinx.mesh.Mesh
    points : array (n_probe, gdim) [m]
        Probe coordinates; a point outside the mesh raises `ValueError`.
    """

    def __init__(self, msh, points: np.ndarray):
        pts = np.atleast_2d(np.asarray(points, dtype=float))
        n, gdim = pts.shape
        self.points = np.zeros((n, 3))
        self.points[:, :gdim] = pts
        comm = msh.comm
        tdim = msh.topology.dim
        owned = np.arange(msh.topology.index_map(tdim).size_local, dtype=np.int32)
        tree = geometry.bb_tree(msh, tdim, entities=owned, padding=1e-12)
        candidates = geometry.compute_collisions_points(tree, self.points)
        colliding = geometry.compute_colliding_cells(msh, candidates, self.points)
        found = np.array([len(colliding.links(i)) > 0 for i in range(n)], dtype=bool)
        # the lowest rank that owns a point evaluates it
        ranks = np.where(found, comm.rank, comm.size).astype(np.int64)
        owner = np.empty_like(ranks)
        comm.Allreduce(ranks, owner, op=MPI.MIN)
        if np.any(owner == comm.size):
            bad = self.points[owner == comm.size, :gdim]
            raise ValueError(f"probe points outside the mesh: {bad.tolist()}")
        self._mine = np.flatnonzero(owner == comm.rank)
        self._cells = np.array([colliding.links(i)[0] for i in self._mine], dtype=np.int32)
        self._comm = comm
        self.n = n

    def __call__(self, u: fem.Function) -> np.ndarray:
        """Values of ``u`` at the probes, shape (n_probe,), the same on every rank."""
        local = np.zeros(self.n)
        if len(self._mine):
            local[self._mine] = u.eval(self.points[self._mine], self._cells).reshape(len(self._mine), -1)[:, 0]
        out = np.empty_like(local)
        self._comm.Allreduce(local, out, op=MPI.SUM)
        return out
