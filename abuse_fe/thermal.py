r"""Thermal abuse of battery cells by finite elements: conduction + runaway kinetics + triggers.

Problem (T temperature [K], t time [s])::

    ρc ∂T/∂t = ∇·(K ∇T) + q_kin(T, ξ) + P_s(t) s(x)                  in Ω (jelly roll + can)
    dξ/dt    = r(T, ξ)                                                 kinetic state ξ (jelly roll only)
    -K∇T·n   = h (T - T∞(t)) + εσ (T⁴ - T∞⁴) - P_h(t)/|Γ_h| 1_{Γ_h}   on the outer surface Γ
    -K∇T·n   = 0                                                       on the symmetry axis r = 0

K = diag(k_r, k_z) (cylinder, r–z axisymmetric, dV = 2πr dr dz) or diag(k_in, k_in, k_through)
(pouch, 3D). Triggers: oven (ambient T∞(t)), heater patch (power P_h [W] over the facets tagged
``HEATER``), internal short / nail (power P_s(t) [W] deposited with a normalised Gaussian s(x),
∫ s dV = 1, around a point; in the axisymmetric model a point off the axis is a ring).

Discretisation and why
----------------------
P1 Lagrange in space. In time, Strang operator splitting with step-size control:

1. kinetics over Δt/2 at fixed T, at every P1 dof of the jelly roll, by `KineticSet.advance`
   (closed-form exact at constant T, hence stable for arbitrarily stiff runaway rates);
   the heat released e_j [J/m³] raises the dof temperature by ΔT_j = e_j w_j / m_j with
   w_j = ∫_jelly φ_j dV and m_j = ∫ ρc φ_j dV (lumped heat capacity of the dof);
2. conduction over Δt by backward Euler (L-stable: no oscillations from the abrupt heat pulses of a
   runaway or a switched heater),  ``(M + Δt K + Δt H) Tⁿ⁺¹ = M Tⁿ + Δt (H T∞ − R(Tⁿ) + F_h + F_s)``;
   the matrix is assembled and LU-factorised (MUMPS) once per distinct Δt and reused (step sizes are
   Δt_max/2ᵏ, so few factorisations); radiation R(Tⁿ) = ∫ εσ(Tⁿ⁴ − T∞⁴) v dA is explicit
   (lagged per step) so that the matrix stays constant; its explicit stability limit is enforced;
3. kinetics over Δt/2 again.

A step is rejected and halved when the largest temperature change of any dof exceeds ``dT_step``;
the step doubles (up to ``dt_max``) when the change is below a quarter of it. Splitting rather than a
fully coupled SNES because (i) the kinetics are stiff ODEs local to each point that `advance` solves
exactly, (ii) the conduction operator is then linear with a constant, pre-factorised matrix — a runaway
simulation costs a few hundred triangular solves, and (iii) the energy bookkeeping closes exactly:
every joule released by `advance` enters the temperature field through m_j, and summing the
backward-Euler equations over all test functions (Σ φ_i = 1) gives, per step,

    ∫ρc (Tⁿ⁺¹ − Tⁿ) dV = E_kin + Δt P̄_h + Δt P̄_s − Δt [∫ h (Tⁿ⁺¹ − T∞) dA + ∫ εσ (Tⁿ⁴ − T∞⁴) dA],

which is what the run accounts (``energy_balance_residual`` is this identity's defect: round-off
and the LU solve, ~1e-10 relative).

Runaway is the project's one definition (`simulators.lumped.RUNAWAY_RATE`, 1 K/s; Feng et al., Energy Storage
Mater. 10 (2018) 246): the chemical self-heating rate of the whole cell, heat-capacity weighted,
E_kin,step / (Δt ∫ρc dV), exceeds ``StepControl.runaway_rate`` — the rate `lumped_thermal` reads from its one
node, and the rate the coupled chain reads outside the short spot (`abuse_fe.coupled`). A runaway confined to a
hot spot (an internal short's ``source_power``) heats a few dofs fast but is not a cell runaway until it spreads.

Example
-------
>>> import abuse_fe
>>> from abuse_fe.geometry import cylinder, CELL_18650
>>> from abuse_fe.thermal import ThermalAbuseProblem
>>> from simulators.kinetics import load
>>> problem = ThermalAbuseProblem(cylinder(CELL_18650), kinetics=load("hatchard2001"))
>>> ds = problem.run(3600.0, ambient=428.15)                       # oven at 155 °C
>>> ds = problem.run(600.0, source_power=lambda t: 20.0,            # internal short, 20 W
...                  source_center=(0.0, 0.0325), source_radius=1e-3)
"""
from __future__ import annotations

import itertools
import math
import time as _time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import abuse_fe  # noqa: F401  (import order: before dolfinx)

import numpy as np
import ufl
import xarray as xr
from dolfinx import fem
from dolfinx.fem import petsc as fem_petsc
from mpi4py import MPI
from petsc4py import PETSc

from abuse_fe import geometry as geo
from abuse_fe.materials import CYLINDRICAL, POUCH, STEFAN_BOLTZMANN, CellMaterials
from abuse_fe.probes import Probes
from simulators.base import Condition, Parameter, SimulationError, Simulator, attach_units
from simulators.lumped import RUNAWAY_RATE
from simulators.priors import Prior
from simulators.registry import register

# Linear solver of the conduction step: direct LU (MUMPS), factorised once per Δt and reused.
PETSC_OPTIONS = {"ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "mumps",
                 "ksp_error_if_not_converged": True}
_PREFIX_COUNTER = itertools.count()


@dataclass(frozen=True)
class StepControl:
    """Time-step control of the split scheme.

    Parameters
    ----------
    dt_initial, dt_min, dt_max : float
        First, smallest and largest step [s] (steps are dt_max / 2ᵏ).
    dT_step : float
        Largest accepted temperature change of any dof per step [K].
    runaway_rate : float
        Runaway is declared when the chemical self-heating rate of the whole cell (heat-capacity weighted)
        exceeds this rate [K/s] (module docstring).
    """

    dt_initial: float = 1.0
    dt_min: float = 1e-4
    dt_max: float = 16.0
    dT_step: float = 10.0
    runaway_rate: float = RUNAWAY_RATE


class PowerSeries:
    """A power input P(t) [W] with its exact energy over any interval.

    Parameters
    ----------
    power : float, callable t → W, or (times [s], powers [W]) arrays
        A constant, a function (integrated over a step by 3-point Gauss–Legendre), or a
        piecewise-linear series (integrated exactly; zero outside its time range; repeat a time to
        make a jump).
    """

    _GL_X = np.array([-math.sqrt(0.6), 0.0, math.sqrt(0.6)])
    _GL_W = np.array([5.0, 8.0, 5.0]) / 9.0

    def __init__(self, power):
        self._f = None
        self._tp = None
        if callable(power):
            self._f = power
        elif np.isscalar(power):
            p = float(power)
            self._f = lambda t: p
        else:
            t, p = (np.asarray(a, dtype=float) for a in power)
            if t.ndim != 1 or t.shape != p.shape or np.any(np.diff(t) < 0):
                raise ValueError("power series must be (times, powers) 1D arrays of equal length, times non-decreasing")
            self._tp = (t, p, np.concatenate([[0.0], np.cumsum(0.5 * (p[1:] + p[:-1]) * np.diff(t))]))

    def _antiderivative(self, t: float) -> float:
        ts, ps, cum = self._tp
        if t <= ts[0]:
            return 0.0
        if t >= ts[-1]:
            return float(cum[-1])
        k = int(np.searchsorted(ts, t, side="right") - 1)
        s = t - ts[k]
        slope = (ps[k + 1] - ps[k]) / (ts[k + 1] - ts[k])
        return float(cum[k] + ps[k] * s + 0.5 * slope * s * s)

    def energy(self, t0: float, t1: float) -> float:
        """∫_{t0}^{t1} P dt [J]."""
        if self._tp is not None:
            return self._antiderivative(t1) - self._antiderivative(t0)
        mid, half = 0.5 * (t0 + t1), 0.5 * (t1 - t0)
        return float(half * sum(w * self._f(mid + half * x) for x, w in zip(self._GL_X, self._GL_W)))

    def __call__(self, t: float) -> float:
        if self._tp is not None:
            ts, ps, _ = self._tp
            return float(np.interp(t, ts, ps, left=0.0, right=0.0))
        return float(self._f(t))


def conductivity_tensor(k_a, k_b, gdim: int):
    """K = diag(k_a, k_b) (r–z) or diag(k_a, k_a, k_b) (x, y, z) as a UFL matrix [W/(m K)]."""
    if gdim == 2:
        return ufl.as_matrix([[k_a, 0], [0, k_b]])
    return ufl.as_matrix([[k_a, 0, 0], [0, k_a, 0], [0, 0, k_b]])


class ThermalAbuseProblem:
    """Transient heat conduction with runaway kinetics on a tagged cell mesh (module docstring).

    Parameters
    ----------
    mesh : ThermalMesh
        From `abuse_fe.geometry` (`cylinder` or `pouch`).
    materials : CellMaterials
        Jelly roll (orthotropic) and can; default by mesh type.
    kinetics : KineticSet or None
        Runaway kinetics (`simulators.kinetics`); None: inert conduction.
    heat_transfer_coefficient : float
        Convective h on the outer surface [W/(m² K)].
    control : StepControl
    matrix : {"once", "reassemble"}
        Assemble/factorise the conduction matrix once per Δt (default), or every step (benchmark).
    petsc_options : dict
        Overrides of `PETSC_OPTIONS`.

    Notes
    -----
    Forms are compiled once per instance (the JIT cache makes later instances of the same cell type
    cheap); `configure` changes materials/kinetics/h without recompiling. The coupled
    (indentation → short) simulator calls `run(..., source_power=series)` with the short power.
    """

    def __init__(self, mesh: geo.ThermalMesh, materials: CellMaterials | None = None, kinetics=None, *,
                 heat_transfer_coefficient: float = 10.0, control: StepControl = StepControl(),
                 matrix: str = "once", petsc_options: Mapping | None = None):
        if matrix not in ("once", "reassemble"):
            raise ValueError(f"matrix must be 'once' or 'reassemble', got {matrix!r}")
        self.tm = mesh
        self.control = control
        self.matrix_policy = matrix
        self.comm = mesh.mesh.comm
        msh = mesh.mesh
        gdim = mesh.gdim

        # --- spaces -------------------------------------------------------------------------------
        self.V = fem.functionspace(msh, ("Lagrange", 1))
        Q = fem.functionspace(msh, ("DG", 0))
        self._Q = Q

        # --- coefficients (values set by `configure`) ---------------------------------------------
        self.ρc = fem.Function(Q, name="volumetric_heat_capacity")  # ρ c_p [J/(m³ K)]
        self.k_a = fem.Function(Q, name="conductivity_a")  # k_r or k_in-plane [W/(m K)]
        self.k_b = fem.Function(Q, name="conductivity_b")  # k_z or k_through-plane [W/(m K)]
        self.g = fem.Function(Q, name="cell_weight")  # scratch DG0 weight for lumped vectors
        self.T = fem.Function(self.V, name="temperature")  # Tⁿ⁺¹ [K]
        self.T_n = fem.Function(self.V, name="temperature_previous")  # Tⁿ [K]
        self.s = fem.Function(self.V, name="source_shape")  # s(x) [1/m³], ∫ s dV = 1 after scaling
        self.Δt = fem.Constant(msh, PETSc.ScalarType(1.0))
        self.h = fem.Constant(msh, PETSc.ScalarType(heat_transfer_coefficient))
        self.T_inf = fem.Constant(msh, PETSc.ScalarType(298.15))
        self.εσ = fem.Constant(msh, PETSc.ScalarType(0.8 * STEFAN_BOLTZMANN))

        # --- forms (mesh → space → forms; no Dirichlet conditions: all boundaries are Robin/natural)
        u, v = ufl.TrialFunction(self.V), ufl.TestFunction(self.V)
        dx, ds = mesh.measures()
        w = mesh.volume_weight()  # dV = w dx (w = 2πr axisymmetric)
        dA = ds(geo.EXTERIOR)
        K = conductivity_tensor(self.k_a, self.k_b, gdim)
        ρc, Δt, h, T_inf, εσ = self.ρc, self.Δt, self.h, self.T_inf, self.εσ
        # backward Euler:  ∫ρc Tⁿ⁺¹ v + Δt ∫ K∇Tⁿ⁺¹·∇v + Δt ∫_Γ h Tⁿ⁺¹ v
        #                = ∫ρc Tⁿ v + Δt ∫_Γ [h T∞ − εσ(Tⁿ⁴ − T∞⁴)] v      (+ heater, source vectors)
        a = ρc * u * v * w * dx + Δt * ufl.inner(K * ufl.grad(u), ufl.grad(v)) * w * dx + Δt * h * u * v * w * dA
        L = ρc * self.T_n * v * w * dx + Δt * (h * T_inf - εσ * (self.T_n**4 - T_inf**4)) * v * w * dA
        self.a_form = fem.form(a)
        self.L_form = fem.form(L)
        # lumped weights ∫ g φ_j dV (g = ρc, 1_jelly, 1), source ∫ s φ_j dV, heater patch ∫_Γh φ_j dA,
        # boundary ∫_Γ φ_j dA, and the boundary heat loss rate ∫_Γ h (Tⁿ⁺¹ − T∞) + εσ(Tⁿ⁴ − T∞⁴) dA [W]
        self.weight_form = fem.form(self.g * v * w * dx)
        self.source_form = fem.form(self.s * v * w * dx)
        self.heater_form = fem.form(v * w * ds(geo.HEATER))
        self.boundary_form = fem.form(v * w * dA)
        self.loss_form = fem.form((h * (self.T - T_inf) + εσ * (self.T_n**4 - T_inf**4)) * w * dA)

        # --- solver settings ----------------------------------------------------------------------
        self.prefix = f"trisk_thermal_{next(_PREFIX_COUNTER)}_"
        self.petsc_options = {**PETSC_OPTIONS, **dict(petsc_options or {})}
        self.b = fem_petsc.create_vector(self.V)
        self._solvers: dict[float, tuple[PETSc.Mat, PETSc.KSP]] = {}
        imap = self.V.dofmap.index_map
        self.n_owned = imap.size_local

        self.kinetics = None
        self.configure(materials or (CYLINDRICAL if mesh.axisymmetric else POUCH), kinetics,
                       heat_transfer_coefficient)

    # ----------------------------------------------------------------------------------------------
    def _lumped(self, form) -> np.ndarray:
        """Assemble a vector form; return its local array with ghosts filled."""
        vec = fem_petsc.assemble_vector(form)
        vec.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        vec.ghostUpdate(addv=PETSc.InsertMode.INSERT, mode=PETSc.ScatterMode.FORWARD)
        with vec.localForm() as loc:
            out = loc.array.copy()
        vec.destroy()
        return out

    def _lumped_dg0(self, values_by_tag: Mapping[int, float]) -> np.ndarray:
        ct = self.tm.cell_tags
        dofs = self._Q.dofmap.list
        self.g.x.array[:] = 0.0
        for tag, val in values_by_tag.items():
            self.g.x.array[dofs[ct.indices[ct.values == tag], 0]] = val
        return self._lumped(self.weight_form)

    def _gsum(self, local_owned: np.ndarray) -> float:
        return self.comm.allreduce(float(np.sum(local_owned)), op=MPI.SUM)

    def _gmax(self, local_owned: np.ndarray) -> float:
        return self.comm.allreduce(float(np.max(local_owned)) if local_owned.size else -np.inf, op=MPI.MAX)

    def configure(self, materials: CellMaterials | None = None, kinetics=None,
                  heat_transfer_coefficient: float | None = None) -> "ThermalAbuseProblem":
        """Set materials, kinetics (a `KineticSet` or None) and h; drops cached matrices. Returns self."""
        if materials is not None:
            self.materials = materials
            ct, dofs = self.tm.cell_tags, self._Q.dofmap.list
            for tag, mat in ((geo.JELLY, materials.jelly), (geo.CASING, materials.casing)):
                cells = dofs[ct.indices[ct.values == tag], 0]
                self.ρc.x.array[cells] = mat.volumetric_heat_capacity
                self.k_a.x.array[cells] = mat.conductivity_a
                self.k_b.x.array[cells] = mat.conductivity_b
            self.εσ.value = materials.emissivity * STEFAN_BOLTZMANN
            self.m = self._lumped_dg0({geo.JELLY: materials.jelly.volumetric_heat_capacity,
                                       geo.CASING: materials.casing.volumetric_heat_capacity})  # [J/K]
        if heat_transfer_coefficient is not None:
            self.h.value = float(heat_transfer_coefficient)
        self.kinetics = kinetics
        self.w_jelly = self._lumped_dg0({geo.JELLY: 1.0})  # [m³]
        self.vol = self._lumped_dg0({geo.JELLY: 1.0, geo.CASING: 1.0})  # [m³]
        self.area = self._lumped(self.boundary_form)  # [m²]
        self.heater = self._lumped(self.heater_form)
        self.heater_area = self._gsum(self.heater[: self.n_owned])
        self.volume = self._gsum(self.vol[: self.n_owned])
        self.jdofs = np.flatnonzero(self.w_jelly > 0.0)
        self._clear_solvers()
        return self

    def _clear_solvers(self):
        for A, ksp in self._solvers.values():
            ksp.destroy()
            A.destroy()
        self._solvers = {}

    def _solver(self, dt: float) -> PETSc.KSP:
        """KSP for step dt (matrix assembled and factorised once per dt unless matrix='reassemble')."""
        key = dt if self.matrix_policy == "once" else "any"
        if key in self._solvers and self.matrix_policy == "once":
            return self._solvers[key][1]
        self.Δt.value = dt
        if key in self._solvers:  # reassemble into the existing matrix, refactorise
            A, ksp = self._solvers[key]
            A.zeroEntries()
            fem_petsc.assemble_matrix(A, self.a_form)
            A.assemble()
            ksp.setOperators(A)
            return ksp
        if len(self._solvers) >= 24:
            self._clear_solvers()
        A = fem_petsc.assemble_matrix(self.a_form)
        A.assemble()
        ksp = PETSc.KSP().create(self.comm)
        ksp.setOperators(A)
        opts = PETSc.Options()
        for k, val in self.petsc_options.items():
            opts[f"{self.prefix}{k}"] = val
        ksp.setOptionsPrefix(self.prefix)
        ksp.setFromOptions()
        self._solvers[key] = (A, ksp)
        return ksp

    # ----------------------------------------------------------------------------------------------
    def _set_source(self, center, radius: float) -> np.ndarray:
        """Normalised source vector b_j = ∫ s φ_j dV with Σ_j b_j = ∫ s dV = 1."""
        c = np.zeros(3)
        c[: len(center)] = center
        self.s.interpolate(lambda x: np.exp(-((x[0] - c[0]) ** 2 + (x[1] - c[1]) ** 2 + (x[2] - c[2]) ** 2)
                                            / (2.0 * radius**2)))
        vec = self._lumped(self.source_form)
        total = self._gsum(vec[: self.n_owned])
        if not total > 0:
            raise ValueError(f"internal-short source at {list(center)} with radius {radius} m is not resolved "
                             f"by the mesh (h_min = {self.tm.h_min():.2e} m): increase the radius or refine")
        return vec / total

    def _kinetic_half_step(self, state, dt: float):
        """Advance the kinetics at fixed T over dt; add their heat to T. Returns (state, E [J])."""
        if self.kinetics is None or dt == 0.0:
            return state, 0.0
        j = self.jdofs
        new, released = self.kinetics.advance(self.T.x.array[j], state, dt)  # [J/m³]
        E = released * self.w_jelly[j]  # [J]
        self.T.x.array[j] += E / self.m[j]
        return new, self._gsum(E[j < self.n_owned])

    # ----------------------------------------------------------------------------------------------
    def run(self, t_end: float, *, temperature_initial: float = 298.15,
            ambient: float | Callable[[float], float] = 298.15,
            heater_power=None, source_power=None, source_center=None, source_radius: float = 1.0e-3,
            probes: Mapping[str, np.ndarray] | None = None, output_times: np.ndarray | None = None,
            kinetic_state: Mapping[str, np.ndarray] | None = None) -> xr.Dataset:
        """Simulate from a uniform initial temperature to ``t_end``.

        Parameters
        ----------
        t_end : float
            End time [s].
        temperature_initial : float
            Uniform initial temperature [K].
        ambient : float or callable t → K
            Ambient/oven temperature T∞(t) [K] (convection and radiation).
        heater_power : float, callable t → W, or (times, powers), optional
            Heater power [W] spread uniformly over the ``HEATER`` facets (a band on cylinders).
        source_power : float, callable t → W, or (times, powers), optional
            Internal-short / nail power [W] deposited by a normalised Gaussian of standard deviation
            ``source_radius`` [m] around ``source_center`` (gdim,) [m] (default: cell centre).
        probes : dict name → (gdim,) [m], optional
            Thermocouple positions (default: the mesh's named probes).
        output_times : array (n_time,) [s], optional
            Fixed output grid (default 201 points on [0, t_end]); values between accepted steps are
            interpolated linearly in time.
        kinetic_state : dict, optional
            Initial kinetic state at the jelly dofs (default ``kinetics.initial``).

        Returns
        -------
        xr.Dataset
            ``temperature_probe`` (time, probe) [K], ``temperature_max``, ``temperature_mean``,
            ``temperature_ambient`` (time) [K], ``heat_release_rate`` (time) [W] (kinetic, step-mean),
            scalars ``thermal_runaway``, ``time_to_runaway`` [s], ``temperature_peak`` [K],
            ``heat_released_total`` [J] (kinetics + internal short), the energy budget
            (``heat_kinetics_total``, ``heat_short_total``, ``heat_heater_total``, ``heat_lost_total``,
            ``internal_energy_change``, ``energy_balance_residual`` [J]) and ``n_steps``; identical on
            every MPI rank.
        """
        ctl = self.control
        t_end = float(t_end)
        grid = np.linspace(0.0, t_end, 201) if output_times is None else np.asarray(output_times, dtype=float)
        amb = ambient if callable(ambient) else (lambda t, _a=float(ambient): _a)
        heater = PowerSeries(heater_power) if heater_power is not None else None
        source = PowerSeries(source_power) if source_power is not None else None
        if heater is not None and not self.heater_area > 0:
            raise ValueError("this mesh has no HEATER facets; set a heater_length/heater_size in its spec")
        # Σ_j heater_j / |Γ_h| = 1: an energy E enters the right-hand side as E · b_heater [J]
        b_heater = None if heater is None else self.heater / self.heater_area
        if source is not None:
            if source_center is None:
                spec = self.tm.spec
                source_center = ((0.0, spec.height / 2) if self.tm.axisymmetric
                                 else (spec.length / 2, spec.width / 2, spec.thickness / 2))
            b_source = self._set_source(np.asarray(source_center, dtype=float), float(source_radius))
        probes = dict(self.tm.probes if probes is None else probes)
        probe = Probes(self.tm.mesh, np.array(list(probes.values())))

        # --- initial state --------------------------------------------------------------------------
        self.T.x.array[:] = float(temperature_initial)
        self.T_n.x.array[:] = float(temperature_initial)
        n_j = len(self.jdofs)
        state = None
        if self.kinetics is not None:
            state = ({k: np.asarray(v, dtype=float).copy() for k, v in kinetic_state.items()}
                     if kinetic_state is not None else self.kinetics.initial((n_j,)))
        owned = slice(0, self.n_owned)
        m_owned = self.m[owned]
        U0 = self._gsum(m_owned * self.T.x.array[owned])  # ∫ρc T dV [J]
        heat_capacity = self._gsum(m_owned)  # ∫ρc dV [J/K]: the whole cell's, for the runaway rate
        # explicit-radiation stability: dt · h_rad / (m_j / a_j) ≤ 1/2 on boundary dofs
        bnd = self.area[owned] > 0
        cap_per_area = self.comm.allreduce(float(np.min(m_owned[bnd] / self.area[owned][bnd])) if np.any(bnd)
                                           else np.inf, op=MPI.MIN)  # [J/(m² K)]

        rec_t, rec_probe, rec_max, rec_mean, rec_amb, rec_q = [], [], [], [], [], []

        def record(t, q_kin):
            rec_t.append(t)
            rec_probe.append(probe(self.T))
            rec_max.append(self._gmax(self.T.x.array[owned]))
            rec_mean.append(self._gsum(self.vol[owned] * self.T.x.array[owned]) / self.volume)
            rec_amb.append(float(amb(t)))
            rec_q.append(q_kin)

        record(0.0, 0.0)
        E_kin = E_short = E_heater = E_loss = 0.0
        t, n_steps, n_rejected = 0.0, 0, 0
        t_runaway = math.nan
        k0 = max(0, math.ceil(math.log2(ctl.dt_max / ctl.dt_initial)))
        dt = ctl.dt_max / 2**k0
        T_peak = T_surface = float(temperature_initial)
        clock = _time.perf_counter()
        while t < t_end * (1.0 - 1e-12):
            dt_try = dt
            # radiation lagged explicitly: keep dt below the single-dof stability limit
            # Δt h_rad ≤ min_j m_j / a_j (conservative: the implicit conduction couples the dofs)
            T_hi, T_a = max(T_surface, float(amb(t))), float(amb(t))
            h_rad = float(self.εσ.value) * (T_hi**2 + T_a**2) * (T_hi + T_a)  # [W/(m² K)]
            while h_rad * dt_try > cap_per_area and dt_try > ctl.dt_min:
                dt_try /= 2.0
            dt_try = min(dt_try, t_end - t)
            T_save = self.T.x.array.copy()
            state_save = state
            # 1. kinetics Δt/2
            state, e1 = self._kinetic_half_step(state, 0.5 * dt_try)
            # 2. conduction Δt (backward Euler); Tⁿ = T after the kinetic half step
            self.T_n.x.array[:] = self.T.x.array
            self.T_inf.value = float(amb(t + dt_try))
            ksp = self._solver(dt_try)
            self.Δt.value = dt_try
            with self.b.localForm() as loc:
                loc.set(0.0)
            fem_petsc.assemble_vector(self.b, self.L_form)
            self.b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
            e_heater = heater.energy(t, t + dt_try) if heater is not None else 0.0
            e_short = source.energy(t, t + dt_try) if source is not None else 0.0
            with self.b.localForm() as loc:  # F_h, F_s: energies [J] spread by normalised weights
                if e_heater:
                    loc.array[:] += e_heater * b_heater
                if e_short:
                    loc.array[:] += e_short * b_source
            # ghost entries of b are ignored by the solve (owned rows only)
            ksp.solve(self.b, self.T.x.petsc_vec)
            reason = ksp.getConvergedReason()
            if reason <= 0:
                raise SimulationError(f"conduction solve failed at t = {t:.4g} s (KSP reason {reason})")
            self.T.x.scatter_forward()
            e_loss = dt_try * self.comm.allreduce(fem.assemble_scalar(self.loss_form), op=MPI.SUM)
            # 3. kinetics Δt/2
            state, e2 = self._kinetic_half_step(state, 0.5 * dt_try)

            T_now = self.T.x.array[owned]
            change = self._gmax(np.abs(T_now - T_save[owned]))
            finite = math.isfinite(change)
            if (not finite or change > ctl.dT_step) and dt_try > ctl.dt_min * (1.0 + 1e-9):
                self.T.x.array[:] = T_save
                state = state_save
                dt = max(dt_try / 2.0, ctl.dt_min)
                n_rejected += 1
                continue
            if not finite:
                raise SimulationError(f"non-finite temperature at t = {t:.4g} s with dt = {dt_try:.3g} s")
            # accept
            t += dt_try
            n_steps += 1
            E_kin += e1 + e2
            E_heater += e_heater
            E_short += e_short
            E_loss += e_loss
            T_peak = max(T_peak, self._gmax(T_now))
            if math.isnan(t_runaway) and (e1 + e2) / (dt_try * heat_capacity) > ctl.runaway_rate:
                t_runaway = t
            record(t, (e1 + e2) / dt_try)
            T_surface = self._gmax(T_now[bnd])
            if change < 0.25 * ctl.dT_step:
                dt = min(2.0 * dt, ctl.dt_max)
        wall = _time.perf_counter() - clock

        U1 = self._gsum(m_owned * self.T.x.array[owned])
        residual = (U1 - U0) - (E_kin + E_short + E_heater - E_loss)

        rec_t = np.asarray(rec_t)

        def on_grid(values):
            values = np.asarray(values)
            if values.ndim == 1:
                return np.interp(grid, rec_t, values)
            return np.stack([np.interp(grid, rec_t, values[:, i]) for i in range(values.shape[1])], axis=1)

        names = list(probes)
        coords = {"time": grid, "probe": names}
        for i, axis in enumerate(("r", "z") if self.tm.axisymmetric else ("x", "y", "z")):
            coords[f"probe_{axis}"] = ("probe", np.array([probes[n][i] for n in names], dtype=float))
        ds = xr.Dataset(
            {
                "temperature_probe": (("time", "probe"), on_grid(rec_probe)),
                "temperature_max": ("time", on_grid(rec_max)),
                "temperature_mean": ("time", on_grid(rec_mean)),
                "temperature_ambient": ("time", on_grid(rec_amb)),
                "heat_release_rate": ("time", on_grid(rec_q)),
                "thermal_runaway": ((), bool(np.isfinite(t_runaway))),
                "time_to_runaway": ((), t_runaway),
                "temperature_peak": ((), T_peak),
                "heat_released_total": ((), E_kin + E_short),
                "heat_kinetics_total": ((), E_kin),
                "heat_short_total": ((), E_short),
                "heat_heater_total": ((), E_heater),
                "heat_lost_total": ((), E_loss),
                "internal_energy_change": ((), U1 - U0),
                "energy_balance_residual": ((), residual),
                "n_steps": ((), n_steps),
            },
            coords=coords,
            attrs={"n_rejected_steps": n_rejected, "solve_wall_time": wall, "mpi_size": self.comm.size,
                   "time_integration": "Strang splitting: exact kinetics ½Δt | backward Euler conduction Δt | "
                                       "kinetics ½Δt; radiation explicit (lagged)",
                   "matrix": self.matrix_policy},
        )
        return attach_units(ds, META)


META = {
    "time": ("s", "time since trigger start"),
    "probe": ("1", "thermocouple name"),
    "probe_r": ("m", "probe radial position"),
    "probe_z": ("m", "probe axial position"),
    "probe_x": ("m", "probe x position"),
    "probe_y": ("m", "probe y position"),
    "temperature_probe": ("K", "temperature at thermocouple positions"),
    "temperature_max": ("K", "maximum temperature in the cell"),
    "temperature_mean": ("K", "volume-mean temperature of the cell"),
    "temperature_ambient": ("K", "ambient (oven) temperature"),
    "heat_release_rate": ("W", "kinetic heat release rate (mean over the time step)"),
    "heat_kinetics_total": ("J", "heat released by the decomposition reactions"),
    "heat_short_total": ("J", "heat deposited by the internal short / nail source"),
    "heat_heater_total": ("J", "heat delivered by the heater patch"),
    "heat_lost_total": ("J", "heat lost to the surroundings by convection and radiation"),
    "internal_energy_change": ("J", "change of the cell's sensible heat ∫ρc (T_end - T_0) dV"),
    "energy_balance_residual": ("J", "internal energy change minus (released + supplied - lost)"),
    "n_steps": ("1", "accepted time steps"),
}


# ==================================================================================================
# Simulators (the `Simulator` contract)
# ==================================================================================================
_KINETIC_PARAMETERS = tuple(
    Parameter(f"log_A_{r}", "1", Prior("normal", mu=0.0, sigma=0.5),
              f"natural-log multiplier of the {r} frequency factor",
              "Hatchard et al., J. Electrochem. Soc. 148 (2001) A755 (nominal A)")
    for r in ("sei", "anode", "cathode", "electrolyte")
)
_COMMON_PARAMETERS = (
    Parameter("specific_heat_jelly", "J/(kg K)", Prior("uniform", low=850.0, high=1300.0),
              "specific heat capacity of the jelly roll", "Steinhardt et al., J. Power Sources 522 (2022) 230829"),
    Parameter("heat_transfer_coefficient", "W/(m2 K)", Prior("loguniform", low=5.0, high=30.0),
              "convective heat transfer coefficient of the outer surface",
              "natural/forced convection in ovens and calorimeters (Hatchard 2001 use 7.17)"),
)
_CONDITIONS = (
    Condition("soc", "1", 1.0, "state of charge", (0.0, 1.0)),
    Condition("temperature_initial", "K", 298.15, "initial cell temperature", (230.0, 350.0)),
    Condition("temperature_oven", "K", 428.15, "oven temperature (trigger 'oven')", (250.0, 700.0)),
    # the range of `lumped_thermal`'s condition of the same name; the default is a step, Hatchard et al.'s oven
    Condition("oven_ramp_rate", "K/s", 100.0, "oven heating rate before the hold (trigger 'oven')", (1e-4, 100.0)),
    Condition("heater_power", "W", 20.0, "heater power (trigger 'heater')", (0.0, 1000.0)),
    Condition("heater_duration", "s", 1800.0, "heater on-time (trigger 'heater')", (0.0, 1e5)),
)


@dataclass
class _FEThermalBase(Simulator):
    """Shared options and `_run` of the FE thermal-abuse simulators.

    Options: ``resolution`` ("coarse" | "medium" | "fine", or cell counts per direction), ``t_end`` [s], ``n_time``
    (output grid length), ``trigger`` ("oven" | "heater"), ``kinetics`` (set name), ``matrix`` ("once" |
    "reassemble"), ``dt_max`` [s], ``dT_step`` [K], ``runaway_rate`` [K/s].
    """

    resolution: str | tuple[int, ...] = "coarse"
    t_end: float = 3600.0
    n_time: int = 121
    trigger: str = "oven"
    kinetics: str = "hatchard2001"
    matrix: str = "once"
    dt_max: float = 16.0
    dT_step: float = 10.0
    runaway_rate: float = RUNAWAY_RATE
    _problem: ThermalAbuseProblem | None = field(default=None, init=False, repr=False, compare=False)

    _spec = None
    _materials_default = CYLINDRICAL

    def __post_init__(self):
        if self.trigger not in ("oven", "heater"):
            raise ValueError(f"{self.name}: trigger must be 'oven' or 'heater', got {self.trigger!r}")
        if isinstance(self.resolution, (list, tuple)):
            self.resolution = tuple(int(n) for n in self.resolution)
            if len(self.resolution) != len(self._spec.cells["coarse"]) or min(self.resolution) < 1:
                raise ValueError(f"{self.name}: resolution must be one of {geo.RESOLUTIONS} or "
                                 f"{len(self._spec.cells['coarse'])} positive cell counts, got {self.resolution!r}")
        elif self.resolution not in geo.RESOLUTIONS:
            raise ValueError(f"{self.name}: resolution must be one of {geo.RESOLUTIONS}, got {self.resolution!r}")

    def refined(self, factor: float) -> "_FEThermalBase":
        """This model with cells per mesh direction × ``factor`` and its step controls (``dt_max``, ``dT_step``) /
        ``factor`` (`risk.convergence`)."""
        from dataclasses import replace

        cells = self._spec.cells[self.resolution] if isinstance(self.resolution, str) else self.resolution
        return replace(self, resolution=tuple(max(1, round(n * factor)) for n in cells),
                       dt_max=self.dt_max / factor, dT_step=self.dT_step / factor)

    def _materials(self, theta) -> CellMaterials:
        raise NotImplementedError

    def problem(self) -> ThermalAbuseProblem:
        """The (cached) FE problem of this simulator's mesh."""
        if self._problem is None:
            ctl = StepControl(dt_max=self.dt_max, dT_step=self.dT_step, runaway_rate=self.runaway_rate)
            self._problem = ThermalAbuseProblem(geo.build(self._spec, self.resolution), self._materials_default,
                                                control=ctl, matrix=self.matrix)
        return self._problem

    def _run(self, theta: dict[str, float], condition: dict[str, float]) -> xr.Dataset:
        from simulators.kinetics import load

        ks = load(self.kinetics).at_soc(condition["soc"])
        ks = ks.with_(log_A={r.name: theta.get(f"log_A_{r.name}", 0.0) for r in ks.reactions})
        problem = self.problem().configure(self._materials(theta), ks, theta["heat_transfer_coefficient"])
        T0 = condition["temperature_initial"]
        kw = {}
        if self.trigger == "oven":
            rise, rate = condition["temperature_oven"] - T0, condition["oven_ramp_rate"]
            kw["ambient"] = lambda t: T0 + min(rate * t, rise) if rise > 0 else T0 + rise * (t > 0)
        else:
            kw["ambient"] = T0
            d, P = condition["heater_duration"], condition["heater_power"]
            kw["heater_power"] = (np.array([0.0, d, d]), np.array([P, P, 0.0]))
        ds = problem.run(self.t_end, temperature_initial=T0, output_times=np.linspace(0.0, self.t_end, self.n_time), **kw)
        ds.attrs.update(trigger=self.trigger, kinetics=ks.name, resolution=self.resolution)
        return ds


@register
@dataclass
class FEThermal18650(_FEThermalBase):
    """18650 cell, 2D axisymmetric FE with can, orthotropic jelly roll and runaway kinetics (oven/heater)."""

    name = "fe_thermal_18650"
    parameters = (
        Parameter("conductivity_radial", "W/(m K)", Prior("loguniform", low=0.15, high=1.0),
                  "jelly-roll conductivity across the windings", "Drake et al., J. Power Sources 252 (2014) 298"),
        Parameter("conductivity_axial", "W/(m K)", Prior("loguniform", low=15.0, high=40.0),
                  "jelly-roll conductivity along the windings", "Drake et al., J. Power Sources 252 (2014) 298"),
        *_COMMON_PARAMETERS, *_KINETIC_PARAMETERS,
    )
    conditions = _CONDITIONS
    _spec = geo.CELL_18650

    def _materials(self, theta):
        m = self._materials_default
        return m.with_(jelly=m.jelly.with_(conductivity_a=theta["conductivity_radial"],
                                           conductivity_b=theta["conductivity_axial"],
                                           specific_heat=theta["specific_heat_jelly"]))


@register
@dataclass
class FEThermal21700(FEThermal18650):
    """21700 cell (same model as `FEThermal18650`)."""

    name = "fe_thermal_21700"
    _spec = geo.CELL_21700


@register
@dataclass
class FEThermalPouch(_FEThermalBase):
    """Pouch cell, 3D FE, orthotropic stack (in-plane vs through-plane) with runaway kinetics (oven/heater)."""

    name = "fe_thermal_pouch"
    parameters = (
        Parameter("conductivity_in_plane", "W/(m K)", Prior("loguniform", low=15.0, high=35.0),
                  "stack conductivity along the layers", "Steinhardt et al., J. Power Sources 522 (2022) 230829"),
        Parameter("conductivity_through_plane", "W/(m K)", Prior("loguniform", low=0.2, high=1.5),
                  "stack conductivity across the layers", "Steinhardt et al., J. Power Sources 522 (2022) 230829"),
        *_COMMON_PARAMETERS, *_KINETIC_PARAMETERS,
    )
    conditions = _CONDITIONS
    _spec = geo.POUCH_20AH
    _materials_default = POUCH

    def _materials(self, theta):
        m = self._materials_default
        return m.with_(jelly=m.jelly.with_(conductivity_a=theta["conductivity_in_plane"],
                                           conductivity_b=theta["conductivity_through_plane"],
                                           specific_heat=theta["specific_heat_jelly"]))


def default_theta(sim: Simulator) -> dict[str, float]:
    """Prior medians of a simulator's parameters (handy for smoke runs)."""
    return {p.name: float(p.prior.ppf(0.5)) for p in sim.parameters}


def theta_at_lumped_inputs(sim: _FEThermalBase, cell, lumped_theta: Mapping[str, float] | None = None
                           ) -> dict[str, float]:
    """θ of an FE cylinder at a lumped cell's inputs (`simulators.lumped.LumpedThermal`, cell ``cell``: a
    `simulators.cells.CellFormat`), the map the oven study's FE-vs-lumped check and Hatchard's oven case use:

    - the kinetic rate multipliers ``log_A_*`` as in ``lumped_theta`` (prior medians, 0, without it);
    - ``h_conv`` → ``heat_transfer_coefficient`` (the cell's ``h_conv`` without it);
    - the jelly roll at the lumped cell's volumetric heat capacity m c_p / V [J/(m³ K)] × ``heat_capacity_factor``
      (→ ``specific_heat_jelly`` at the FE jelly roll's density); the can keeps its steel's;
    - everything else (conductivities) at the FE prior medians."""
    lumped_theta = dict(lumped_theta or {})
    if cell.form != "cylindrical":
        raise ValueError(f"{cell.name}: the FE cylinder maps a cylindrical lumped cell, not a {cell.form} one")
    rho_cp = cell.mass * cell.cp / (math.pi * cell.dims[0] ** 2 / 4 * cell.dims[1])
    theta = default_theta(sim)
    theta.update({k: float(v) for k, v in lumped_theta.items() if k.startswith("log_A_") and k in theta})
    theta["heat_transfer_coefficient"] = float(lumped_theta.get("h_conv", cell.h_conv))
    theta["specific_heat_jelly"] = (float(lumped_theta.get("heat_capacity_factor", 1.0)) * rho_cp
                                    / sim._materials_default.jelly.density)
    return theta
