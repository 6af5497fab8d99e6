r"""Crushable-foam plasticity of a jelly roll (homogenised electrode stack): return mapping and consistent
tangent at many material points, in JAX, for an FE solve through dolfinx-external-operator.

Kinematics. Small strain, additive split ε = εᵉ + εᵖ. The FE applies the same law in logarithmic
strain space, ε = ½ ln(FᵀF) (Miehe, Apel, Lambrecht, Comput. Methods Appl. Mech. Engrg. 191 (2002) 5383),
which is why the kernel takes *total* strains and stores εᵖ. Tensors are Mandel vectors (shear × √2),
so σ:ε = σ·ε and norms are Euclidean::

    dim 4, axisymmetric:  (rr, zz, θθ, √2 rz)        dim 6, 3D:  (xx, yy, zz, √2 yz, √2 zx, √2 xy)

z is the stack normal (through the electrode layers); p, p' are the in-plane directions.

Elasticity, transversely isotropic about z (compliance S = C⁻¹)::

    ε_pp = (σ_pp − ν_p σ_p'p')/E_p − ν_zp σ_zz/E_z,     ε_zz = σ_zz/E_z − ν_zp (σ_pp + σ_p'p')/E_z,
    σ = 2 G_zp ε  (rz; yz, zx),     σ = 2 G_p ε  (xy),   G_p = E_p/(2(1 + ν_p)),

ν_zp = −ε_pp/ε_zz in uniaxial stress along z. C is positive definite iff E_p, E_z, G_zp > 0, |ν_p| < 1
and ν_zp² < (1 − ν_p) E_z/(2 E_p). Isotropic: E_p = E_z, ν_p = ν_zp, G_zp = E/(2(1 + ν)).

Yield, self-similar crushable foam (Deshpande & Fleck, J. Mech. Phys. Solids 48 (2000) 1253)::

    σ̂² = (q² + α² p²)/(1 + (α/3)²) = σ·Pσ,   P = [3/2 P_dev + α²/9 1⊗1] / (1 + (α/3)²),
    q² = 3/2 s·s,  p = 1·σ/3,  α² = 9(1 − 2ν^p)/(2(1 + ν^p)),  −1 < ν^p < 1/2,
    Φ = σ̂ − Y(ε̂) ≤ 0,   Y(ε̂) = Y₀ + B ε̂ⁿ + D (exp(ε̂/ε_D) − 1),   n ≥ 1.

ν^p is the plastic Poisson ratio (−ε̇ᵖ_lateral/ε̇ᵖ_axial in uniaxial stress). Jelly rolls: ν^p ≈ 0
(α = 3/√2), the crushable foam of Sahraei, Hill, Wierzbicki, J. Power Sources 201 (2012) 307. The power
law B ε̂ⁿ is the stack compaction; the densification term D (off by default) is an assumption (a smooth,
finite lock-up stiffening), not from a reference.

Flow, associated and work-conjugate: Δεᵖ = Δγ Pσ/σ̂, so σ·Δεᵖ = σ̂ Δγ and Δε̂ = Δγ.

Return mapping (backward Euler; Simo & Hughes, Computational Inelasticity, Springer 1998). Trial
σ_tr = C(ε − εᵖ_n); elastic if Φ(σ_tr, ε̂_n) ≤ 0. Otherwise σ = (I + x CP)⁻¹ σ_tr with x = Δγ/Y = Δγ/σ̂.
With C = LLᵀ, LᵀPL = QΛQᵀ and τ = QᵀL⁻¹σ_tr::

    σ(x) = LQ τ/(1 + xλ),    σ̂(x)² = Σᵢ λᵢ τᵢ²/(1 + xλᵢ)²,    g(x) = σ̂(x) − Y(ε̂_n + x σ̂(x)) = 0.

g falls strictly from g(0) = Φ_tr > 0 and changes sign in [0, (σ̂_tr/Y(ε̂_n) − 1)/λ_min]; Newton safeguarded
by bisection in that bracket (`jax.lax.while_loop`) finds the root. Then Δγ = x σ̂, ε̂ = ε̂_n + Δγ,
εᵖ = εᵖ_n + S(σ_tr − σ).

Consistent tangent (Simo & Taylor, Comput. Methods Appl. Mech. Engrg. 48 (1985) 101): dσ/dε by
`jax.jacfwd` of the whole update (as in the dolfinx-external-operator JAX demos). The loop runs on
`stop_gradient` inputs and one last Newton step x ← x* − g(x*; ε)/g'(x*) carries the derivative, so the
tangent is the implicit-function derivative at the root, dx/dε = −(∂g/∂ε)/g', not that of the iterates.

Float64: every public function runs in ``jax.enable_x64(True)`` (the repository's convention; no global
JAX flag is set). Use in dolfinx-external-operator, per global Newton iteration::

    up = stress_update(eps.reshape(-1, 4), eps_p_n, eps_hat_n, params)
    return up.tangent.reshape(-1), up.stress.reshape(-1)

and commit ``up.plastic_strain``, ``up.equivalent_plastic_strain`` as history once the step converged.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

#: numerics of the return mapping (relative to Y(ε̂_n)) and of the mixed-control path drivers, in one place
NUMERICS = {"return_rtol": 1e-12, "return_max_iter": 60, "path_rtol": 1e-12, "path_max_iter": 25}

#: Mandel index layout per dimension: in-plane normals, stack normal, transverse shears, in-plane shear
_LAYOUT = {
    4: dict(plane=(0, 2), normal=1, shear_normal=(3,), shear_plane=()),
    6: dict(plane=(0, 1), normal=2, shear_normal=(3, 4), shear_plane=(5,)),
}


@dataclass(frozen=True)
class FoamParameters:
    """Material parameters of the jelly-roll crushable foam (module docstring for the equations).

    Parameters
    ----------
    modulus_normal : E_z, through-thickness Young's modulus [Pa]
    modulus_plane : E_p, in-plane Young's modulus [Pa]
    poisson_ratio_plane : ν_p, in-plane Poisson ratio [1]
    poisson_ratio_normal : ν_zp = −ε_pp/ε_zz in uniaxial stress along z [1]
    shear_modulus_normal : G_zp, transverse (rz, yz, zx) shear modulus [Pa]
    yield_stress : Y₀, initial yield stress [Pa]
    hardening_modulus : B [Pa];  hardening_exponent : n ≥ 1 [1]
    poisson_ratio_plastic : ν^p, plastic Poisson ratio, −1 < ν^p < 1/2 [1] (0 for jelly rolls)
    densification_modulus : D [Pa] (0: off);  densification_strain : ε_D > 0 [1]
    """

    modulus_normal: float
    modulus_plane: float
    poisson_ratio_plane: float
    poisson_ratio_normal: float
    shear_modulus_normal: float
    yield_stress: float
    hardening_modulus: float
    hardening_exponent: float
    poisson_ratio_plastic: float = 0.0
    densification_modulus: float = 0.0
    densification_strain: float = 1.0

    def __post_init__(self):
        for name in ("modulus_normal", "modulus_plane", "shear_modulus_normal", "yield_stress"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"{name} = {v!r} must be finite and > 0 [Pa]")
        for name in ("hardening_modulus", "densification_modulus"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v >= 0):
                raise ValueError(f"{name} = {v!r} must be finite and >= 0 [Pa]")
        if not (np.isfinite(self.hardening_exponent) and self.hardening_exponent >= 1):
            raise ValueError(f"hardening_exponent = {self.hardening_exponent!r} must be finite and >= 1 "
                             "(finite hardening slope at ε̂ = 0)")
        if not (np.isfinite(self.densification_strain) and self.densification_strain > 0):
            raise ValueError(f"densification_strain = {self.densification_strain!r} must be finite and > 0")
        if not -1 < self.poisson_ratio_plane < 1:
            raise ValueError(f"poisson_ratio_plane = {self.poisson_ratio_plane!r} must lie in (-1, 1) "
                             "for a positive-definite stiffness")
        bound = np.sqrt((1 - self.poisson_ratio_plane) * self.modulus_normal / (2 * self.modulus_plane))
        if not abs(self.poisson_ratio_normal) < bound:
            raise ValueError(f"poisson_ratio_normal = {self.poisson_ratio_normal!r} makes the stiffness indefinite: "
                             f"need |ν_zp| < √((1 − ν_p) E_z/(2 E_p)) = {bound:.4g} for these moduli")
        if not -1 < self.poisson_ratio_plastic < 0.5:
            raise ValueError(f"poisson_ratio_plastic = {self.poisson_ratio_plastic!r} must lie in (-1, 0.5) "
                             "(α > 0: a closed yield surface in p)")

    @classmethod
    def isotropic(cls, modulus: float, poisson_ratio: float, **plastic) -> FoamParameters:
        """Isotropic elasticity (E [Pa], ν [1]) with the plastic parameters ``plastic`` (field names)."""
        return cls(modulus, modulus, poisson_ratio, poisson_ratio, modulus / (2 * (1 + poisson_ratio)), **plastic)

    @property
    def alpha(self) -> float:
        """Deshpande–Fleck shape factor α [1], α² = 9(1 − 2ν^p)/(2(1 + ν^p))."""
        ν = self.poisson_ratio_plastic
        return float(np.sqrt(9 * (1 - 2 * ν) / (2 * (1 + ν))))


class FoamUpdate(NamedTuple):
    """Result of `stress_update` at N points of Mandel dimension m."""

    stress: np.ndarray  #: (N, m) [Pa]
    tangent: np.ndarray  #: (N, m, m) consistent tangent dσ/dε [Pa]
    plastic_strain: np.ndarray  #: (N, m) updated εᵖ [1]
    equivalent_plastic_strain: np.ndarray  #: (N,) updated ε̂ [1]
    plastic: np.ndarray  #: (N,) bool, the step was plastic
    residual: np.ndarray  #: (N,) |Φ|/Y after the return (0 at elastic points) [1]
    iterations: np.ndarray  #: (N,) local Newton iterations


class FoamPath(NamedTuple):
    """A one-point strain path (`uniaxial_stress_path`, `uniaxial_strain_path`), K steps, dimension m."""

    strain: np.ndarray  #: (K, m) total strain [1]
    stress: np.ndarray  #: (K, m) [Pa]
    plastic_strain: np.ndarray  #: (K, m) [1]
    equivalent_plastic_strain: np.ndarray  #: (K,) [1]


def stiffness(params: FoamParameters, dim: int = 4) -> np.ndarray:
    """Transversely isotropic elastic stiffness C, Mandel (dim, dim) [Pa]; dim 4 (axisymmetric) or 6 (3D)."""
    lay = _layout(dim)
    Ez, Ep = params.modulus_normal, params.modulus_plane
    νp, νzp = params.poisson_ratio_plane, params.poisson_ratio_normal
    S = np.zeros((dim, dim))
    idx = [*lay["plane"], lay["normal"]]
    S[np.ix_(idx, idx)] = [[1 / Ep, -νp / Ep, -νzp / Ez],
                           [-νp / Ep, 1 / Ep, -νzp / Ez],
                           [-νzp / Ez, -νzp / Ez, 1 / Ez]]
    for k in lay["shear_normal"]:
        S[k, k] = 1 / (2 * params.shear_modulus_normal)
    for k in lay["shear_plane"]:
        S[k, k] = (1 + νp) / Ep
    return np.linalg.inv(S)


def yield_metric(params: FoamParameters, dim: int = 4) -> np.ndarray:
    """Deshpande–Fleck metric P, σ̂² = σ·Pσ, Mandel (dim, dim) [1]."""
    _layout(dim)
    one = np.r_[np.ones(3), np.zeros(dim - 3)]
    dev = np.eye(dim) - np.outer(one, one) / 3
    a2 = params.alpha**2
    return (1.5 * dev + a2 / 9 * np.outer(one, one)) / (1 + a2 / 9)


def equivalent_stress(stress, params: FoamParameters) -> np.ndarray:
    """Deshpande–Fleck equivalent stress σ̂ [Pa] of Mandel stresses ``stress`` (..., m) [Pa]; shape (...)."""
    σ = np.asarray(stress, dtype=float)
    return np.sqrt(np.einsum("...i,ij,...j->...", σ, yield_metric(params, σ.shape[-1]), σ))


def flow_stress(equivalent_plastic_strain, params: FoamParameters) -> np.ndarray:
    """Current yield stress Y(ε̂) [Pa] of the equivalent plastic strain ε̂ ≥ 0 [1]; shape of the input."""
    with jax.enable_x64(True):
        return np.asarray(_hardening(jnp.asarray(equivalent_plastic_strain, dtype=float), _material(params, 4)))


def stress_update(strain, plastic_strain, equivalent_plastic_strain, params: FoamParameters) -> FoamUpdate:
    """Return mapping and consistent tangent at N material points (one jitted, vmapped call).

    Parameters
    ----------
    strain : (N, m) total Mandel strain at the end of the step [1]; m = 4 (rr, zz, θθ, √2 rz) or 6.
        An incremental caller passes ε_n + Δε.
    plastic_strain : (N, m) εᵖ at the start of the step [1] (history)
    equivalent_plastic_strain : (N,) ε̂ at the start of the step [1] (history)
    params : FoamParameters

    Returns
    -------
    FoamUpdate with stress (N, m) [Pa], tangent (N, m, m) [Pa], the updated history and diagnostics
    (``residual`` ≤ NUMERICS["return_rtol"] when the local Newton converged). Recompiles once per (N, m).
    """
    ε = np.asarray(strain, dtype=float)
    εp = np.asarray(plastic_strain, dtype=float)
    ε̂ = np.asarray(equivalent_plastic_strain, dtype=float)
    if ε.ndim != 2 or ε.shape[1] not in _LAYOUT:
        raise ValueError(f"strain must have shape (N, 4) or (N, 6), got {ε.shape}")
    if εp.shape != ε.shape or ε̂.shape != ε.shape[:1]:
        raise ValueError(f"plastic_strain {εp.shape} must match strain {ε.shape} and "
                         f"equivalent_plastic_strain {ε̂.shape} must be ({ε.shape[0]},)")
    with jax.enable_x64(True):
        tangent, (σ, εp_new, ε̂_new, plastic, res, it) = _batched_update(_material(params, ε.shape[1]), ε, εp, ε̂)
        return FoamUpdate(np.asarray(σ), np.asarray(tangent), np.asarray(εp_new), np.asarray(ε̂_new),
                          np.asarray(plastic), np.asarray(res), np.asarray(it))


def uniaxial_stress_path(strains, params: FoamParameters, dim: int = 4) -> FoamPath:
    """Uniaxial stress along the stack normal z from the virgin state, one point, step by step.

    ``strains`` (K,) are the successive axial strains ε_zz [1] (any sign, loading or unloading). Mixed
    control: every other stress component is driven to zero by Newton iterations on the free strains with
    the consistent tangent, |σ_free| ≤ NUMERICS["path_rtol"] · max(|σ_zz|, Y₀); RuntimeError if not reached.
    """
    return _path(strains, params, dim, lateral_free=True)


def uniaxial_strain_path(strains, params: FoamParameters, dim: int = 4) -> FoamPath:
    """Uniaxial strain (all strains but ε_zz zero; confined compaction) from the virgin state, one point.

    ``strains`` (K,) are the successive axial strains ε_zz [1]; strain-driven, no iteration needed.
    """
    return _path(strains, params, dim, lateral_free=False)


# ---------------------------------------------------------------------------------------------------
# Kernel (pure JAX, one point; vmapped and jitted below)
# ---------------------------------------------------------------------------------------------------
class _Material(NamedTuple):
    """Arrays of one material (a pytree: parameters are traced, so changing them does not recompile)."""

    C: np.ndarray  # (m, m) stiffness [Pa]
    S: np.ndarray  # (m, m) compliance [1/Pa]
    T: np.ndarray  # (m, m) QᵀL⁻¹: τ = T σ
    R: np.ndarray  # (m, m) LQ: σ = R τ
    lam: np.ndarray  # (m,) eigenvalues λ of LᵀPL [Pa]
    Y0: float
    B: float
    n: float
    D: float
    eps_D: float


def _layout(dim: int) -> dict:
    if dim not in _LAYOUT:
        raise ValueError(f"dim = {dim!r} must be 4 (axisymmetric rr, zz, θθ, rz) or 6 (3D)")
    return _LAYOUT[dim]


@functools.lru_cache(maxsize=64)
def _material(params: FoamParameters, dim: int) -> _Material:
    C = stiffness(params, dim)
    L = np.linalg.cholesky(C)
    lam, Q = np.linalg.eigh(L.T @ yield_metric(params, dim) @ L)
    return _Material(C, np.linalg.inv(C), Q.T @ np.linalg.inv(L), L @ Q, lam, params.yield_stress,
                     params.hardening_modulus, params.hardening_exponent, params.densification_modulus,
                     params.densification_strain)


def _hardening(ε̂, m: _Material):
    """Y(ε̂) = Y₀ + B ε̂ⁿ + D (exp(ε̂/ε_D) − 1) [Pa]."""
    return m.Y0 + m.B * ε̂**m.n + m.D * jnp.expm1(ε̂ / m.eps_D)


def _g(x, τ, ε̂_n, m: _Material):
    """Consistency residual g(x) = σ̂(x) − Y(ε̂_n + x σ̂(x)) [Pa] and σ̂(x)."""
    σ̂ = jnp.sqrt(jnp.sum(m.lam * (τ / (1 + x * m.lam)) ** 2))
    return σ̂ - _hardening(ε̂_n + x * σ̂, m), σ̂


def _solve(τ, ε̂_n, hi, active, Y_n, m: _Material):
    """Root of g in [0, hi] by Newton safeguarded by bisection; returns (x, iterations)."""

    def value_slope(x):
        return jax.jvp(lambda x: _g(x, τ, ε̂_n, m)[0], (x,), (jnp.ones_like(x),))

    def cond(s):
        x, gx, dg, lo, hi, it = s
        return active & (jnp.abs(gx) > NUMERICS["return_rtol"] * Y_n) & (it < NUMERICS["return_max_iter"])

    def body(s):
        x, gx, dg, lo, hi, it = s
        x_newton = x - gx / dg
        x = jnp.where((x_newton > lo) & (x_newton < hi), x_newton, 0.5 * (lo + hi))
        gx, dg = value_slope(x)
        lo, hi = jnp.where(gx > 0, x, lo), jnp.where(gx > 0, hi, x)
        return x, gx, dg, lo, hi, it + 1

    x0 = jnp.zeros_like(hi)
    x, *_, it = jax.lax.while_loop(cond, body, (x0, *value_slope(x0), x0, hi, 0))
    return x, it


def _point_update(m: _Material, ε, εp_n, ε̂_n):
    """Stress at one point and, as auxiliary output, (σ, εᵖ, ε̂, plastic, |Φ|/Y, iterations)."""
    σ_tr = m.C @ (ε - εp_n)
    τ_tr = m.T @ σ_tr
    Y_n = _hardening(ε̂_n, m)
    σ̂_tr = jnp.sqrt(jnp.sum(m.lam * τ_tr**2))
    plastic = σ̂_tr > Y_n
    τ = jnp.where(plastic, τ_tr, 1.0)  # elastic points: any finite τ keeps the discarded branch finite
    hi = jnp.where(plastic, (σ̂_tr / Y_n - 1) / jnp.min(m.lam), 0.0)
    x_root, it = _solve(jax.lax.stop_gradient(τ), ε̂_n, jax.lax.stop_gradient(hi), plastic, Y_n, m)
    # one Newton step from the (derivative-free) root: carries dx/dε = −(∂g/∂ε)/g' into jacfwd
    gx, dg = jax.jvp(lambda x: _g(x, τ, ε̂_n, m)[0], (x_root,), (jnp.ones_like(x_root),))
    x = x_root - jnp.where(plastic, gx / jax.lax.stop_gradient(dg), 0.0)
    σ_pl = m.R @ (τ / (1 + x * m.lam))
    g_new, σ̂ = _g(x, τ, ε̂_n, m)
    ε̂_pl = ε̂_n + x * σ̂
    σ = jnp.where(plastic, σ_pl, σ_tr)
    εp = jnp.where(plastic, εp_n + m.S @ (σ_tr - σ_pl), εp_n)
    ε̂ = jnp.where(plastic, ε̂_pl, ε̂_n)
    residual = jnp.where(plastic, jnp.abs(g_new) / _hardening(ε̂_pl, m), 0.0)
    return σ, (σ, εp, ε̂, plastic, residual, it)


_batched_update = jax.jit(jax.vmap(jax.jacfwd(_point_update, argnums=1, has_aux=True), in_axes=(None, 0, 0, 0)))


# ---------------------------------------------------------------------------------------------------
# One-point path drivers
# ---------------------------------------------------------------------------------------------------
def _path(strains, params: FoamParameters, dim: int, lateral_free: bool) -> FoamPath:
    a = _layout(dim)["normal"]
    strains = np.asarray(strains, dtype=float).ravel()
    if strains.size == 0:
        raise ValueError("strains is empty: give the successive axial strains ε_zz of the path")
    free = [k for k in range(dim) if k != a] if lateral_free else []
    ε, εp, ε̂ = np.zeros(dim), np.zeros(dim), np.zeros(1)
    K = stiffness(params, dim)
    out = []
    for step, e_a in enumerate(strains):
        if free:  # predictor with the last tangent, zero free stresses to first order
            ε[free] -= np.linalg.solve(K[np.ix_(free, free)], K[free, a] * (e_a - ε[a]))
        ε[a] = e_a
        for _ in range(NUMERICS["path_max_iter"]):
            up = stress_update(ε[None], εp[None], ε̂, params)
            if up.residual[0] > NUMERICS["return_rtol"]:
                raise RuntimeError(f"return mapping did not converge at step {step} (|Φ|/Y = {up.residual[0]:.2e})")
            σ, K = up.stress[0], up.tangent[0]
            if not free or np.max(np.abs(σ[free])) <= NUMERICS["path_rtol"] * max(abs(σ[a]), params.yield_stress):
                break
            ε[free] -= np.linalg.solve(K[np.ix_(free, free)], σ[free])
        else:
            raise RuntimeError(f"uniaxial stress: lateral stresses {σ[free]} Pa not zeroed at step {step} "
                               f"(ε_zz = {e_a:g}); use smaller strain steps")
        εp, ε̂ = up.plastic_strain[0], up.equivalent_plastic_strain
        out.append((ε.copy(), σ, εp, ε̂[0]))
    strain, stress, plastic_strain, eq = (np.array(v) for v in zip(*out))
    return FoamPath(strain, stress, plastic_strain, eq)
