"""Small-strain crushable-foam FE (abuse_fe.indentation_foam): uniaxial compression against the closed form,
indentation load/unload (monotone loading, residual dent, elastic limit, mesh change), energy balance.
Real dolfinx solves on tiny meshes; ≈ 20 s in total."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.optimize import brentq

import abuse_fe  # noqa: F401  (import order)
from abuse_fe.foam import FoamParameters, uniaxial_stress_path
from abuse_fe.indentation_foam import compress_cylinder, indent

#: jelly-roll-like foam: soft through the thickness, stiff in plane, ν^p = 0 (Sahraei et al. 2012)
JELLY_ROLL = FoamParameters(modulus_normal=5.0e7, modulus_plane=5.0e9, poisson_ratio_plane=0.3,
                            poisson_ratio_normal=0.01, shear_modulus_normal=2.0e7, yield_stress=1.0e6,
                            hardening_modulus=4.0e8, hardening_exponent=2.5, poisson_ratio_plastic=0.0)
DEPTH = 0.25e-3  # [m], 5 % of the 5 mm cell: inside the small-strain range


@pytest.fixture(scope="module")
def cycle():
    """Load/unload cycle on the default (coarse) mesh."""
    return indent(JELLY_ROLL, depth=DEPTH)


@pytest.mark.parametrize("nu_p", [0.0, 0.3])
def test_uniaxial_compression_matches_closed_form(nu_p):
    """Cylinder between frictionless plates, loading to ε = −8 % and elastic unloading: nominal stress
    within 1 % of σ = E_z ε (|ε| ≤ Y₀/E_z), |ε| = |σ|/E_z + ((|σ| − Y₀)/B)^{1/n}, unloading slope E_z,
    permanent strain = FE plastic strain = closed form; loading = 1-point foam.uniaxial_stress_path to 1e-6."""
    p = dataclasses.replace(JELLY_ROLL, poisson_ratio_plastic=nu_p)
    Ez, Y0, B, n = p.modulus_normal, p.yield_stress, p.hardening_modulus, p.hardening_exponent
    loading = -np.linspace(0.0035, 0.08, 16)  # yield at ε = −0.02, on no grid point
    unloading = -0.08 + np.linspace(0.002, 0.01, 5)
    strains = np.r_[loading, unloading]
    res = compress_cylinder(strains, p)

    def closed_form(e):  # compression magnitude |ε| → |σ|
        if e <= Y0 / Ez:
            return Ez * e
        return brentq(lambda s: s / Ez + ((s - Y0) / B) ** (1 / n) - e, Y0, Ez * e, xtol=1e-12 * Y0)

    σ_max = closed_form(0.08)
    expected = -np.r_[[closed_form(-e) for e in loading], σ_max - Ez * (unloading + 0.08)]
    np.testing.assert_allclose(res.strain, strains, rtol=0, atol=1e-15)
    assert np.max(np.abs(res.stress - expected) / np.abs(expected)) <= 0.01
    k = loading.size  # (the 1-point driver's mixed-control Newton stalls at the reversal for ν^p = 0.3, E_p ≫ E_z)
    np.testing.assert_allclose(res.stress[:k], uniaxial_stress_path(loading, p).stress[:, 1], rtol=1e-6)
    assert np.sum(-res.stress > Y0 * 1.001) >= 10  # the path is mostly plastic
    # unloading: slope E_z, permanent strain ε − σ/E_z equals the plastic strain and the closed form
    np.testing.assert_allclose(np.diff(res.stress[k - 1:]) / np.diff(res.strain[k - 1:]), Ez, rtol=1e-6)
    permanent = res.strain[k:] - res.stress[k:] / Ez
    np.testing.assert_allclose(permanent, res.plastic_strain[k:], rtol=1e-6)
    np.testing.assert_allclose(permanent, -(0.08 - σ_max / Ez), rtol=1e-6)
    np.testing.assert_allclose(res.equivalent_plastic_strain[-1], -res.plastic_strain[-1], rtol=1e-6)


def test_indentation_load_unload_leaves_a_dent(cycle):
    """Force grows monotonically while loading; after unloading to zero force the yielded foam keeps a dent."""
    r = cycle
    assert r.loading.sum() == 17 and r.depth[r.loading][-1] == pytest.approx(DEPTH)
    assert np.all(np.diff(r.force[r.loading]) > 0)
    assert r.force[-1] == 0.0 and np.all(r.force[~r.loading][:-1] > 0)
    assert r.equivalent_plastic_strain_max[-1] > 0.05
    # the dent (≈ 0.64 DEPTH) lies between the depth where contact was lost and the previous unloading depth
    assert 0.3 * DEPTH < r.residual_depth < DEPTH
    assert r.depth[-1] <= r.residual_depth <= r.depth[-2]


def test_indentation_elastic_limit_recovers():
    """Y₀ far above any stress: no plastic strain, no dent (< 1e-3 of the depth), no net punch work."""
    r = indent(dataclasses.replace(JELLY_ROLL, yield_stress=1.0e12), depth=DEPTH)
    assert r.force.max() > 10.0  # [N]: the punch did load the cell
    assert np.all(np.diff(r.force[r.loading]) > 0)
    assert r.equivalent_plastic_strain_max.max() == 0.0
    assert abs(r.residual_depth) < 1e-3 * DEPTH
    assert abs(r.work) < 1e-6 * r.force.max() * DEPTH and r.dissipation == 0.0


def test_indentation_mesh_refinement(cycle):
    """Coarse (12×6) vs one finer level (24×12): peak force within 10 % (measured 0.9 %), dent within 2 %."""
    fine = indent(JELLY_ROLL, depth=DEPTH, resolution=(24, 12))
    assert fine.force.max() == pytest.approx(cycle.force.max(), rel=0.10)
    assert fine.residual_depth == pytest.approx(cycle.residual_depth, rel=0.02)


def test_indentation_cycle_energy_balance(cycle):
    """∮ F dd > 0 and equals the plastic dissipation Σ ∫ ½(σ_n + σ_{n+1})·Δεᵖ dV within 5 % (measured 2 %,
    the elastic energy of the residual stresses); adding that energy closes the balance within 1 % (0.25 %)."""
    r = cycle
    assert r.work > 0 and r.dissipation > 0
    assert r.dissipation == pytest.approx(r.work, rel=0.05)
    assert r.dissipation + r.elastic_energy == pytest.approx(r.work, rel=0.01)
