"""Meshes for the indentation mechanics: a pouch cell under a punch, axisymmetric (r, z) half-plane.

The cell is a homogenised layered block (jelly roll / electrode stack seen as one orthotropy-free
solid), indented on its top face by a rigid hemispherical punch on the symmetry axis and resting on a
rigid plate at ``z = 0``. Rotational symmetry reduces the 3-D problem to the meridian rectangle

    Ω = [0, R_dom] × [0, H],   r = x[0] (radius), z = x[1] (height),

with volume element ``dV = 2π r dr dz``. The lateral extent of a pouch cell (30–100 mm) is far larger
than the contact radius (≈ √(R_p δ), a few mm), so a disc of radius ``R_dom`` is a faithful stand-in.

The mesh is a structured triangle mesh graded geometrically towards the contact point ``(0, H)``:
reference coordinates (ξ, ζ) ∈ [0, 1]² are mapped by

    r = R_dom · (e^{g ξ} − 1) / (e^{g} − 1),     z = H · (1 − (e^{g (1 − ζ)} − 1) / (e^{g} − 1)),

(``g`` = ``grading``; g → 0 is uniform). The mesh is built once on the unit square; `set_cell_size`
rescales the coordinates in place for each (H, R_dom) so that compiled forms are reused across runs
(topology and dof maps do not change, only ``mesh.geometry.x``).

Facet tags: ``AXIS`` (r = 0), ``BOTTOM`` (z = 0, rigid plate), ``TOP`` (z = H, contact surface),
``OUTER`` (r = R_dom, traction free).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import abuse_fe  # noqa: F401  (import order: must precede dolfinx)
from dolfinx import mesh as dmesh
from mpi4py import MPI

AXIS, BOTTOM, TOP, OUTER = 1, 2, 3, 4

#: named resolutions (elements along r, elements along z); "coarse" is the ensemble mesh
RESOLUTIONS: dict[str, tuple[int, int]] = {
    "coarse": (16, 8),
    "medium": (32, 16),
    "fine": (64, 32),
    "finest": (128, 64),
}


def _grade(s: np.ndarray, g: float) -> np.ndarray:
    """Geometric grading of s ∈ [0, 1] towards 0 (identity for g = 0)."""
    if abs(g) < 1e-12:
        return s
    return np.expm1(g * s) / np.expm1(g)


@dataclass
class IndentationMesh:
    """An axisymmetric indentation mesh with facet tags and its reference (unit-square) coordinates.

    Attributes
    ----------
    mesh : dolfinx.mesh.Mesh
        Triangle mesh of Ω in metres (after `set_cell_size`).
    facet_tags : dolfinx.mesh.MeshTags
        ``AXIS``, ``BOTTOM``, ``TOP``, ``OUTER``.
    reference : numpy.ndarray, shape (n_nodes_local, 2)
        Unit-square coordinates (ξ, ζ) of the local geometry nodes (ghosts included).
    grading_r, grading_z : float
        Grading exponents ``g`` along r and z.
    """

    mesh: dmesh.Mesh
    facet_tags: dmesh.MeshTags
    reference: np.ndarray
    grading_r: float
    grading_z: float
    thickness: float = 1.0
    radius: float = 1.0

    def set_cell_size(self, thickness: float, radius: float) -> None:
        """Map the reference coordinates onto Ω = [0, radius] × [0, thickness] (metres), in place."""
        x = self.mesh.geometry.x
        ξ, ζ = self.reference[:, 0], self.reference[:, 1]
        x[:, 0] = radius * _grade(ξ, self.grading_r)
        x[:, 1] = thickness * (1.0 - _grade(1.0 - ζ, self.grading_z))
        self.thickness, self.radius = float(thickness), float(radius)

    @property
    def h_min_top(self) -> float:
        """Smallest element edge at the contact point (0, H): the radial size of the first cell [m]."""
        nr = self.n_cells[0]
        return self.radius * float(_grade(np.array([1.0 / nr]), self.grading_r)[0])

    @property
    def n_cells(self) -> tuple[int, int]:
        return self._n_cells

    @n_cells.setter
    def n_cells(self, value: tuple[int, int]) -> None:
        self._n_cells = value


def create_indentation_mesh(
    n_r: int = 16,
    n_z: int = 8,
    *,
    thickness: float = 5.0e-3,
    radius: float = 20.0e-3,
    grading_r: float = 3.0,
    grading_z: float = 2.0,
    comm: MPI.Comm = MPI.COMM_WORLD,
) -> IndentationMesh:
    """Build the graded axisymmetric mesh of a cell of ``thickness`` H [m] and disc ``radius`` [m].

    Parameters
    ----------
    n_r, n_z : int
        Elements along r and z (the triangles are the halves of an n_r × n_z quad grid).
    thickness : float
        Cell thickness H [m].
    radius : float
        Radius of the modelled disc R_dom [m].
    grading_r, grading_z : float
        Geometric grading towards the axis and towards the top face (0 = uniform).
    comm : MPI communicator

    Returns
    -------
    IndentationMesh
    """
    msh = dmesh.create_rectangle(
        comm, [np.array([0.0, 0.0]), np.array([1.0, 1.0])], [n_r, n_z], dmesh.CellType.triangle,
        diagonal=dmesh.DiagonalType.right,
    )
    fdim = msh.topology.dim - 1
    tol = 1e-12
    markers = [
        (AXIS, lambda x: np.isclose(x[0], 0.0, atol=tol)),
        (BOTTOM, lambda x: np.isclose(x[1], 0.0, atol=tol)),
        (TOP, lambda x: np.isclose(x[1], 1.0, atol=tol)),
        (OUTER, lambda x: np.isclose(x[0], 1.0, atol=tol)),
    ]
    facets, values = [], []
    for tag, where in markers:
        f = dmesh.locate_entities_boundary(msh, fdim, where)
        facets.append(f)
        values.append(np.full_like(f, tag))
    facets_all = np.concatenate(facets)
    order = np.argsort(facets_all)
    tags = dmesh.meshtags(msh, fdim, facets_all[order].astype(np.int32), np.concatenate(values)[order].astype(np.int32))
    msh.topology.create_connectivity(fdim, msh.topology.dim)

    im = IndentationMesh(
        mesh=msh, facet_tags=tags, reference=msh.geometry.x[:, :2].copy(),
        grading_r=grading_r, grading_z=grading_z,
    )
    im.n_cells = (n_r, n_z)
    im.set_cell_size(thickness, radius)
    return im
