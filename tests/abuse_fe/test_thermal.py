"""Thermal abuse FE (abuse_fe.thermal): verification against manufactured/analytic solutions, energy
balance, low-Biot limit, MPI consistency. Real dolfinx solves on small meshes."""
import json
import subprocess
import sys
from pathlib import Path

import abuse_fe  # noqa: F401  (import order)

import numpy as np
import pytest
import ufl
from dolfinx import fem
from dolfinx.fem import petsc as fem_petsc
from mpi4py import MPI
from scipy.integrate import solve_ivp

from abuse_fe import geometry as geo
from abuse_fe.materials import STEFAN_BOLTZMANN, CellMaterials, Material
from abuse_fe.thermal import FEThermal18650, StepControl, ThermalAbuseProblem, conductivity_tensor, default_theta
from simulators.kinetics import load
from simulators.lumped import RUNAWAY_RATE

ROOT = Path(__file__).resolve().parents[2]
OVEN = 428.15


def _ramp(T0, T1):
    return lambda t: T1 if t > 0 else T0


@pytest.fixture(scope="module")
def kinetics():
    return load("hatchard2001")


@pytest.fixture(scope="module")
def problem_18650(kinetics):
    """One coarse 18650 problem (forms compiled once) shared by the tests of this module."""
    return ThermalAbuseProblem(geo.cylinder(geo.CELL_18650, "coarse"), kinetics=kinetics,
                               heat_transfer_coefficient=7.17, control=StepControl(dT_step=10.0))


# -------------------------------------------------------------------------------------------------
def test_thermal_axisymmetric_mms_convergence():
    """Steady anisotropic conduction in r–z with Robin boundaries: L2 error ~ h² (P1).

    Manufactured T = 300 + 50 cos(πr/2R)(1 + sin(πz/H)) (∂T/∂r = 0 on the axis); source
    f = -(1/r)∂_r(r k_r ∂_r T) - k_z ∂_zz T; boundary data g = K∇T·n + h (T - T∞); the weak form uses
    the same r-weighted measure (dV = 2πr dr dz), conductivity tensor and facet tags as the solver.
    """
    spec = geo.CylinderSpec("mms", radius=1.0, height=2.0, casing_thickness=0.0, heater_length=0.0)
    k_r, k_z, h, T_inf = 0.7, 3.0, 2.0, 290.0
    errors, hs = [], []
    for n in (4, 8, 16):
        tm = geo.cylinder(spec, (n, 2 * n), casing=False)
        V = fem.functionspace(tm.mesh, ("Lagrange", 1))
        x = ufl.SpatialCoordinate(tm.mesh)
        r, z = x[0], x[1]
        T_ex = 300.0 + 50.0 * ufl.cos(ufl.pi * r / 2.0) * (1.0 + ufl.sin(ufl.pi * z / 2.0))
        K = conductivity_tensor(k_r, k_z, 2)
        f = -(1.0 / r) * (r * k_r * T_ex.dx(0)).dx(0) - (k_z * T_ex.dx(1)).dx(1)
        nrm = ufl.FacetNormal(tm.mesh)
        g = ufl.dot(K * ufl.grad(T_ex), nrm) + h * (T_ex - T_inf)
        dx, ds = tm.measures()
        w = tm.volume_weight()
        dA = ds(geo.EXTERIOR)
        u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
        a = ufl.inner(K * ufl.grad(u), ufl.grad(v)) * w * dx + h * u * v * w * dA
        L = f * v * w * dx + (g + h * T_inf) * v * w * dA
        prob = fem_petsc.LinearProblem(a, L, petsc_options_prefix="test_mms_",
                                       petsc_options={"ksp_type": "preonly", "pc_type": "lu",
                                                      "pc_factor_mat_solver_type": "mumps",
                                                      "ksp_error_if_not_converged": True})
        T_h = prob.solve()
        assert prob.solver.getConvergedReason() > 0
        e2 = fem.assemble_scalar(fem.form((T_h - T_ex) ** 2 * w * dx))
        errors.append(np.sqrt(tm.mesh.comm.allreduce(e2, op=MPI.SUM)))
        hs.append(1.0 / n)
    rates = np.log(np.array(errors[:-1]) / errors[1:]) / np.log(2.0)
    assert np.all(np.abs(rates - 2.0) < 0.3), (errors, rates)


def test_thermal_geometry_volumes_and_tags():
    """Can + jelly volumes equal the cylinder volume; heater band area close to 2πR L_h."""
    tm = geo.cylinder(geo.CELL_18650, "coarse")
    p = ThermalAbuseProblem(tm)
    R, H, t = geo.CELL_18650.radius, geo.CELL_18650.height, geo.CELL_18650.casing_thickness
    assert p.volume == pytest.approx(np.pi * R**2 * H, rel=1e-12)
    V_jelly = p._gsum(p.w_jelly[: p.n_owned])
    assert V_jelly == pytest.approx(np.pi * (R - t) ** 2 * (H - 2 * t), rel=1e-12)
    assert p._gsum(p.area[: p.n_owned]) == pytest.approx(2 * np.pi * R * H + 2 * np.pi * R**2, rel=1e-12)
    assert 0.5 < p.heater_area / (2 * np.pi * R * geo.CELL_18650.heater_length) <= 1.0 + 1e-12


def test_thermal_energy_balance_runaway(problem_18650):
    """Oven runaway + heater + internal short: ∫ρc(T_end−T0)dV = kinetics + heater + short − losses (1 %)."""
    p = problem_18650
    short = (np.array([0.0, 600.0, 900.0, 900.0]), np.array([0.0, 6.0, 6.0, 0.0]))  # W
    ds = p.run(2600.0, ambient=_ramp(298.15, OVEN), heater_power=(np.array([0.0, 300.0, 300.0]),
                                                                    np.array([5.0, 5.0, 0.0])),
               source_power=short, source_center=(0.0, 0.03), source_radius=2e-3)
    assert bool(ds.thermal_runaway)
    # independent ∫ρc T dV from a fresh form on the final field
    dx, _ = p.tm.measures()
    U = fem.form(p.ρc * p.T * p.tm.volume_weight() * dx)
    U_end = p.comm.allreduce(fem.assemble_scalar(U), op=MPI.SUM)
    U_0 = p.comm.allreduce(fem.assemble_scalar(fem.form(p.ρc * 298.15 * p.tm.volume_weight() * dx)), op=MPI.SUM)
    supplied = float(ds.heat_kinetics_total + ds.heat_heater_total + ds.heat_short_total - ds.heat_lost_total)
    assert float(ds.heat_heater_total) == pytest.approx(1500.0, rel=1e-12)
    assert float(ds.heat_short_total) == pytest.approx(0.5 * 600 * 6 + 300 * 6, rel=1e-12)
    scale = float(ds.heat_kinetics_total + ds.heat_heater_total + ds.heat_short_total)
    assert abs((U_end - U_0) - supplied) < 0.01 * scale
    assert abs(float(ds.energy_balance_residual)) < 1e-6 * scale
    for name, var in ds.variables.items():
        assert "units" in var.attrs and "long_name" in var.attrs, name


def _lumped_reference(ks, rho_c, V, A, V_jelly, h, eps, T0, T_amb, t_end, rate):
    """Lumped energy balance ρcV dT/dt = -hA(T-T∞) - εσA(T⁴-T∞⁴) + V_j q(T, ξ), dξ/dt = r(T, ξ) (scipy Radau)."""
    names = list(ks.state_names)
    x0 = np.concatenate([[T0], [ks.initial_state[k] for k in names]])
    εσ = eps * STEFAN_BOLTZMANN

    def rhs(t, x):
        T, st = x[0], {k: np.array(x[1 + i]) for i, k in enumerate(names)}
        d, q = ks.rates(np.array(T), st)
        dT = (-h * A * (T - T_amb) - εσ * A * (T**4 - T_amb**4) + V_jelly * q) / (rho_c * V)
        return np.concatenate([[dT], [d[k] for k in names]])

    sol = solve_ivp(rhs, (0.0, t_end), x0, method="Radau", rtol=1e-9, atol=1e-9, dense_output=True, max_step=5.0)
    assert sol.success
    tt = np.linspace(0.0, t_end, 200001)
    X = sol.sol(tt)
    q = ks.rates(X[0], {k: X[1 + i] for i, k in enumerate(names)})[1]
    self_heating = q * V_jelly / (rho_c * V)
    i = np.flatnonzero(self_heating > rate)
    return sol, (tt[i[0]] if len(i) else np.nan)


def test_thermal_low_biot_matches_lumped(kinetics):
    """k → 1000 W/(m K), h = 5 W/(m² K): FE mean temperature and runaway time = lumped ODE within 2 %.

    Compared with our own scipy ODE of the same lumped energy balance (the `lumped_thermal`
    simulator is another module)."""
    spec = geo.CylinderSpec("lowbiot", radius=9.15e-3, height=65e-3, casing_thickness=0.0, heater_length=0.0)
    tm = geo.cylinder(spec, (4, 8), casing=False)
    jelly = Material("isotropic", 2400.0, 1050.0, 1000.0, 1000.0)
    mats = CellMaterials(jelly=jelly, casing=jelly, emissivity=0.8)
    rate = RUNAWAY_RATE  # the default: the whole cell's chemical self-heating, the lumped model's definition
    p = ThermalAbuseProblem(tm, mats, kinetics, heat_transfer_coefficient=5.0,
                            control=StepControl(dt_max=4.0, dT_step=2.0))
    t_end = 2400.0
    ds = p.run(t_end, ambient=_ramp(298.15, OVEN), output_times=np.linspace(0, t_end, 241))
    V, A = p.volume, p._gsum(p.area[: p.n_owned])
    sol, t_tr = _lumped_reference(kinetics, jelly.volumetric_heat_capacity, V, A, V, 5.0, 0.8, 298.15, OVEN,
                                  t_end, rate)
    assert bool(ds.thermal_runaway) and np.isfinite(t_tr)
    assert float(ds.time_to_runaway) == pytest.approx(t_tr, rel=0.02)
    # temperature rise before runaway (t < 0.9 t_TR): within 2 % of the rise
    tt = ds.time.values
    pre = tt < 0.9 * t_tr
    T_ref = sol.sol(tt[pre])[0]
    rise = T_ref - 298.15
    err = np.abs(ds.temperature_mean.values[pre] - T_ref)[1:] / rise[1:]
    assert err.max() < 0.02, err.max()
    # uniform temperature (low Biot): max - mean small
    assert np.max(ds.temperature_max.values[pre] - ds.temperature_mean.values[pre]) < 0.5


def test_thermal_simulator_contract():
    """Registered simulator: fixed output grid, outcomes with units, run via `simulators.load`."""
    from simulators.registry import load as load_sim

    cls = load_sim("fe_thermal_18650")
    sim = cls(t_end=600.0, n_time=31, trigger="heater")
    ds = sim.run(default_theta(sim), {"heater_power": 15.0, "heater_duration": 300.0})
    assert ds.sizes["time"] == 31 and ds.temperature_probe.dims == ("time", "probe")
    assert float(ds.heat_heater_total) == pytest.approx(15.0 * 300.0, rel=1e-12)
    # the band heater warms the surface probe at mid-height above the core
    T = ds.temperature_probe.sel(time=300.0)
    assert float(T.sel(probe="surface_mid")) > float(T.sel(probe="core_mid")) > 298.15
    assert not bool(ds.thermal_runaway) and np.isnan(float(ds.time_to_runaway))
    for name, var in ds.variables.items():
        assert var.attrs.get("units") is not None and var.attrs.get("long_name"), name


def test_oven_ramps_at_the_condition_rate_then_holds():
    """``oven_ramp_rate`` as in `lumped_thermal`: the ambient rises linearly from the initial temperature, then holds."""
    sim = FEThermal18650(t_end=600.0, n_time=31)
    ds = sim.run(default_theta(sim), {"temperature_oven": 428.15, "oven_ramp_rate": 0.5})
    T_amb = ds.temperature_ambient
    assert float(T_amb.sel(time=120.0)) == pytest.approx(298.15 + 60.0, abs=1e-9)
    assert float(T_amb.sel(time=240.0)) == pytest.approx(298.15 + 120.0, abs=1e-9)
    assert np.all(T_amb.sel(time=slice(280.0, None)).values == 428.15)
    # the cell lags its oven while the ambient ramps
    assert float(ds.temperature_mean.sel(time=240.0)) < float(T_amb.sel(time=240.0)) - 20.0


@pytest.mark.mpi
def test_thermal_mpi_matches_serial(tmp_path):
    """`mpiexec -n 2 python -m simulators.mpi fe_thermal_18650` gives the serial result (oven runaway, coarse mesh)."""
    options = {"t_end": 2600.0, "n_time": 53}
    out = tmp_path / "mpi.nc"
    cmd = [str(ROOT / ".venv/bin/mpiexec"), "-n", "2", sys.executable, "-m", "simulators.mpi", "fe_thermal_18650",
           "--out", str(out)] + [f"--option={k}={json.dumps(v)}" for k, v in options.items()]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    import xarray as xr

    par = xr.load_dataset(out)
    sim = FEThermal18650(**options)
    ser = sim.run(default_theta(sim))
    assert bool(ser.thermal_runaway) and bool(par.thermal_runaway)
    assert par.attrs["mpi_size"] == 2
    # before runaway: same steps, LU solves → agreement to round-off
    pre = ser.time.values < 0.95 * float(ser.time_to_runaway)
    np.testing.assert_allclose(par.temperature_probe.values[pre], ser.temperature_probe.values[pre], rtol=1e-9)
    # through the runaway front, round-off can flip a step acceptance: agreement to 1e-4
    np.testing.assert_allclose(par.temperature_probe.values, ser.temperature_probe.values, rtol=1e-4)
    np.testing.assert_allclose(par.temperature_mean.values, ser.temperature_mean.values, rtol=1e-4)
    assert float(par.time_to_runaway) == pytest.approx(float(ser.time_to_runaway), rel=1e-3)
    assert float(par.temperature_peak) == pytest.approx(float(ser.temperature_peak), rel=1e-4)
    assert float(par.heat_released_total) == pytest.approx(float(ser.heat_released_total), rel=1e-4)


def test_thermal_pouch_heater_and_short(kinetics):
    """3D pouch: heater patch on the top face heats top > core > bottom; an internal-short power series
    is deposited exactly; energy balance closes; the short's location is the hottest probe."""
    tm = geo.pouch(geo.POUCH_20AH, "coarse")
    p = ThermalAbuseProblem(tm, kinetics=None, heat_transfer_coefficient=10.0)
    ds = p.run(300.0, heater_power=30.0, output_times=np.linspace(0.0, 300.0, 31))
    T = ds.temperature_probe.isel(time=-1)
    assert float(T.sel(probe="surface_centre")) > float(T.sel(probe="core_centre")) > float(T.sel(probe="bottom_centre"))
    assert float(ds.heat_heater_total) == pytest.approx(9000.0, rel=1e-12)
    spec = geo.POUCH_20AH
    centre = (0.1 * spec.length, 0.1 * spec.width, spec.thickness / 2)
    probes = {"short": np.array(centre), "far": np.array([0.9 * spec.length, 0.9 * spec.width, spec.thickness / 2])}
    ds = p.configure(kinetics=kinetics).run(
        120.0, source_power=(np.array([0.0, 60.0, 120.0]), np.array([0.0, 40.0, 40.0])),
        source_center=centre, source_radius=8e-3, probes=probes)
    assert float(ds.heat_short_total) == pytest.approx(0.5 * 60 * 40 + 60 * 40, rel=1e-12)
    scale = float(ds.heat_short_total + ds.heat_kinetics_total)
    assert abs(float(ds.energy_balance_residual)) < 1e-6 * scale
    T = ds.temperature_probe.isel(time=-1)
    assert float(T.sel(probe="short")) > float(T.sel(probe="far")) + 5.0
