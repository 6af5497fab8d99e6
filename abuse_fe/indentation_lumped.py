"""Mesh-free indentation mechanics: declared parameters, the short-onset rule and a punch law fitted to the FE.

No dolfinx here: `abuse_fe.coupled.IndentationLumped` (``indentation_lumped``) and the calibration use
this module in processes that never load PETSc. The FE model is `abuse_fe.indentation`; the constitutive
law, contact and strain probe are documented there.
"""
from __future__ import annotations

import numpy as np

from simulators.base import Condition, Parameter
from simulators.priors import Prior

#: units and long names of every variable the indentation simulators write
#: shift [N] of the decoder's log scale of the onset force, log(F + shift) (`sim2real.bridge.Channel`). Across the
#: default study's prior the onset force spans 28 N – 125 kN (median 3 kN, sd 14.5 kN; the real tests 0.5–3 kN): on
#: the linear scale the decoder's own sd at the calibrated NMC 10 A h cells was 7.7 kN, a 90 % predictive interval of
#: −12 … +16 kN that no real force could fall outside (measured on the 2026-12-05 default run); 10 N is below every
#: simulated and measured onset force, so the scale is relative over the whole range
FORCE_LOG_SHIFT = 10.0

META: dict[str, tuple] = {
    "displacement": ("m", "indenter displacement (depth below first contact)"),
    "force_indenter": ("N", "indenter force"),
    "strain_separator_max": ("1", "maximum equivalent logarithmic strain in the cell"),
    "displacement_short_onset": ("m", "indenter displacement at internal-short onset"),
    "force_short_onset": ("N", "indenter force at internal-short onset",
                          {"transform": "log", "transform_shift": FORCE_LOG_SHIFT}),
    "contact_radius_short_onset": ("m", "punch contact radius at internal-short onset"),
}

# ---------------------------------------------------------------------------------------------------
# Parameters shared by the FE and the lumped (mesh-free) indentation models
# ---------------------------------------------------------------------------------------------------
MECHANICAL_PARAMETERS: tuple[Parameter, ...] = (
    Parameter(
        "modulus_cell", "Pa", Prior("loguniform", low=5.0e6, high=5.0e8),
        "small-strain out-of-plane Young's modulus of the homogenised cell",
        "Sahraei et al., J. Power Sources 201 (2012) 307; Lai et al., J. Power Sources 245 (2014) 609",
    ),
    Parameter(
        "hardening_modulus", "Pa", Prior("loguniform", low=1.0e7, high=3.0e9),
        "densification modulus B of the stress ≈ E ε + B εⁿ law",
        "Sahraei et al. 2012 (power-law compaction of jelly rolls)",
    ),
    Parameter(
        "hardening_exponent", "1", Prior("uniform", low=1.0, high=4.0),
        "densification exponent n",
        "Sahraei et al. 2012; Lai et al. 2014",
    ),
    Parameter(
        "strain_critical", "1", Prior("uniform", low=0.1, high=0.9),
        "critical equivalent strain for separator failure (internal short onset)",
        "Sahraei et al. 2012; Zhu, Wierzbicki, Li, J. Power Sources 378 (2018) 153",
    ),
)

MECHANICAL_CONDITIONS: tuple[Condition, ...] = (
    Condition("punch_radius", "m", 6.35e-3, "radius of the hemispherical punch", (1.0e-3, 30.0e-3)),
    Condition("cell_thickness", "m", 5.0e-3, "thickness of the cell under the punch", (1.0e-3, 40.0e-3)),
)


def lame(E: float, ν: float) -> tuple[float, float]:
    """Lamé constants (λ, μ) [Pa] of Young's modulus E [Pa] and Poisson ratio ν [1]."""
    return E * ν / ((1 + ν) * (1 - 2 * ν)), E / (2 * (1 + ν))


def short_onset(depth: np.ndarray, force: np.ndarray, strain: np.ndarray, strain_critical: float) -> tuple[float, float]:
    """First crossing of ``strain_critical`` along the path, linearly interpolated.

    Returns
    -------
    (displacement_short_onset [m], force_short_onset [N]); (NaN, NaN) if never reached.
    """
    ok = np.isfinite(strain)
    d, f, s = depth[ok], force[ok], strain[ok]
    above = np.nonzero(s >= strain_critical)[0]
    if above.size == 0:
        return float("nan"), float("nan")
    k = int(above[0])
    if k == 0:
        return float(d[0]), float(f[0])
    w = (strain_critical - s[k - 1]) / (s[k] - s[k - 1])
    return float(d[k - 1] + w * (d[k] - d[k - 1])), float(f[k - 1] + w * (f[k] - f[k - 1]))


# ---------------------------------------------------------------------------------------------------
# Mesh-free counterpart: a semi-analytic punch law calibrated on the FE model
# ---------------------------------------------------------------------------------------------------
#: coefficients (c₁, c₂, c₃, c₄) of `lumped_force` and (d₁, d₂, d₃, d₄) of `lumped_strain`, least-squares
#: fits (relative error) to 31 FE load paths (coarse mesh; Sobol design over E ∈ [5e6, 5e8] Pa,
#: B ∈ [1e7, 3e9] Pa, n ∈ [1, 4], R_p ∈ [3, 12] mm, H ∈ [3, 12] mm, ν = 0.1, 24 depths up to 0.6 H;
#: regenerate with ``benchmarks/fe_indentation.py --fit-lumped``). Agreement with the FE on that design:
#: force median 3.7 %, 90th percentile 12.5 %, max 35 % (at the shallowest depths);
#: strain median 4.1 %, 90th percentile 12.5 %, max 37 % (benchmarks/fe_indentation.py).
LUMPED_FORCE_COEFFS = (0.7154, 0.5153, 1.0284, 0.4495)
LUMPED_STRAIN_COEFFS = (0.10765, 0.48451, 1.32512, -0.035903)


def lumped_force(depth, modulus, hardening_modulus, hardening_exponent, punch_radius, thickness,
                 poisson_ratio: float = 0.1, coeffs=LUMPED_FORCE_COEFFS):
    """Punch force [N] of a hemispherical punch on a densifying layer (mesh-free, same parameters as the FE).

    A Winkler (thin-layer) integration of the uniaxial-strain law σ = M e + B eⁿ under the sphere,
    e(r) = (δ − r²/2R)/H, gives F_W = 2π R H [M e²/2 + B e^{n+1}/(n+1)] with e = δ/H; the load spread by
    shear beyond the contact edge (a Pasternak-type perimeter term) adds a factor ∝ H/a, a = √(2Rδ),
    which also recovers the Hertz scaling F ∝ √R δ^{3/2} for δ → 0:

        F = 2π R H [ M e²/2 (c₁ + c₂ H/a) + B e^{n+1}/(n+1) (c₃ + c₄ H/a) ],   M = λ + 2μ.

    Parameters
    ----------
    depth : array_like [m]; modulus E, hardening_modulus B [Pa]; hardening_exponent n [1];
    punch_radius R [m]; thickness H [m]; poisson_ratio ν [1].

    Returns
    -------
    numpy.ndarray, shape of ``depth`` [N] (0 at δ = 0).
    """
    δ = np.asarray(depth, dtype=float)
    λ, μ = lame(modulus, poisson_ratio)
    M = λ + 2 * μ
    e = δ / thickness
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.sqrt(2 * punch_radius * δ)
        spread = np.where(δ > 0, thickness / a, 0.0)
    c1, c2, c3, c4 = coeffs
    base = 2 * np.pi * punch_radius * thickness
    F = base * (M * e**2 / 2 * (c1 + c2 * spread)
                + hardening_modulus * e ** (hardening_exponent + 1) / (hardening_exponent + 1) * (c3 + c4 * spread))
    return np.where(δ > 0, F, 0.0)


def lumped_strain(depth, modulus, hardening_modulus, punch_radius, thickness, coeffs=LUMPED_STRAIN_COEFFS):
    """Maximum equivalent strain in the cell [1] (mesh-free fit of the FE probe).

        ε_max = d₁ e + d₂ δ/a + d₃ e² + d₄ e ln(B/E),   e = δ/H, a = √(2Rδ)

    (δ/a is the Hertz strain scale a/2R; e and e² the layer compression).
    """
    δ = np.asarray(depth, dtype=float)
    e = δ / thickness
    with np.errstate(divide="ignore", invalid="ignore"):
        hertz = np.where(δ > 0, δ / np.sqrt(2 * punch_radius * δ), 0.0)
    d1, d2, d3, d4 = coeffs
    return d1 * e + d2 * hertz + d3 * e**2 + d4 * e * np.log(hardening_modulus / modulus)


def lumped_contact_radius(depth, punch_radius):
    """Geometric contact radius √(2Rδ − δ²) of the sphere at depth δ [m]."""
    δ = np.asarray(depth, dtype=float)
    return np.sqrt(np.clip(2 * punch_radius * δ - δ**2, 0.0, None))
