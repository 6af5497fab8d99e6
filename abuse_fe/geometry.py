"""Thermal meshes of battery cells: cylindrical cells as 2D axisymmetric r–z sections, pouch cells as 3D boxes.

Every mesh comes as a `ThermalMesh`: the dolfinx mesh plus cell tags (jelly roll vs casing) and facet
tags (outer surfaces, symmetry axis, heater patch), so the thermal forms never test coordinates.

Cylindrical cells (18650, 21700)
    Domain Ω = [0, R] × [0, H] in (r, z); the steel can is a layer of thickness t_can on the mantle
    (r > R - t_can) and on both end caps (z < t_can, z > H - t_can). A structured triangle mesh of the
    unit square is mapped piecewise-linearly so that the can is exactly one layer of cells, whatever the
    resolution (no gmsh needed; the wheel ships none). Volumes and areas are the full 3D ones when
    integrated with the weight 2π r (see `ThermalMesh.volume_weight`).

    Facets: ``SIDE`` (r = R), ``TOP`` (z = H), ``BOTTOM`` (z = 0), ``AXIS`` (r = 0, symmetry:
    natural zero-flux condition) and ``HEATER`` (the part of the mantle H/2 ± L_h/2 under a heater
    band; in the axisymmetric model a patch heater becomes a band around the circumference).

Pouch cells
    Domain Ω = [0, L] × [0, W] × [0, T] (tetrahedra); in-plane x, y, through-plane z. The laminated
    pouch foil (≈ 0.1 mm aluminium laminate) is thermally negligible next to the stack and is not
    meshed: every cell is ``JELLY``. Facets: ``SIDE`` (x, y faces), ``BOTTOM`` (z = 0), ``TOP``
    (z = T) and ``HEATER`` (a centred a × b patch of the top face).

Dimensions: 18650 Ø 18.3 mm × 65 mm and 21700 Ø 21 mm × 70 mm (IEC 61960 designations: diameter
and length in mm); can wall ≈ 0.25 mm nickel-plated steel (e.g. Waldmann et al., J. Power Sources 472
(2020) 228614, CT cross-sections). Pouch default: 227 × 160 × 7.25 mm (A123 AMP20, 20 A h; Ganesan
et al. / manufacturer data sheet).

Example
-------
>>> import abuse_fe
>>> from abuse_fe.geometry import cylinder, CELL_18650
>>> tm = cylinder(CELL_18650, resolution="coarse")
>>> tm.mesh.topology.dim, tm.axisymmetric
(2, True)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import abuse_fe  # noqa: F401  (import order: before dolfinx)

import numpy as np
import ufl
from dolfinx import mesh as dmesh
from mpi4py import MPI

# Cell tags
JELLY, CASING = 1, 2
# Facet tags
SIDE, TOP, BOTTOM, AXIS, HEATER = 1, 2, 3, 4, 5
EXTERIOR = (SIDE, TOP, BOTTOM, HEATER)  # facets that exchange heat with the surroundings

RESOLUTIONS = ("coarse", "medium", "fine")


@dataclass(frozen=True)
class CylinderSpec:
    """A cylindrical cell.

    Parameters
    ----------
    name : str
    radius, height : float
        Outer radius and height of the can [m].
    casing_thickness : float
        Wall thickness of the steel can [m] (mantle and end caps).
    heater_length : float
        Axial length of the heater band centred at mid-height [m] (0: no heater facets).
    cells : dict
        resolution → (n_r, n_z) numbers of cells, the can layers included.
    """

    name: str
    radius: float
    height: float
    casing_thickness: float = 0.25e-3
    heater_length: float = 20.0e-3
    cells: dict = field(default_factory=lambda: {"coarse": (6, 16), "medium": (12, 32), "fine": (24, 64)})


@dataclass(frozen=True)
class PouchSpec:
    """A pouch cell (box), in-plane x–y, through-plane z.

    Parameters
    ----------
    name : str
    length, width, thickness : float
        Dimensions [m].
    heater_size : tuple of float
        (a, b) of the heater patch centred on the top face [m].
    cells : dict
        resolution → (n_x, n_y, n_z).
    """

    name: str
    length: float
    width: float
    thickness: float
    heater_size: tuple[float, float] = (0.05, 0.05)
    cells: dict = field(default_factory=lambda: {"coarse": (8, 6, 2), "medium": (16, 12, 3), "fine": (32, 24, 6)})


CELL_18650 = CylinderSpec("18650", radius=9.15e-3, height=65.0e-3)
CELL_21700 = CylinderSpec("21700", radius=10.5e-3, height=70.0e-3)
POUCH_20AH = PouchSpec("pouch_20Ah", length=0.227, width=0.160, thickness=7.25e-3)


@dataclass
class ThermalMesh:
    """A tagged mesh for the thermal solver.

    Attributes
    ----------
    mesh : dolfinx.mesh.Mesh
    cell_tags : dolfinx.mesh.MeshTags
        ``JELLY`` (1) or ``CASING`` (2) on every cell.
    facet_tags : dolfinx.mesh.MeshTags
        ``SIDE``, ``TOP``, ``BOTTOM``, ``AXIS``, ``HEATER`` on boundary facets.
    axisymmetric : bool
        True for r–z sections (x[0] = r, x[1] = z).
    spec : CylinderSpec or PouchSpec or None
    probes : dict
        Named default thermocouple positions, name → coordinates (gdim,) [m].
    """

    mesh: dmesh.Mesh
    cell_tags: dmesh.MeshTags
    facet_tags: dmesh.MeshTags
    axisymmetric: bool
    spec: object = None
    probes: dict = field(default_factory=dict)

    @property
    def gdim(self) -> int:
        return self.mesh.geometry.dim

    def volume_weight(self):
        """UFL weight w of the volume/surface measure: dV = w dx, dA = w ds (2π r if axisymmetric, else 1)."""
        if self.axisymmetric:
            return 2.0 * np.pi * ufl.SpatialCoordinate(self.mesh)[0]
        return 1.0

    def measures(self):
        """(dx, ds) measures carrying the cell and facet tags."""
        dx = ufl.Measure("dx", domain=self.mesh, subdomain_data=self.cell_tags)
        ds = ufl.Measure("ds", domain=self.mesh, subdomain_data=self.facet_tags)
        return dx, ds

    def h_min(self) -> float:
        """Smallest cell size over all ranks [m]."""
        tdim = self.mesh.topology.dim
        n = self.mesh.topology.index_map(tdim).size_local
        h = self.mesh.h(tdim, np.arange(n, dtype=np.int32))
        return self.mesh.comm.allreduce(float(h.min()) if n else np.inf, op=MPI.MIN)


def _graded(xi: np.ndarray, n: int, length: float, t_lo: float, t_hi: float) -> np.ndarray:
    """Map uniform nodes ξ = i/n of [0, 1] to [0, length] with the first (t_lo > 0) and/or last
    (t_hi > 0) cell of exact thickness t_lo / t_hi and uniform cells in between."""
    k_lo, k_hi = (1 if t_lo > 0 else 0), (1 if t_hi > 0 else 0)
    inner = n - k_lo - k_hi
    if inner < 1:
        raise ValueError(f"need at least {k_lo + k_hi + 1} cells across, got {n}")
    knots_xi = [0.0, k_lo / n, (n - k_hi) / n, 1.0]
    knots_x = [0.0, t_lo, length - t_hi, length]
    return np.interp(xi, knots_xi, knots_x)


def _tag_facets(msh, classify) -> dmesh.MeshTags:
    tdim = msh.topology.dim
    msh.topology.create_connectivity(tdim - 1, tdim)
    facets = dmesh.exterior_facet_indices(msh.topology)
    mid = dmesh.compute_midpoints(msh, tdim - 1, facets)
    values = classify(mid)
    keep = values > 0
    order = np.argsort(facets[keep])
    return dmesh.meshtags(msh, tdim - 1, facets[keep][order].astype(np.int32), values[keep][order].astype(np.int32))


def _tag_cells(msh, is_casing) -> dmesh.MeshTags:
    tdim = msh.topology.dim
    n = msh.topology.index_map(tdim).size_local + msh.topology.index_map(tdim).num_ghosts
    cells = np.arange(n, dtype=np.int32)
    mid = dmesh.compute_midpoints(msh, tdim, cells)
    values = np.where(is_casing(mid), CASING, JELLY).astype(np.int32)
    return dmesh.meshtags(msh, tdim, cells, values)


def cylinder(spec: CylinderSpec = CELL_18650, resolution: str | tuple[int, int] = "coarse",
             comm: MPI.Comm = MPI.COMM_WORLD, casing: bool = True) -> ThermalMesh:
    """Axisymmetric r–z mesh of a cylindrical cell with its can.

    Parameters
    ----------
    spec : CylinderSpec
    resolution : {"coarse", "medium", "fine"} or (n_r, n_z)
        Numbers of cells radially and axially (can layers included).
    comm : MPI communicator
    casing : bool
        False: no can layer (all cells ``JELLY``, uniform spacing) — for verification problems.

    Returns
    -------
    ThermalMesh
        Triangles, x[0] = r ∈ [0, R], x[1] = z ∈ [0, H] [m].
    """
    n_r, n_z = spec.cells[resolution] if isinstance(resolution, str) else resolution
    R, H, t = spec.radius, spec.height, (spec.casing_thickness if casing else 0.0)
    msh = dmesh.create_rectangle(comm, [np.array([0.0, 0.0]), np.array([1.0, 1.0])], [n_r, n_z],
                                 cell_type=dmesh.CellType.triangle)
    x = msh.geometry.x
    x[:, 0] = _graded(x[:, 0], n_r, R, 0.0, t)
    x[:, 1] = _graded(x[:, 1], n_z, H, t, t)

    eps = 1e-9 * H
    cell_tags = _tag_cells(msh, lambda m: (m[:, 0] > R - t) | (m[:, 1] < t) | (m[:, 1] > H - t))
    z_lo, z_hi = 0.5 * (H - spec.heater_length), 0.5 * (H + spec.heater_length)

    def classify(m):
        v = np.zeros(m.shape[0], dtype=np.int32)
        v[np.isclose(m[:, 0], 0.0, atol=eps)] = AXIS
        v[np.isclose(m[:, 1], 0.0, atol=eps)] = BOTTOM
        v[np.isclose(m[:, 1], H, atol=eps)] = TOP
        side = np.isclose(m[:, 0], R, atol=eps)
        v[side] = SIDE
        if spec.heater_length > 0:
            v[side & (m[:, 1] > z_lo) & (m[:, 1] < z_hi)] = HEATER
        return v

    probes = {
        "surface_mid": np.array([R, 0.5 * H]),
        "core_mid": np.array([0.0, 0.5 * H]),
        "top_centre": np.array([0.0, H]),
        "bottom_centre": np.array([0.0, 0.0]),
    }
    return ThermalMesh(msh, cell_tags, _tag_facets(msh, classify), True, spec, probes)


def pouch(spec: PouchSpec = POUCH_20AH, resolution: str | tuple[int, int, int] = "coarse",
          comm: MPI.Comm = MPI.COMM_WORLD) -> ThermalMesh:
    """3D tetrahedral mesh of a pouch cell (all ``JELLY``; see module docstring).

    Parameters
    ----------
    spec : PouchSpec
    resolution : {"coarse", "medium", "fine"} or (n_x, n_y, n_z)
    comm : MPI communicator

    Returns
    -------
    ThermalMesh
        x ∈ [0, L], y ∈ [0, W], z ∈ [0, T] [m].
    """
    n = spec.cells[resolution] if isinstance(resolution, str) else resolution
    L, W, T = spec.length, spec.width, spec.thickness
    msh = dmesh.create_box(comm, [np.zeros(3), np.array([L, W, T])], list(n), cell_type=dmesh.CellType.tetrahedron)
    cell_tags = _tag_cells(msh, lambda m: np.zeros(m.shape[0], dtype=bool))
    eps = 1e-9 * L
    a, b = spec.heater_size

    def classify(m):
        v = np.full(m.shape[0], SIDE, dtype=np.int32)
        v[np.isclose(m[:, 2], 0.0, atol=eps)] = BOTTOM
        top = np.isclose(m[:, 2], T, atol=eps)
        v[top] = TOP
        v[top & (np.abs(m[:, 0] - L / 2) < a / 2) & (np.abs(m[:, 1] - W / 2) < b / 2)] = HEATER
        return v

    probes = {
        "surface_centre": np.array([L / 2, W / 2, T]),
        "core_centre": np.array([L / 2, W / 2, T / 2]),
        "surface_corner": np.array([0.1 * L, 0.1 * W, T]),
        "bottom_centre": np.array([L / 2, W / 2, 0.0]),
    }
    return ThermalMesh(msh, cell_tags, _tag_facets(msh, classify), False, spec, probes)


def build(spec: CylinderSpec | PouchSpec, resolution="coarse", comm: MPI.Comm = MPI.COMM_WORLD) -> ThermalMesh:
    """`cylinder` or `pouch` depending on the type of ``spec``."""
    if isinstance(spec, CylinderSpec):
        return cylinder(spec, resolution, comm)
    if isinstance(spec, PouchSpec):
        return pouch(spec, resolution, comm)
    raise TypeError(f"unknown cell spec {type(spec).__name__}; expected CylinderSpec or PouchSpec")
