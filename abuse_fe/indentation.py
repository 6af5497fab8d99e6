"""Mechanical indentation of a pouch cell by a rigid hemispherical punch: axisymmetric finite strain FE.

Physics
-------
The cell (jelly roll / electrode stack + pouch) is a homogenised solid. Under out-of-plane
compression it behaves like a crushable, densifying porous stack: almost no lateral expansion, a soft
initial response and a stiffening (convex) stress–strain curve as the pores close (Sahraei, Hill,
Wierzbicki, J. Power Sources 201 (2012) 307; Lai, Ali, Pan, J. Power Sources 245 (2014) 609).
Under the monotonic loading of an indentation test a hyperelastic law with strain stiffening is
indistinguishable from deformation-theory plasticity (no unloading), so we use a compressible
neo-Hookean solid plus a power-law hardening of an isotropic strain measure:

    W(F) = μ/2 Φ + λ/2 (J − 1)² + B/(n+1) ε̄^{n+1},   Φ = I₁ − 3 − 2 ln J,  ε̄ = √(Φ/2)   [J m⁻³]

with F = I + ∇u, I₁ = tr(FᵀF), J = det F, the Lamé constants (λ, μ) of the small-strain modulus E
and a low, foam-like Poisson ratio ν, the hardening modulus B [Pa] and exponent n ≥ 1.
Φ = Σᵢ (λᵢ² − 1 − 2 ln λᵢ) ≥ 0 vanishes only at F = I and ε̄ = |ε| + O(ε²) in uniaxial strain, so the
nominal stress in uniaxial strain is ≈ M ε + B εⁿ (M = λ + 2μ), the power law measured on jelly
rolls. Hardening the whole strain (not only J) also stiffens the shear under the punch edge, as
compaction does in a crushable foam, and keeps the load path free of spurious shear localisation.

Axisymmetry (r, z): u = (u_r, u_z), F = [[1 + ∂u_r/∂r, ∂u_r/∂z, 0], [∂u_z/∂r, 1 + ∂u_z/∂z, 0],
[0, 0, 1 + u_r/r]], dV = 2π r dr dz.

Contact with the rigid sphere (radius R_p, tip at depth d below the top face, centre
c = (0, H − d + R_p)) is enforced by a penalty on the penetration g = R_p − |x + u − c|:

    Π(u) = ∫_Ω W(F) dV + ∫_Γtop ψ(g) dA,   ψ ≈ κ/2 ⟨g⟩₊² (C²-smoothed),   κ = α max(E, B) / H,

and the punch force is F_p = ∂Π/∂d = ∫_Γtop κ ⟨g⟩₊ (c_z − z)/|x − c| dA (exact for the penalty
problem, with κ ⟨g⟩₊ → ψ'(g)). The bottom face rests on a frictionless rigid plate (u_z = 0), u_r = 0 on the axis.

Separator failure: an internal short starts when the maximum von Mises equivalent logarithmic strain
ε_eq = √(2/3 ε_dev : ε_dev), ε = ½ ln C (principal), in the cell exceeds the critical strain ε_c
(an uncertain parameter; strain-based short criteria: Sahraei et al. 2012; Zhu, Wierzbicki, Li,
J. Power Sources 378 (2018) 153).

Numerics: Lagrange P2 vector field, Newton (SNES newtonls, backtracking line search, LU) at each
depth of a fixed displacement grid; every step is checked (`getConvergedReason() > 0`) and a failed
step is retried with bisected sub-steps.
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import numpy as np
import xarray as xr

import abuse_fe  # noqa: F401  (import order: must precede dolfinx)
import ufl
from dolfinx import fem
from dolfinx.fem.petsc import NonlinearProblem
from mpi4py import MPI
from petsc4py import PETSc

from abuse_fe.geometry_indentation import BOTTOM, TOP, AXIS, RESOLUTIONS, create_indentation_mesh
from abuse_fe.indentation_lumped import (  # noqa: F401  (re-exported)
    MECHANICAL_CONDITIONS, MECHANICAL_PARAMETERS, META, lame, lumped_contact_radius, lumped_force, lumped_strain,
    short_onset,
)
from simulators.base import SimulationError, Simulator, attach_units
from simulators.registry import register

_prefix_counter = itertools.count()


@dataclass(frozen=True)
class IndentationResult:
    """Force and strain along the load path.

    Attributes
    ----------
    depth : ndarray, shape (n,)
        Punch depths [m] (the simulator's displacement grid).
    force : ndarray, shape (n,)
        Punch force [N].
    strain_max : ndarray, shape (n,)
        Maximum equivalent logarithmic strain [1].
    contact_radius : ndarray, shape (n,)
        Radius of the contact zone [m], √(A_c/π) of the penetrated top-face area A_c.
    newton_iterations : int
        Total Newton iterations.

    Rows the simulator does not reach (beyond ``depth_fraction_max`` · H) are NaN.
    """

    depth: np.ndarray
    force: np.ndarray
    strain_max: np.ndarray
    contact_radius: np.ndarray
    newton_iterations: int


class IndentationProblem:
    """The axisymmetric punch problem: mesh → space → BCs → forms → Newton solver, built once.

    The mesh topology, spaces and compiled forms are kept; material, punch and cell size change by
    `Constant` values and an in-place rescaling of the mesh coordinates, so repeated solves (ensembles,
    calibration) pay the form compilation once per process.

    Parameters
    ----------
    n_r, n_z : int
        Elements along r and z.
    degree : int
        Lagrange degree of the displacement.
    domain_radius : float
        Radius of the modelled disc [m].
    poisson_ratio : float
        Small-strain Poisson ratio ν of the homogenised cell [1].
    penalty : float
        Dimensionless contact penalty α (κ = α max(E, B) / H).
    smoothing : float
        Width of the C² penalty smoothing as a fraction of H [1].
    comm : MPI communicator
    """

    def __init__(
        self,
        n_r: int = 16,
        n_z: int = 8,
        *,
        degree: int = 2,
        domain_radius: float = 20.0e-3,
        grading_r: float = 3.0,
        grading_z: float = 2.0,
        poisson_ratio: float = 0.1,
        penalty: float = 1000.0,
        smoothing: float = 1.0e-5,
        comm: MPI.Comm = MPI.COMM_WORLD,
    ):
        self.comm = comm
        self.domain_radius = domain_radius
        self.penalty = penalty
        self.poisson_ratio = poisson_ratio
        # --- mesh ------------------------------------------------------------------------------
        self.im = create_indentation_mesh(
            n_r, n_z, radius=domain_radius, grading_r=grading_r, grading_z=grading_z, comm=comm
        )
        msh = self.im.mesh
        fdim = msh.topology.dim - 1
        # --- space -----------------------------------------------------------------------------
        V = fem.functionspace(msh, ("Lagrange", degree, (2,)))
        self.V = V
        self.u = fem.Function(V, name="displacement")
        # --- boundary conditions: u_r = 0 on the axis, u_z = 0 on the rigid plate ----------------
        ft = self.im.facet_tags
        axis_dofs = fem.locate_dofs_topological(V.sub(0), fdim, ft.find(AXIS))
        bottom_dofs = fem.locate_dofs_topological(V.sub(1), fdim, ft.find(BOTTOM))
        self.bcs = [
            fem.dirichletbc(PETSc.ScalarType(0.0), axis_dofs, V.sub(0)),
            fem.dirichletbc(PETSc.ScalarType(0.0), bottom_dofs, V.sub(1)),
        ]
        # --- constants (changed per run without recompiling) -----------------------------------
        c = lambda v: fem.Constant(msh, PETSc.ScalarType(v))  # noqa: E731
        self.E, self.ν = c(1.0e8), c(poisson_ratio)
        self.B, self.n = c(1.0e8), c(2.0)
        self.R_p, self.H, self.d = c(6.35e-3), c(5.0e-3), c(0.0)
        self.κ, self.s_reg = c(1.0), c(1.0e-9)
        self.smoothing = smoothing
        # --- forms -----------------------------------------------------------------------------
        self._forms()
        # --- solver ----------------------------------------------------------------------------
        self.prefix = f"indent{next(_prefix_counter)}_"
        self.petsc_options = {
            "snes_type": "newtonls",
            "snes_linesearch_type": "bt",
            "snes_rtol": 1.0e-9,
            "snes_atol": 1.0e-7,  # [N] nodal force; round-off floor is ~1e-9 N
            "snes_stol": 0.0,
            "snes_max_it": 30,
            "ksp_type": "preonly",
            "pc_type": "lu",
            "pc_factor_mat_solver_type": "mumps",
        }
        self.problem = NonlinearProblem(
            self.R, self.u, J=self.Jac, bcs=self.bcs,
            petsc_options_prefix=self.prefix, petsc_options=self.petsc_options,
        )

    # -----------------------------------------------------------------------------------------
    def _forms(self) -> None:
        msh, u = self.im.mesh, self.u
        x = ufl.SpatialCoordinate(msh)
        r = x[0]
        v, du = ufl.TestFunction(self.V), ufl.TrialFunction(self.V)
        E, ν, B, n = self.E, self.ν, self.B, self.n
        λ = E * ν / ((1 + ν) * (1 - 2 * ν))
        μ = E / (2 * (1 + ν))

        # Axisymmetric deformation gradient F (3×3; hoop stretch 1 + u_r / r)
        g = ufl.grad(u)
        F = ufl.variable(
            ufl.as_matrix([[1 + g[0, 0], g[0, 1], 0], [g[1, 0], 1 + g[1, 1], 0], [0, 0, 1 + u[0] / r]])
        )
        C = F.T * F
        J = ufl.det(F)
        # Strain measure Φ = I₁ − 3 − 2 ln J = Σ (λᵢ² − 1 − 2 ln λᵢ) ≥ 0 (zero only at F = I);
        # ε̄ = √(Φ/2) equals |ε| in uniaxial strain at small ε (regularised by ϵ at F = I)
        Φ = ufl.tr(C) - 3 - 2 * ufl.ln(J)
        ϵ = 1.0e-6
        ε̄2 = Φ / 2 + ϵ**2
        # Strain energy density W [J/m³]: neo-Hooke + power-law hardening (uniaxial: σ ≈ M ε + B εⁿ)
        W = μ / 2 * Φ + λ / 2 * (J - 1) ** 2 + B / (n + 1) * (ε̄2 ** ((n + 1) / 2) - ϵ ** (n + 1))
        P = ufl.diff(W, F)  # first Piola–Kirchhoff stress [Pa]
        self.W = W

        # Contact with the rigid sphere: centre c = (0, H − d + R_p), penetration g = R_p − |x + u − c|
        c_z = self.H - self.d + self.R_p
        y = ufl.as_vector([x[0] + u[0], x[1] + u[1] - c_z])
        dist = ufl.sqrt(ufl.dot(y, y))
        gap = self.R_p - dist  # > 0: penetration
        pen = ufl.max_value(gap, 0)
        self.pen = pen
        # C²-smoothed penalty: ψ'' = κ min(g/s, 1) for g > 0 (s = `smoothing` · H), i.e.
        #   ψ(g) = κ g³/(6 s) for 0 < g < s,  κ [(g − s/2)²/2 + s²/24] for g ≥ s,
        # ψ'(g) = κ g²/(2 s) resp. κ (g − s/2): removes the active-set chatter that stalls Newton with
        # the plain κ/2 ⟨g⟩₊² (its second derivative jumps at g = 0).
        s_reg = self.s_reg
        ψ = ufl.conditional(
            ufl.lt(gap, s_reg),
            self.κ * pen**3 / (6 * s_reg),
            self.κ * ((gap - s_reg / 2) ** 2 / 2 + s_reg**2 / 24),
        )
        dψ = ufl.conditional(ufl.lt(gap, s_reg), self.κ * pen**2 / (2 * s_reg), self.κ * (gap - s_reg / 2))

        # Measures; the axisymmetric volume / area elements carry the factor 2π r
        dx = ufl.Measure("dx", domain=msh, metadata={"quadrature_degree": 4})
        ds = ufl.Measure("ds", domain=msh, subdomain_data=self.im.facet_tags, metadata={"quadrature_degree": 6})
        two_π_r = 2 * ufl.pi * r

        # Total potential energy Π(u), residual R = DΠ[v], Jacobian DR[du]
        Π = W * two_π_r * dx + ψ * two_π_r * ds(TOP)
        self.R = ufl.derivative(Π, u, v)
        self.Jac = ufl.derivative(self.R, u, du)

        # Punch force F_p = ∂Π/∂d = ∫ κ ⟨g⟩₊ (c_z − z)/|x − c| dA  [N]
        self.force_form = fem.form(dψ * (-y[1]) / dist * two_π_r * ds(TOP))
        # Equilibrium check: plate reaction −∫ P_zz dA on z = 0 (first Piola–Kirchhoff P = ∂W/∂F)
        self.reaction_form = fem.form(-P[1, 1] * two_π_r * ds(BOTTOM))
        # Contact area A_c = ∫ 1[g > 0] dA of the penetrated top face (reference configuration)
        self.contact_area_form = fem.form(ufl.conditional(ufl.gt(pen, 0), 1.0, 0.0) * two_π_r * ds(TOP))

        # Equivalent logarithmic strain ε_eq = √(2/3 ε_dev:ε_dev), ε_i = ½ ln c_i (principal of C)
        a, b, dd = C[0, 0], C[0, 1], C[1, 1]
        m = (a + dd) / 2
        s = ufl.sqrt(((a - dd) / 2) ** 2 + b**2 + 1e-30)
        e1, e2, e3 = ufl.ln(m + s) / 2, ufl.ln(m - s) / 2, ufl.ln(C[2, 2]) / 2
        em = (e1 + e2 + e3) / 3
        ε_eq = ufl.sqrt(2.0 / 3.0 * ((e1 - em) ** 2 + (e2 - em) ** 2 + (e3 - em) ** 2))
        Q = fem.functionspace(msh, ("DG", 0))
        self.strain = fem.Function(Q, name="strain_equivalent")
        self.strain_expr = fem.Expression(ε_eq, Q.element.interpolation_points)
        # The separator-strain probe skips the single layer of cells touching the contact face: the
        # penalty acts there on the outer pouch/electrode layer and its point-wise strain is a
        # discretisation artefact (it changes with h); the converged field maximum lies below it.
        tdim = msh.topology.dim
        msh.topology.create_connectivity(tdim - 1, tdim)
        f2c = msh.topology.connectivity(tdim - 1, tdim)
        top_cells = np.unique(np.concatenate([f2c.links(f) for f in self.im.facet_tags.find(TOP)] or [np.array([], np.int32)]))
        n_local = msh.topology.index_map(tdim).size_local
        mask = np.ones(n_local, dtype=bool)
        mask[top_cells[top_cells < n_local]] = False
        self._probe_dofs = Q.dofmap.list[:n_local, 0][mask]

    # -----------------------------------------------------------------------------------------
    def _scalar(self, form) -> float:
        return self.comm.allreduce(fem.assemble_scalar(form), op=MPI.SUM)

    def force(self) -> float:
        """Punch force [N] of the current state."""
        return self._scalar(self.force_form)

    def plate_reaction(self) -> float:
        """Vertical reaction of the rigid plate [N] (equals the punch force at equilibrium)."""
        return self._scalar(self.reaction_form)

    def contact_radius(self) -> float:
        """Radius of the contact zone [m]: √(A_c / π) of the penetrated top area (flat-face measure)."""
        return float(np.sqrt(max(self._scalar(self.contact_area_form), 0.0) / np.pi))

    def strain_max(self) -> float:
        """Maximum equivalent logarithmic strain [1] over the cells below the contact layer."""
        self.strain.interpolate(self.strain_expr)
        local = self.strain.x.array[self._probe_dofs].max(initial=0.0)
        return self.comm.allreduce(float(local), op=MPI.MAX)

    def _newton(self) -> tuple[bool, int]:
        self.problem.solve()
        reason = self.problem.solver.getConvergedReason()
        its = self.problem.solver.getIterationNumber()
        self.u.x.scatter_forward()
        return reason > 0, its

    def set_state(self, *, modulus: float, hardening_modulus: float, hardening_exponent: float,
                  punch_radius: float, thickness: float) -> None:
        """Set material, punch and cell size; reset the displacement to zero."""
        self.im.set_cell_size(thickness, self.domain_radius)
        self.E.value, self.B.value, self.n.value = modulus, hardening_modulus, hardening_exponent
        self.R_p.value, self.H.value, self.d.value = punch_radius, thickness, 0.0
        # penalty scaled by the cell thickness (not the element size): the penalised problem is then
        # mesh independent and the penetration is ≈ (contact pressure) H / (α E) ≪ δ
        self.κ.value = self.penalty * max(modulus, hardening_modulus) / thickness
        self.s_reg.value = self.smoothing * thickness
        self.u.x.array[:] = 0.0

    def solve_path(self, depths: np.ndarray, *, max_step: float = 5.0e-5, max_bisections: int = 6,
                   stop_strain: float | None = None) -> IndentationResult:
        """Push the punch through ``depths`` [m] (increasing from 0) and record the response.

        With ``stop_strain`` the path ends at the first recorded depth whose strain reaches it (the separator
        has failed there); the rows beyond are NaN.

        Each interval between recorded depths is split into Newton solves of at most ``max_step`` [m],
        each started from a secant predictor; a failed solve is retried from the last converged state
        with the increment halved (up to ``max_bisections`` times). Increments above ≈ 1 % of the cell
        thickness can land Newton on a spurious dimpled branch under the punch, hence the default.

        Raises
        ------
        SimulationError
            If a step does not converge after all bisections.
        """
        depths = np.asarray(depths, dtype=float)
        out = np.full((3, depths.size), np.nan)
        total_its = 0
        # converged states (depth, u) used for the secant predictor u ← u_k + (u_k − u_{k−1}) Δd/Δd_old
        hist: list[tuple[float, np.ndarray]] = [(0.0, self.u.x.array.copy())]
        for k, d_k in enumerate(depths):
            d_start = hist[-1][0]
            n_sub = max(1, int(np.ceil((d_k - d_start) / max_step - 1e-9)))
            while hist[-1][0] < d_k - 1e-15:
                d_from, u_from = hist[-1]
                d_to = min(d_from + (d_k - d_start) / n_sub, d_k)
                if len(hist) > 1 and d_from > hist[-2][0]:
                    d_old, u_old = hist[-2]
                    self.u.x.array[:] = u_from + (u_from - u_old) * (d_to - d_from) / (d_from - d_old)
                else:
                    self.u.x.array[:] = u_from
                self.d.value = d_to
                ok, its = self._newton()
                total_its += its
                if ok and np.all(np.isfinite(self.u.x.array)):
                    hist = [hist[-1], (d_to, self.u.x.array.copy())]
                    continue
                self.u.x.array[:] = u_from
                self.u.x.scatter_forward()
                n_sub *= 2
                if (d_k - d_start) / n_sub < max_step / 2**max_bisections:
                    raise SimulationError(
                        f"indentation Newton failed at depth {d_to:.4e} m "
                        f"(SNES reason {self.problem.solver.getConvergedReason()}) after {max_bisections} bisections"
                    )
            self.u.x.array[:] = hist[-1][1]
            self.u.x.scatter_forward()
            out[:, k] = (self.force(), self.strain_max(), self.contact_radius())
            if stop_strain is not None and out[1, k] >= stop_strain:
                break
        return IndentationResult(depths, out[0], out[1], out[2], total_its)


# ---------------------------------------------------------------------------------------------------
# Simulator: mechanics only
# ---------------------------------------------------------------------------------------------------
_PROBLEMS: dict[tuple, IndentationProblem] = {}


def get_problem(resolution: str | tuple[int, int] = "coarse", **kwargs) -> IndentationProblem:
    """A cached `IndentationProblem` per (resolution, options, communicator size) in this process."""
    n_r, n_z = RESOLUTIONS[resolution] if isinstance(resolution, str) else resolution
    comm = kwargs.pop("comm", MPI.COMM_WORLD)
    key = (n_r, n_z, comm.size, tuple(sorted(kwargs.items())))
    if key not in _PROBLEMS:
        _PROBLEMS[key] = IndentationProblem(n_r, n_z, comm=comm, **kwargs)
    return _PROBLEMS[key]


@register
@dataclass
class IndentationFE(Simulator):
    """Hemispherical-punch indentation of a pouch cell (axisymmetric finite-strain FE), mechanics only.

    Output dataset (dim ``displacement`` of length ``n_displacement``, 0 … ``displacement_max``):
    ``force_indenter`` [N], ``strain_separator_max`` [1] (NaN beyond ``depth_fraction_max``·H),
    scalars ``displacement_short_onset`` [m], ``force_short_onset`` [N] (NaN if ε_c is not reached).

    Example
    -------
    >>> sim = IndentationFE(resolution="coarse")
    >>> ds = sim.run({"modulus_cell": 5e7, "hardening_modulus": 3e8, "hardening_exponent": 2.0,
    ...               "strain_critical": 0.4}, {"cell_thickness": 5e-3})
    """

    name = "fe_indentation"
    parameters = MECHANICAL_PARAMETERS
    conditions = MECHANICAL_CONDITIONS

    resolution: str = "coarse"
    degree: int = 2
    displacement_max: float = 4.0e-3
    n_displacement: int = 81
    max_step: float = 5.0e-5
    depth_fraction_max: float = 0.8
    poisson_ratio: float = 0.1
    domain_radius: float = 20.0e-3

    def grid(self) -> np.ndarray:
        """The fixed displacement grid [m]."""
        return np.linspace(0.0, self.displacement_max, self.n_displacement)

    def mechanics(self, theta: dict[str, float], condition: dict[str, float], *,
                  stop_at_short: bool = False) -> IndentationResult:
        """Solve the load path; rows beyond ``depth_fraction_max``·H are NaN, and with ``stop_at_short`` also
        those beyond the first depth whose strain reaches ``theta["strain_critical"]``."""
        prob = get_problem(self.resolution, degree=self.degree, poisson_ratio=self.poisson_ratio,
                           domain_radius=self.domain_radius)
        H = condition["cell_thickness"]
        prob.set_state(
            modulus=theta["modulus_cell"], hardening_modulus=theta["hardening_modulus"],
            hardening_exponent=theta["hardening_exponent"], punch_radius=condition["punch_radius"], thickness=H,
        )
        grid = self.grid()
        reach = grid <= self.depth_fraction_max * H + 1e-15
        res = prob.solve_path(grid[reach], max_step=self.max_step,
                              stop_strain=theta["strain_critical"] if stop_at_short else None)
        pad = lambda a: np.concatenate([a, np.full(grid.size - a.size, np.nan)])  # noqa: E731
        return IndentationResult(grid, pad(res.force), pad(res.strain_max), pad(res.contact_radius),
                                 res.newton_iterations)

    def _run(self, theta, condition):
        t0 = time.perf_counter()
        res = self.mechanics(theta, condition)
        d_on, f_on = short_onset(res.depth, res.force, res.strain_max, theta["strain_critical"])
        ds = xr.Dataset(
            {
                "force_indenter": ("displacement", res.force),
                "strain_separator_max": ("displacement", res.strain_max),
                "displacement_short_onset": d_on,
                "force_short_onset": f_on,
            },
            coords={"displacement": res.depth},
            attrs={"newton_iterations": res.newton_iterations, "wall_time_mechanics": time.perf_counter() - t0},
        )
        return attach_units(ds, META)
