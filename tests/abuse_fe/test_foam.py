"""Jelly-roll crushable foam (abuse_fe.foam): closed forms, elastic unloading, consistency and consistent
tangent, transversely isotropic stiffness, vectorisation. One-point JAX updates; < 30 s in total."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.optimize import brentq

from abuse_fe.foam import (FoamParameters, equivalent_stress, flow_stress, stiffness, stress_update,
                           uniaxial_strain_path, uniaxial_stress_path)

E, NU = 1.0e8, 0.3
PLASTIC = dict(yield_stress=1.0e6, hardening_modulus=3.0e8, hardening_exponent=2.0)
#: jelly-roll-like transversely isotropic foam: soft through the thickness, stiff in plane
TRANSVERSE = FoamParameters(modulus_normal=5.0e7, modulus_plane=5.0e9, poisson_ratio_plane=0.3,
                            poisson_ratio_normal=0.01, shear_modulus_normal=2.0e7, yield_stress=1.0e6,
                            hardening_modulus=4.0e8, hardening_exponent=2.5, poisson_ratio_plastic=0.2,
                            densification_modulus=1.0e5, densification_strain=0.1)


def _random_points(rng, n, p, dim=4):
    """Strains, plastic strains and ε̂ of ``n`` points with trial σ̂/Y log-uniform in [0.3, 10]
    (about a third elastic), compression-biased directions."""
    εp = 0.01 * rng.normal(size=(n, dim))
    ε̂ = rng.uniform(0.0, 0.1, n)
    d = rng.normal(size=(n, dim)) - 0.5 * np.r_[np.ones(3), np.zeros(dim - 3)]
    ratio = np.exp(rng.uniform(np.log(0.3), np.log(10.0), n))
    scale = ratio * flow_stress(ε̂, p) / equivalent_stress(d @ stiffness(p, dim), p)
    return εp + scale[:, None] * d, εp, ε̂


@pytest.mark.parametrize("nu_p, dim", [(0.0, 4), (0.3, 4), (0.3, 6)])
def test_uniaxial_stress_closed_form(nu_p, dim):
    """σ = E ε up to Y₀, then ε = σ/E + ((σ − Y₀)/B)^{1/n} (|·|, compression); ε̂ = |εᵖ_zz|;
    εᵖ_lateral/εᵖ_zz = −ν^p (zero for ν^p = 0)."""
    p = FoamParameters.isotropic(E, NU, poisson_ratio_plastic=nu_p, **PLASTIC)
    Y0, B, n = PLASTIC["yield_stress"], PLASTIC["hardening_modulus"], PLASTIC["hardening_exponent"]
    strains = -np.linspace(0.0035, 0.2, 25)  # yield at 0.01, not on a grid point
    path = uniaxial_stress_path(strains, p, dim=dim)
    a = 1 if dim == 4 else 2
    lateral = [k for k in range(dim) if k != a]

    def closed_form(e):
        if e <= Y0 / E:
            return E * e
        return brentq(lambda s: s / E + ((s - Y0) / B) ** (1 / n) - e, Y0, E * e, xtol=1e-14 * Y0, rtol=1e-15)

    expected = -np.array([closed_form(-e) for e in strains])
    np.testing.assert_allclose(path.stress[:, a], expected, rtol=1e-8)
    assert np.max(np.abs(path.stress[:, lateral])) <= 1e-9 * np.max(np.abs(path.stress[:, a]))
    plastic = -path.stress[:, a] > Y0 * (1 + 1e-6)
    assert plastic.sum() > 15 and not plastic[0]
    εp_axial = path.plastic_strain[plastic, a]
    np.testing.assert_allclose(path.equivalent_plastic_strain[plastic], -εp_axial, rtol=1e-10)
    np.testing.assert_allclose(path.equivalent_plastic_strain[plastic], ((-expected[plastic] - Y0) / B) ** (1 / n),
                               rtol=1e-7)
    for k in lateral[:2]:  # the in-plane normal strains
        np.testing.assert_allclose(path.plastic_strain[plastic, k], -nu_p * εp_axial, rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(path.plastic_strain[:, lateral[2:]], 0.0, atol=1e-14)  # no plastic shear


@pytest.mark.parametrize("nu_p", [0.0, 0.2, 0.45, -0.3])
def test_hydrostatic_compression_closed_form(nu_p):
    """σ̂ = α|p|/√(1 + (α/3)²); along ε = e(1, 1, 1, 0) from the virgin state the stress stays hydrostatic,
    Y(ε̂) = α|p|/√(1 + (α/3)²) and 3e = p/K − α ε̂/√(1 + (α/3)²) (work conjugacy p tr Δεᵖ = σ̂ Δε̂)."""
    p = FoamParameters.isotropic(E, NU, poisson_ratio_plastic=nu_p, **PLASTIC)
    α = p.alpha
    np.testing.assert_allclose(α**2, 9 * (1 - 2 * nu_p) / (2 * (1 + nu_p)), rtol=1e-14)
    c = np.sqrt(1 + (α / 3) ** 2)
    pressure = -np.geomspace(1e4, 1e8, 7)
    σ = pressure[:, None] * np.array([1.0, 1.0, 1.0, 0.0])
    np.testing.assert_allclose(equivalent_stress(σ, p), α * np.abs(pressure) / c, rtol=1e-13)

    e = -np.linspace(0.001, 0.1, 12)  # one step from the virgin state: exact for a fixed flow direction
    up = stress_update(e[:, None] * np.array([1.0, 1.0, 1.0, 0.0]), np.zeros((12, 4)), np.zeros(12), p)
    mean = up.stress[:, :3].mean(axis=1)
    np.testing.assert_allclose(up.stress[:, :3], mean[:, None] * np.ones(3), rtol=1e-12)
    assert up.plastic.sum() >= 10
    K = E / (3 * (1 - 2 * NU))
    pl = up.plastic
    np.testing.assert_allclose(flow_stress(up.equivalent_plastic_strain[pl], p), α * np.abs(mean[pl]) / c, rtol=1e-10)
    np.testing.assert_allclose(3 * e, mean / K - α * up.equivalent_plastic_strain / c, rtol=1e-10)
    np.testing.assert_allclose(mean[~pl], 3 * K * e[~pl], rtol=1e-12)


def test_unloading_is_elastic_and_reloading_yields_at_previous_stress():
    """Uniaxial stress: unload/reload with slope E and frozen εᵖ, ε̂; yield again at the previous peak stress,
    then follow the monotonic curve. Uniaxial strain: unloading slope is the column C[:, zz]."""
    p = FoamParameters.isotropic(E, NU, **PLASTIC)
    load, unload, reload = -np.linspace(0.005, 0.15, 15), -np.linspace(0.14, 0.10, 5), -np.linspace(0.11, 0.2, 10)
    path = uniaxial_stress_path(np.r_[load, unload, reload], p)
    k0, k1 = len(load) - 1, len(load) + len(unload)  # the peak (ε = -0.15), the first reloading step
    σ, ε = path.stress[:, 1], path.strain[:, 1]
    # unloading and reloading up to the previous peak: slope E, plastic state frozen
    np.testing.assert_allclose(np.diff(σ[k0:k1 + 5]) / np.diff(ε[k0:k1 + 5]), E, rtol=1e-9)
    frozen = slice(k0, k1 + 4)  # peak, 5 unloading steps, reloading to -0.14
    np.testing.assert_array_equal(path.plastic_strain[frozen], np.repeat(path.plastic_strain[k0][None], 10, 0))
    np.testing.assert_array_equal(path.equivalent_plastic_strain[frozen], path.equivalent_plastic_strain[k0])
    # back at ε = -0.15: the previous peak stress, (next to) no new plastic strain
    assert σ[k1 + 4] == pytest.approx(σ[k0], rel=1e-12)
    assert path.equivalent_plastic_strain[k1 + 4] == pytest.approx(path.equivalent_plastic_strain[k0], rel=1e-12)
    # beyond the peak the monotonic curve is followed again
    mono = uniaxial_stress_path(reload[5:], p)
    np.testing.assert_allclose(σ[k1 + 5:], mono.stress[:, 1], rtol=1e-9)
    assert path.equivalent_plastic_strain[-1] > path.equivalent_plastic_strain[k0] * 1.2
    # confined compaction: unloading slope is C_zz of the transversely isotropic stiffness
    sp = uniaxial_strain_path(-np.r_[np.linspace(0.005, 0.1, 20), np.linspace(0.099, 0.095, 5)], TRANSVERSE)
    assert sp.equivalent_plastic_strain[19] > 0.02
    slopes = np.diff(sp.stress[19:], axis=0) / np.diff(sp.strain[19:, 1])[:, None]
    np.testing.assert_allclose(slopes, np.repeat(stiffness(TRANSVERSE)[None, :, 1], 5, axis=0), rtol=1e-9, atol=1e-3)
    np.testing.assert_array_equal(sp.plastic_strain[19:], np.repeat(sp.plastic_strain[19][None], 6, 0))


def test_consistency_and_tangent_against_finite_differences(rng):
    """Φ = 0 after the return (1e-10 relative); dσ/dε matches central differences (1e-6 relative)."""
    p = TRANSVERSE
    n, dim = 48, 4
    ε, εp, ε̂ = _random_points(rng, n, p, dim)
    up = stress_update(ε, εp, ε̂, p)
    pl = up.plastic
    assert 0.3 * n < pl.sum() < n
    Φ = equivalent_stress(up.stress, p) - flow_stress(up.equivalent_plastic_strain, p)
    np.testing.assert_array_less(np.abs(Φ[pl]), 1e-10 * flow_stress(up.equivalent_plastic_strain[pl], p))
    assert np.all(Φ[~pl] <= 0)
    assert np.all(up.equivalent_plastic_strain[pl] > ε̂[pl])

    # away from the elastic/plastic switch (|Φ_trial| > 1e-3 Y), where the update is smooth
    σ_tr = (ε - εp) @ stiffness(p, dim)
    keep = np.abs(equivalent_stress(σ_tr, p) / flow_stress(ε̂, p) - 1) > 1e-3
    h = 1e-7
    dε = h * np.eye(dim)
    history = np.repeat(εp[keep], dim, 0), np.repeat(ε̂[keep], dim)
    plus = stress_update((ε[keep, None] + dε).reshape(-1, dim), *history, p)
    minus = stress_update((ε[keep, None] - dε).reshape(-1, dim), *history, p)
    fd = ((plus.stress - minus.stress) / (2 * h)).reshape(-1, dim, dim).transpose(0, 2, 1)  # [k, i, j]: dσ_i/dε_j
    K = up.tangent[keep]
    err = np.linalg.norm(K - fd, axis=(1, 2)) / np.linalg.norm(K, axis=(1, 2))
    assert err.max() < 1e-6, err.max()
    np.testing.assert_allclose(K[~pl[keep]], np.broadcast_to(stiffness(p), K[~pl[keep]].shape), rtol=1e-12)
    assert pl[keep].sum() > 10
    # associated flow: the plastic consistent tangent is symmetric and softer than C
    np.testing.assert_allclose(K, K.transpose(0, 2, 1), rtol=0, atol=1e-9 * np.abs(K).max())
    assert np.all(np.linalg.eigvalsh(stiffness(p) - K[pl[keep]]) > -1e-6 * np.abs(K).max())


def test_transversely_isotropic_stiffness_and_validation():
    # isotropic special case: C = λ 1⊗1 + 2μ I in Mandel notation
    λ, μ = E * NU / ((1 + NU) * (1 - 2 * NU)), E / (2 * (1 + NU))
    iso = FoamParameters.isotropic(E, NU, **PLASTIC)
    for dim in (4, 6):
        one = np.r_[np.ones(3), np.zeros(dim - 3)]
        np.testing.assert_allclose(stiffness(iso, dim), λ * np.outer(one, one) + 2 * μ * np.eye(dim), rtol=1e-12)
    # elastic uniaxial stress along the stack normal: σ_zz = E_z ε_zz, in-plane strain −ν_zp ε_zz
    p = TRANSVERSE
    strains = -np.linspace(1e-4, 0.9 * p.yield_stress / p.modulus_normal, 5)
    path = uniaxial_stress_path(strains, p)
    np.testing.assert_allclose(path.stress[:, 1], p.modulus_normal * strains, rtol=1e-10)
    np.testing.assert_allclose(path.strain[:, [0, 2]], -p.poisson_ratio_normal * strains[:, None] * [1, 1], rtol=1e-9)
    np.testing.assert_array_equal(path.equivalent_plastic_strain, 0.0)
    # in-plane directions and shears sit where the layout says (compliance S = C⁻¹)
    S = np.linalg.inv(stiffness(p, 6))
    compliances = ([1 / p.modulus_plane] * 2 + [1 / p.modulus_normal] + [1 / (2 * p.shear_modulus_normal)] * 2
                   + [(1 + p.poisson_ratio_plane) / p.modulus_plane])
    np.testing.assert_allclose(np.diag(S), compliances, rtol=1e-12)
    # the positive-definiteness bound on ν_zp is exact: just inside is PD, just outside raises
    bound = np.sqrt((1 - p.poisson_ratio_plane) * p.modulus_normal / (2 * p.modulus_plane))
    assert np.linalg.eigvalsh(stiffness(dataclasses.replace(p, poisson_ratio_normal=0.999 * bound))).min() > 0
    with pytest.raises(ValueError, match="poisson_ratio_normal"):
        dataclasses.replace(p, poisson_ratio_normal=1.001 * bound)
    with pytest.raises(ValueError, match="shape"):
        stress_update(np.zeros((3, 5)), np.zeros((3, 5)), np.zeros(3), p)


@pytest.mark.parametrize("field, value", [
    ("modulus_normal", -5e7), ("modulus_plane", 0.0), ("shear_modulus_normal", -1.0), ("yield_stress", 0.0),
    ("hardening_modulus", -1.0), ("hardening_exponent", 0.5), ("poisson_ratio_plane", 1.0),
    ("poisson_ratio_normal", 0.2), ("poisson_ratio_plastic", 0.5), ("densification_strain", 0.0),
    ("modulus_normal", float("nan")),
])
def test_invalid_parameters_name_the_parameter(field, value):
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(TRANSVERSE, **{field: value})


def test_vectorised_update_matches_a_loop(rng):
    """10 000 points in one call equal single-point calls (3D and axisymmetric layouts alike)."""
    n = 10_000
    ε, εp, ε̂ = _random_points(rng, n, TRANSVERSE)
    up = stress_update(ε, εp, ε̂, TRANSVERSE)
    assert 0.2 * n < up.plastic.sum() < 0.95 * n
    assert up.residual.max() <= 1e-12 and up.iterations.max() < 60
    for k in rng.choice(n, 6, replace=False):
        one = stress_update(ε[k:k + 1], εp[k:k + 1], ε̂[k:k + 1], TRANSVERSE)
        assert one.plastic[0] == up.plastic[k]
        for name in ("stress", "tangent", "plastic_strain", "equivalent_plastic_strain"):
            np.testing.assert_allclose(getattr(one, name)[0], getattr(up, name)[k], rtol=1e-12, atol=1e-14,
                                       err_msg=f"{name} at point {k}")
