r"""Jelly roll as a crushable foam (`abuse_fe.foam`) in an axisymmetric, small-strain FE model: uniaxial
compression of a cylinder (verification) and indentation by a rigid hemispherical punch with unloading.

Kinematics: geometrically linear
--------------------------------
u = (u_r, u_z) on the meridian (r, z), dV = 2π r dr dz, and the small strain in Mandel form
(the layout of `abuse_fe.foam`, z = stack normal)::

    ε(u) = (∂u_r/∂r, ∂u_z/∂z, u_r/r, √2/2 (∂u_r/∂z + ∂u_z/∂r)).

Equilibrium is written on the undeformed configuration, the strain is linear in ∇u and rotations are
not separated from strain. This is accurate while strains and rotations stay at a few per cent, i.e. for
shallow indentation (depth ≲ 5 % of the cell thickness H). Deep indentation (depths of 10 % of H and
more, compaction of tens of per cent under the punch) is outside its range and only qualitative: the
contact acts on the undeformed top face (vertical gap, no update of the contact area or normal), the
rotations under the punch edge appear as spurious strain and drive spurious plastic flow, and the
additive plastic strain no longer measures the stack's compaction (nothing stops ε_zz → −1, zero
thickness). The next step is the logarithmic-strain version: the same kernel applied to ε = ½ ln(FᵀF)
(Miehe, Apel, Lambrecht 2002; see `abuse_fe.foam`). `abuse_fe.indentation` is the finite-strain,
hyperelastic (loading-only) model.

Constitutive law at the quadrature points
-----------------------------------------
σ(ε) and its consistent tangent dσ/dε come from `abuse_fe.foam.stress_update` (return mapping from the
committed history εᵖ_n, ε̂_n) through a `dolfinx_external_operator.FEMExternalOperator` on a quadrature
space (Latyshev, Bleyer, Maurini, Hale, https://github.com/a-latyshev/dolfinx-external-operator). The
history is committed only after a converged load step. Residual and Jacobian::

    R(u; v) = ∫ σ(ε(u))·ε(v) dV + R_c(u; v),     J = ∫ (dσ/dε ε(δu))·ε(v) dV + DR_c[δu],

solved by a hand-written Newton loop (LU, backtracking line search): converged when the out-of-balance
force ‖R‖ on the free degrees of freedom is ≤ ``newton_rtol`` · ‖R‖ (reactions included) or
≤ ``newton_atol`` · min(Y₀, E_z) H² (`NUMERICS`). A failed step (no convergence, non-finite state,
unconverged return mapping) is retried from the last converged state with bisected increments;
`SimulationError` after ``max_bisections``.

Loadings
--------
`compress_cylinder`: frictionless plates, u_z = 0 at z = 0, u_z = ε H on z = H, u_r = 0 on the axis, free
lateral surface: the exact solution is homogeneous uniaxial stress, so the FE must reproduce
`abuse_fe.foam.uniaxial_stress_path` (closed form E ε up to Y₀, then |ε| = |σ|/E + ((|σ| − Y₀)/B)^{1/n}).

`indent`: rigid sphere of radius R_p, tip at depth d below the undeformed top face z = H, on a cell
resting on a frictionless rigid plate. Small-strain contact: the top face point (r, H) moves to
H + u_z, the sphere surface lies at z = H − d + h(r), h(r) = R_p − √(R_p² − r²), so the penetration is

    g = u_z + d − h(r),   Π_c = ∫_Γtop ψ(g) dA,   ψ ≈ κ/2 ⟨g⟩₊² (C²-smoothed),   κ = α E_z / H,

as in `abuse_fe.indentation`; R_c = DΠ_c[v] = ∫ ψ'(g) v_z dA and the punch force F = ∂Π_c/∂d = ∫ ψ'(g) dA.
The punch is driven to the maximum depth and withdrawn until the force vanishes; the residual dent is
−u_z(0, H) then. Energy bookkeeping (trapezoidal over the converged steps): punch work ∮ F dd and plastic
dissipation Σ ∫ ½(σ_n + σ_{n+1})·(εᵖ_{n+1} − εᵖ_n) dV; over a closed cycle they differ by the elastic
energy ½ ∫ σ·Sσ dV locked in by residual stresses.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

import abuse_fe  # noqa: F401  (import order: must precede dolfinx)
import basix.ufl
import ufl
from dolfinx import fem
from dolfinx.fem.petsc import assemble_matrix, assemble_vector, create_matrix, create_vector, set_bc
from dolfinx_external_operator import (
    FEMExternalOperator, evaluate_external_operators, evaluate_operands, replace_external_operators,
)
from mpi4py import MPI
from petsc4py import PETSc

from abuse_fe.foam import NUMERICS as FOAM_NUMERICS
from abuse_fe.foam import FoamParameters, stiffness, stress_update
from abuse_fe.geometry_indentation import AXIS, BOTTOM, TOP, create_indentation_mesh
from simulators.base import SimulationError

#: Newton and contact numerics, in one place (tolerances relative, see the module docstring)
NUMERICS = {
    "newton_rtol": 1.0e-9,  # ‖R_free‖ / ‖R‖
    "newton_atol": 1.0e-12,  # ‖R_free‖ / (min(Y₀, E_z) H²)
    "newton_max_it": 20,
    "line_search_min": 1.0 / 16,
    "max_bisections": 6,
    "return_tol": 1.0e3 * FOAM_NUMERICS["return_rtol"],  # accepted |Φ|/Y after the return mapping
    "penalty": 1.0e3,  # α: κ = α E_z / H
    "smoothing": 1.0e-5,  # C² penalty smoothing width / H
}

_prefix_counter = itertools.count()


@dataclass(frozen=True)
class CompressionResult:
    """Uniaxial compression of the foam cylinder along a prescribed strain path of K steps.

    Attributes
    ----------
    strain : (K,) nominal axial strain u_z(H)/H [1] (negative in compression)
    stress : (K,) nominal axial stress, plate force / (π R²) [Pa] (negative in compression)
    plastic_strain : (K,) volume-averaged axial plastic strain εᵖ_zz [1]
    equivalent_plastic_strain : (K,) volume-averaged ε̂ [1]
    newton_iterations : total Newton iterations
    """

    strain: np.ndarray
    stress: np.ndarray
    plastic_strain: np.ndarray
    equivalent_plastic_strain: np.ndarray
    newton_iterations: int


@dataclass(frozen=True)
class FoamIndentationResult:
    """Load–unload cycle of the punch; K recorded depths (loading grid, then unloading until F = 0).

    Attributes
    ----------
    depth : (K,) punch depth d [m]
    force : (K,) punch force [N]
    equivalent_plastic_strain_max : (K,) maximum ε̂ over the quadrature points [1]
    loading : (K,) bool, True on the loading branch (d = 0 included)
    residual_depth : depth of the dent −u_z(0, H) after unloading to zero force [m]
    work : punch work ∮ F dd over the cycle [J]
    dissipation : plastic dissipation Σ ∫ ½(σ_n + σ_{n+1})·Δεᵖ dV over the cycle [J]
    elastic_energy : elastic energy ½ ∫ σ·Sσ dV of the residual stresses at the end [J]
    newton_iterations : total Newton iterations
    """

    depth: np.ndarray
    force: np.ndarray
    equivalent_plastic_strain_max: np.ndarray
    loading: np.ndarray
    residual_depth: float
    work: float
    dissipation: float
    elastic_energy: float
    newton_iterations: int


def _strain(v, r):
    """Axisymmetric small strain, Mandel (rr, zz, θθ, √2 rz), of the vector field v on the (r, z) plane."""
    g = ufl.grad(v)
    return ufl.as_vector([g[0, 0], g[1, 1], v[0] / r, np.sqrt(2.0) / 2 * (g[0, 1] + g[1, 0])])


class FoamSolid:
    """Axisymmetric small-strain foam solid on a tagged (r, z) mesh: space, quadrature history, external
    operator, Newton solver and a load-stepping driver with bisection.

    Parameters
    ----------
    im : `abuse_fe.geometry_indentation.IndentationMesh` (tags AXIS, BOTTOM, TOP, OUTER), in metres
    params : FoamParameters
    dirichlet : sequence of (facet tag, component 0 = r / 1 = z, fem.Constant value [m])
    boundary_residual : optional callable (u, v) → UFL form, extra residual on the boundary (contact)
    degree : Lagrange degree of u; the stress lives on the degree max(2(degree − 1), 1) quadrature space
    """

    def __init__(self, im, params: FoamParameters, dirichlet, *,
                 boundary_residual: Callable | None = None, degree: int = 2):
        msh = im.mesh
        self.im, self.params, self.comm = im, params, msh.comm
        fdim = msh.topology.dim - 1
        r = ufl.SpatialCoordinate(msh)[0]
        self.two_π_r = 2 * ufl.pi * r
        # --- spaces: displacement, stress and history at the quadrature points ---------------------
        self.V = fem.functionspace(msh, ("Lagrange", degree, (2,)))
        q = max(2 * (degree - 1), 1)
        cell = msh.topology.cell_name()
        S = fem.functionspace(msh, basix.ufl.quadrature_element(cell, degree=q, value_shape=(4,)))
        Q = fem.functionspace(msh, basix.ufl.quadrature_element(cell, degree=q))
        self.dx = ufl.Measure("dx", domain=msh, metadata={"quadrature_degree": q, "quadrature_scheme": "default"})
        self.u = fem.Function(self.V, name="displacement")
        self.eps_p = fem.Function(S, name="plastic_strain")  # trial (last constitutive evaluation)
        self.eps_hat = fem.Function(Q, name="equivalent_plastic_strain")
        self.eps_p_n = fem.Function(S, name="plastic_strain_committed")
        self.eps_hat_n = fem.Function(Q, name="equivalent_plastic_strain_committed")
        self.sigma_n = fem.Function(S, name="stress_committed")
        # --- boundary conditions -----------------------------------------------------------------
        self.bcs = [fem.dirichletbc(value, fem.locate_dofs_topological(self.V.sub(c), fdim, im.facet_tags.find(tag)),
                                    self.V.sub(c)) for tag, c, value in dirichlet]
        n_owned = self.V.dofmap.index_map.size_local * self.V.dofmap.index_map_bs
        self._free = np.ones(n_owned, dtype=bool)
        for bc in self.bcs:
            dofs, n_bc_owned = bc.dof_indices()
            self._free[dofs[:n_bc_owned]] = False
        # --- forms: σ as an external operator of ε(u) --------------------------------------------
        v, du = ufl.TestFunction(self.V), ufl.TrialFunction(self.V)
        σ = FEMExternalOperator(_strain(self.u, r), function_space=S, external_function=self._external)
        F = ufl.inner(σ, _strain(v, r)) * self.two_π_r * self.dx
        if boundary_residual is not None:
            F = F + boundary_residual(self.u, v)
        J = ufl.derivative(F, self.u, du)
        F_replaced, self._F_ops = replace_external_operators(F)
        J_replaced, self._J_ops = replace_external_operators(J)
        self.F_form, self.J_form = fem.form(F_replaced), fem.form(J_replaced)
        self.sigma = self._F_ops[0].ref_coefficient
        # plastic dissipation of a step and elastic energy [J]
        σ_mid = (self.sigma + self.sigma_n) / 2
        self._dissipation_form = fem.form(ufl.dot(σ_mid, self.eps_p - self.eps_p_n) * self.two_π_r * self.dx)
        Sc = ufl.as_matrix(np.linalg.inv(stiffness(params, 4)).tolist())
        self._elastic_form = fem.form(ufl.dot(self.sigma, Sc * self.sigma) / 2 * self.two_π_r * self.dx)
        # --- linear solver -----------------------------------------------------------------------
        self.A = create_matrix(self.J_form)
        self.b, self.du = create_vector(self.V), create_vector(self.V)
        self.ksp = PETSc.KSP().create(self.comm)
        self.ksp.setOptionsPrefix(f"foam{next(_prefix_counter)}_")
        opts = PETSc.Options()
        for k, val in {"ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "mumps"}.items():
            opts[self.ksp.getOptionsPrefix() + k] = val
        self.ksp.setFromOptions()
        self.force_scale = min(params.yield_stress, params.modulus_normal) * im.thickness**2  # [N]
        self.newton_iterations = 0
        self.reaction = np.zeros(n_owned)  # internal nodal forces of the last residual [N]
        self._trial = None

    # --- constitutive update (external operator) --------------------------------------------------
    def _external(self, derivatives):
        if derivatives != (1,):
            raise NotImplementedError(f"only the tangent dσ/dε is implemented, not derivatives {derivatives}")
        return self._tangent

    def _tangent(self, eps):
        """(cells, points, 4) strains → flat tangent, flat stress; keeps the trial history."""
        up = stress_update(eps.reshape(-1, 4), self.eps_p_n.x.array.reshape(-1, 4), self.eps_hat_n.x.array,
                           self.params)
        self._trial = up
        return up.tangent.reshape(-1), up.stress.reshape(-1)

    def _constitutive(self) -> bool:
        """Stress, tangent and trial history at the current u; False if a return mapping failed."""
        operands = evaluate_operands(self._F_ops)
        ((_, stress),) = evaluate_external_operators(self._J_ops, operands)
        self.sigma.x.array[:] = stress
        up = self._trial
        self.eps_p.x.array[:] = up.plastic_strain.reshape(-1)
        self.eps_hat.x.array[:] = up.equivalent_plastic_strain
        return bool(np.all(np.isfinite(stress)) and np.max(up.residual, initial=0.0) <= NUMERICS["return_tol"])

    # --- Newton ---------------------------------------------------------------------------------------
    def _norm(self, a: np.ndarray) -> float:
        return float(np.sqrt(self.comm.allreduce(float(a @ a), op=MPI.SUM)))

    def _residual(self) -> tuple[float, float]:
        """Constitutive update and residual at the current u: (‖R‖, ‖R_free‖) [N]; (nan, nan) on failure.

        Leaves R (Dirichlet rows zeroed) in ``self.b`` and the internal nodal forces, reactions on the
        Dirichlet rows, in ``self.reaction`` [N].
        """
        if not self._constitutive():
            return np.nan, np.nan
        with self.b.localForm() as loc:
            loc.set(0.0)
        assemble_vector(self.b, self.F_form)
        self.b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        self.reaction = self.b.array.copy()
        set_bc(self.b, self.bcs, self.u.x.petsc_vec, 0.0)  # homogeneous corrections on Dirichlet rows
        return self._norm(self.reaction), self._norm(self.reaction[self._free])

    def newton(self) -> bool:
        """Solve R(u) = 0 from the current u (Dirichlet values imposed first); True if converged.

        Newton with the consistent tangent and a backtracking line search on ‖R_free‖ (halving down to
        ``line_search_min``; the last trial is accepted so that the iteration can leave a contact or
        elastic–plastic active-set cycle).
        """
        for bc in self.bcs:
            bc.set(self.u.x.array)
        self.u.x.scatter_forward()
        r_all, r_free = self._residual()
        u0 = self.u.x.array.copy()
        for it in range(NUMERICS["newton_max_it"] + 1):
            if not np.isfinite(r_free):
                return False
            if it > 0 and r_free <= max(NUMERICS["newton_rtol"] * r_all, NUMERICS["newton_atol"] * self.force_scale):
                return True
            if it == NUMERICS["newton_max_it"]:
                break
            self.A.zeroEntries()
            assemble_matrix(self.A, self.J_form, bcs=self.bcs)
            self.A.assemble()
            self.ksp.setOperators(self.A)
            self.ksp.solve(self.b, self.du)
            if self.ksp.getConvergedReason() <= 0:
                return False
            u0[:] = self.u.x.array
            α, r0 = 1.0, r_free
            while True:
                self.u.x.array[:] = u0
                self.u.x.petsc_vec.axpy(-α, self.du)
                self.u.x.scatter_forward()
                r_all, r_free = self._residual()
                if r_free <= (1 - 1e-4 * α) * r0 or α <= NUMERICS["line_search_min"]:
                    break
                α /= 2
            self.newton_iterations += 1
        return False

    def commit(self) -> None:
        """Accept the converged state as the history of the next step."""
        self.eps_p_n.x.array[:] = self.eps_p.x.array
        self.eps_hat_n.x.array[:] = self.eps_hat.x.array
        self.sigma_n.x.array[:] = self.sigma.x.array

    # --- outputs ----------------------------------------------------------------------------------------
    def integral(self, form) -> float:
        """Value of a compiled scalar ``form`` summed over the processes."""
        return self.comm.allreduce(fem.assemble_scalar(form), op=MPI.SUM)

    def dissipation_increment(self) -> float:
        """∫ ½(σ_n + σ)·(εᵖ − εᵖ_n) dV of the converged, not yet committed step [J]."""
        return self.integral(self._dissipation_form)

    def elastic_energy(self) -> float:
        """½ ∫ σ·Sσ dV of the current stress [J]."""
        return self.integral(self._elastic_form)

    def equivalent_plastic_strain_max(self) -> float:
        """Maximum ε̂ over the quadrature points of the current (converged) state [1]."""
        return self.comm.allreduce(float(np.max(self.eps_hat.x.array, initial=0.0)), op=MPI.MAX)

    # --- load stepping ------------------------------------------------------------------------------------
    def walk(self, loads, set_load: Callable[[float], None]) -> Iterator[tuple[float, bool]]:
        """Drive the load parameter through ``loads`` (from the current value, assumed 0 at the start).

        Yields (load, at_target) after each converged step, *before* it is committed (the caller may
        read step increments), and commits it when resumed; a target equal to the current load is
        yielded without a solve. Each step starts from the secant predictor of the last two converged
        states; a failed step is retried from the last converged state with half the increment.

        Raises
        ------
        SimulationError
            If a step fails after ``max_bisections`` halvings.
        """
        hist = [(0.0, self.u.x.array.copy())]
        for target in loads:
            start, n_sub = hist[-1][0], 1
            if target == start:  # nothing to solve: the converged state is already at the target
                yield target, True
                continue
            while hist[-1][0] != target:
                l_from, u_from = hist[-1]
                step = (target - start) / n_sub
                l_to = target if abs(target - l_from) <= abs(step) * (1 + 1e-9) else l_from + step
                if len(hist) > 1:
                    l_old, u_old = hist[-2]
                    self.u.x.array[:] = u_from + (u_from - u_old) * (l_to - l_from) / (l_from - l_old)
                else:
                    self.u.x.array[:] = u_from
                set_load(l_to)
                if self.newton() and np.all(np.isfinite(self.u.x.array)):
                    yield l_to, l_to == target
                    self.commit()
                    hist = [hist[-1], (l_to, self.u.x.array.copy())]
                    continue
                self.u.x.array[:] = u_from
                self.u.x.scatter_forward()
                n_sub *= 2
                if n_sub > 2 ** NUMERICS["max_bisections"]:
                    raise SimulationError(
                        f"foam Newton failed at load {l_to:.6e} (from {l_from:.6e}) after "
                        f"{NUMERICS['max_bisections']} bisections; use smaller steps")


# ---------------------------------------------------------------------------------------------------
# Loadings
# ---------------------------------------------------------------------------------------------------
def compress_cylinder(strains, params: FoamParameters, *, radius: float = 5.0e-3, height: float = 5.0e-3,
                      n_r: int = 2, n_z: int = 2, degree: int = 2, comm: MPI.Comm = MPI.COMM_WORLD
                      ) -> CompressionResult:
    """Uniaxial compression of a cylinder between frictionless plates along the axial strains ``strains``.

    Parameters
    ----------
    strains : (K,) successive nominal axial strains u_z(H)/H [1] from the virgin state (loading and unloading;
        negative = compression)
    params : FoamParameters
    radius, height : cylinder radius R and height H [m]
    n_r, n_z, degree : elements along r and z, Lagrange degree (the exact solution is linear: any mesh)
    comm : MPI communicator

    Returns
    -------
    CompressionResult (nominal stress = plate force / π R²)

    Example
    -------
    >>> p = FoamParameters.isotropic(1e8, 0.3, yield_stress=1e6, hardening_modulus=3e8, hardening_exponent=2.0)
    >>> res = compress_cylinder(-np.linspace(0.005, 0.05, 10), p)
    """
    strains = np.asarray(strains, dtype=float).ravel()
    if strains.size == 0:
        raise ValueError("strains is empty: give the successive axial strains u_z(H)/H")
    im = create_indentation_mesh(n_r, n_z, thickness=height, radius=radius, grading_r=0.0, grading_z=0.0,
                                 comm=comm)
    msh = im.mesh
    u_top = fem.Constant(msh, PETSc.ScalarType(0.0))
    zero = fem.Constant(msh, PETSc.ScalarType(0.0))
    solid = FoamSolid(im, params, [(AXIS, 0, zero), (BOTTOM, 1, zero), (TOP, 1, u_top)], degree=degree)
    top = solid.bcs[2].dof_indices()
    top_owned = top[0][:top[1]]
    volume = np.pi * radius**2 * height
    averages = [fem.form(q * solid.two_π_r * solid.dx) for q in (solid.eps_p[1], solid.eps_hat)]

    def set_load(e):
        u_top.value = e * height

    out = []
    for e, at_target in solid.walk(strains, set_load):
        if at_target:
            force = comm.allreduce(float(solid.reaction[top_owned].sum()), op=MPI.SUM)  # [N], < 0 compressive
            out.append((e, force / (np.pi * radius**2), *(solid.integral(f) / volume for f in averages)))
    strain, stress, eps_p, eps_hat = (np.array(v) for v in zip(*out))
    return CompressionResult(strain, stress, eps_p, eps_hat, solid.newton_iterations)


def indent(params: FoamParameters, *, depth: float = 0.25e-3, punch_radius: float = 6.35e-3,
           thickness: float = 5.0e-3, n_load: int = 16, n_unload: int = 16,
           resolution: tuple[int, int] = (12, 6), degree: int = 2, domain_radius: float = 15.0e-3,
           grading_r: float = 2.5, grading_z: float = 1.5, comm: MPI.Comm = MPI.COMM_WORLD
           ) -> FoamIndentationResult:
    """Hemispherical punch pressed to ``depth`` into the foam cell on a rigid plate, then withdrawn.

    Parameters
    ----------
    params : FoamParameters
    depth : maximum punch depth d [m] (keep ≲ 0.05 H: geometrically linear model)
    punch_radius : R_p [m];  thickness : cell thickness H [m]
    n_load : equal depth steps from 0 to ``depth``
    n_unload : equal depth steps back to 0; the unloading stops at the first step with zero force
    resolution : (elements along r, elements along z) of the graded mesh (`create_indentation_mesh`)
    degree : Lagrange degree of u
    domain_radius : radius of the modelled disc [m] (traction-free rim)
    grading_r, grading_z : mesh grading towards the contact point (0, H)
    comm : MPI communicator

    Returns
    -------
    FoamIndentationResult

    Raises
    ------
    SimulationError
        If a step does not converge after all bisections.

    Example
    -------
    >>> p = FoamParameters.isotropic(1e8, 0.1, yield_stress=1e6, hardening_modulus=3e8, hardening_exponent=2.0)
    >>> res = indent(p, depth=0.25e-3)
    >>> dent = res.residual_depth  # [m]
    """
    if not 0 < depth < punch_radius:
        raise ValueError(f"depth = {depth!r} m must lie in (0, punch_radius = {punch_radius!r} m)")
    n_r, n_z = resolution
    im = create_indentation_mesh(n_r, n_z, thickness=thickness, radius=domain_radius, grading_r=grading_r,
                                 grading_z=grading_z, comm=comm)
    msh = im.mesh
    d = fem.Constant(msh, PETSc.ScalarType(0.0))
    κ = NUMERICS["penalty"] * params.modulus_normal / thickness  # [Pa/m]
    s = NUMERICS["smoothing"] * thickness  # [m]
    r = ufl.SpatialCoordinate(msh)[0]
    ds = ufl.Measure("ds", domain=msh, subdomain_data=im.facet_tags, metadata={"quadrature_degree": 6})
    h = punch_radius - ufl.sqrt(ufl.max_value(punch_radius**2 - r**2, 0.0))  # sphere profile above the tip [m]

    def contact_pressure(u):
        """ψ'(g) [Pa], C²-smoothed penalty of `abuse_fe.indentation`: κ g²/(2s) on (0, s), κ (g − s/2) above."""
        g = u[1] + d - h
        return ufl.conditional(ufl.lt(g, s), κ * ufl.max_value(g, 0.0) ** 2 / (2 * s), κ * (g - s / 2))

    def contact_residual(u, v):
        return contact_pressure(u) * v[1] * 2 * ufl.pi * r * ds(TOP)

    zero = fem.Constant(msh, PETSc.ScalarType(0.0))
    solid = FoamSolid(im, params, [(AXIS, 0, zero), (BOTTOM, 1, zero)], boundary_residual=contact_residual,
                      degree=degree)
    force_form = fem.form(contact_pressure(solid.u) * 2 * ufl.pi * r * ds(TOP))
    top_z = fem.locate_dofs_topological(solid.V.sub(1), msh.topology.dim - 1, im.facet_tags.find(TOP))

    def set_load(value):
        d.value = value

    loads = np.r_[np.linspace(0.0, depth, n_load + 1)[1:], np.linspace(depth, 0.0, n_unload + 1)[1:]]
    rows = [(0.0, 0.0, 0.0, True)]
    work = dissipation = 0.0
    d_prev = f_prev = 0.0
    n_reached = 0
    for load, at_target in solid.walk(loads, set_load):
        force = solid.integral(force_form)
        work += 0.5 * (force + f_prev) * (load - d_prev)
        dissipation += solid.dissipation_increment()
        d_prev, f_prev = load, force
        if at_target:
            n_reached += 1
            loading = n_reached <= n_load
            rows.append((load, force, solid.equivalent_plastic_strain_max(), loading))
            if not loading and force <= 0.0:
                break
    dent = -comm.allreduce(float(np.min(solid.u.x.array[top_z], initial=0.0)), op=MPI.MIN)
    depth_, force_, eq_, loading = (np.array(v) for v in zip(*rows))
    return FoamIndentationResult(depth_, force_, eq_, loading.astype(bool), dent, work, dissipation,
                                 solid.elastic_energy(), solid.newton_iterations)
