"""Indentation mechanics (abuse_fe.indentation): Hertz limit, equilibrium, mesh convergence, MPI, dataset."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import abuse_fe  # noqa: F401  (import order)
from abuse_fe.geometry_indentation import RESOLUTIONS
from abuse_fe.indentation import IndentationFE, IndentationProblem, short_onset

REALISTIC = dict(modulus=5.0e7, hardening_modulus=3.0e8, hardening_exponent=2.0, punch_radius=6.35e-3, thickness=5.0e-3)


def test_hertz_sphere_on_thick_layer():
    """Rigid sphere on an elastic 'half-space' (layer 30× the contact radius): F = 4/3 E* √R δ^{3/2}.

    Tolerance 4 %: the layer is finite (a/H ≈ 0.03 raises F by ~1 %), the strain is finite (δ/a ≈ 0.06)
    and the penalty allows a small penetration; measured 1.3–2.3 % on this 16×16 mesh.
    """
    E, ν, R = 1.0e8, 0.3, 5.0e-3
    p = IndentationProblem(16, 16, domain_radius=10e-3, poisson_ratio=ν, grading_r=4.0, grading_z=4.0,
                           penalty=1.0e4, smoothing=1.0e-6)
    # B → 0: the law reduces to a compressible neo-Hookean solid with small-strain (E, ν)
    p.set_state(modulus=E, hardening_modulus=1.0, hardening_exponent=2.0, punch_radius=R, thickness=10e-3)
    δ = np.array([0.0, 5e-6, 10e-6, 20e-6])
    res = p.solve_path(δ)
    E_star = E / (1 - ν**2)
    F_hertz = 4.0 / 3.0 * E_star * np.sqrt(R) * δ[1:] ** 1.5
    np.testing.assert_allclose(res.force[1:], F_hertz, rtol=0.04)
    # equilibrium: the rigid-plate reaction equals the punch force (P2 stress on the bottom face)
    assert p.plate_reaction() == pytest.approx(res.force[-1], rel=0.01)
    # Hertz contact radius a = √(R δ) within the resolution of the top-face mesh
    assert res.contact_radius[-1] == pytest.approx(np.sqrt(R * δ[-1]), rel=0.15)


def test_mesh_convergence_force_and_strain():
    """Force at 1.5 mm depth changes < 3 % (measured ~0.1 %) between the two finest meshes (medium, fine)."""
    depths = np.linspace(0.0, 1.5e-3, 4)
    out = {}
    for name in ("medium", "fine"):
        p = IndentationProblem(*RESOLUTIONS[name])
        p.set_state(**REALISTIC)
        out[name] = p.solve_path(depths)
    f_m, f_f = out["medium"].force[-1], out["fine"].force[-1]
    assert abs(f_m - f_f) / f_f < 0.03
    s_m, s_f = out["medium"].strain_max[-1], out["fine"].strain_max[-1]
    assert abs(s_m - s_f) / s_f < 0.03
    # convex, densifying response: F(δ) grows faster than linearly
    f = out["fine"].force
    assert np.all(np.diff(f) > 0) and f[3] / f[1] > 3.0


def test_simulator_dataset_and_short_onset():
    sim = IndentationFE(displacement_max=3.0e-3, n_displacement=31)
    θ = {"modulus_cell": 5e7, "hardening_modulus": 3e8, "hardening_exponent": 2.0, "strain_critical": 0.3}
    ds = sim.run(θ, {"cell_thickness": 3.0e-3})
    assert ds.sizes["displacement"] == 31
    for v in ds.variables:
        assert "units" in ds[v].attrs and "long_name" in ds[v].attrs, v
    # beyond 0.8 H = 2.4 mm the path is not simulated (NaN), before it the force is finite and increasing
    d = ds.displacement.values
    f = ds.force_indenter.values
    assert np.all(np.isnan(f[d > 2.4e-3 + 1e-12])) and np.all(np.isfinite(f[d <= 2.4e-3]))
    assert np.all(np.diff(f[np.isfinite(f)]) > 0)
    # onset: the strain path crosses ε_c there, and a lower ε_c shorts earlier
    d_on = float(ds.displacement_short_onset)
    s = ds.strain_separator_max.values
    assert np.interp(d_on, d[np.isfinite(s)], s[np.isfinite(s)]) == pytest.approx(0.3, rel=1e-6)
    d_on_low, _ = short_onset(d, f, s, 0.2)
    assert d_on_low < d_on
    assert np.isnan(short_onset(d, f, s, 5.0)[0])
    # stopped at the short (what the coupled chain does): the same path up to the first depth past the onset
    stopped = sim.mechanics(θ, {c.name: c.default for c in sim.conditions} | {"cell_thickness": 3.0e-3},
                            stop_at_short=True)
    last = int(np.flatnonzero(d >= d_on)[0])
    np.testing.assert_allclose(stopped.force[:last + 1], f[:last + 1], rtol=1e-8)
    assert np.isnan(stopped.force[last + 1:]).all() and stopped.newton_iterations < ds.attrs["newton_iterations"]
    assert short_onset(d, stopped.force, stopped.strain_max, 0.3) == pytest.approx(short_onset(d, f, s, 0.3), rel=1e-8)


MPI_SCRIPT = """
import json, numpy as np, abuse_fe
from mpi4py import MPI
from abuse_fe.indentation import IndentationProblem
p = IndentationProblem(16, 8)
p.set_state(modulus=5e7, hardening_modulus=3e8, hardening_exponent=2.0, punch_radius=6.35e-3, thickness=5e-3)
r = p.solve_path(np.linspace(0.0, 1.0e-3, 3))
if MPI.COMM_WORLD.rank == 0:
    print(json.dumps({"force": r.force.tolist(), "strain": r.strain_max.tolist(), "size": MPI.COMM_WORLD.size}))
"""


@pytest.mark.mpi
def test_mpi_two_ranks_equals_serial(tmp_path: Path):
    mpiexec = Path(sys.executable).parent / "mpiexec"
    if not mpiexec.exists() and shutil.which("mpiexec") is None:
        pytest.skip("mpiexec not found")
    script = tmp_path / "run.py"
    script.write_text(MPI_SCRIPT)
    outs = {}
    for n in (1, 2):
        cmd = [str(mpiexec if mpiexec.exists() else "mpiexec"), "-n", str(n), sys.executable, str(script)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        outs[n] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert outs[2]["size"] == 2
    np.testing.assert_allclose(outs[2]["force"], outs[1]["force"], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(outs[2]["strain"], outs[1]["strain"], rtol=1e-6, atol=1e-12)
