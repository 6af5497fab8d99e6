"""Benchmark of the indentation FE: wall time per simulation (mesh × MPI ranks), Hertz check, mesh
convergence, lumped-law agreement and the calibration to the real LCO curves. Prints tables; the full and
``--quick`` runs also write their rows to ``benchmarks/results/fe_indentation.json``.

    .venv/bin/python benchmarks/fe_indentation.py              # everything (≈ 5–10 min on 2 cores)
    .venv/bin/python benchmarks/fe_indentation.py --quick      # coarse/medium only, no 'fine' MPI runs
    .venv/bin/python benchmarks/fe_indentation.py --fit-lumped # refit LUMPED_*_COEFFS on a Sobol design
    .venv/bin/python benchmarks/fe_indentation.py --calibration # only the real-curve calibration table

Ensemble choice: the ``coarse`` mesh (16×8 P2 triangles, graded): its punch force differs from the
``fine`` mesh by < 0.2 % and the strain probe by < 1 % on the realistic case, at a fraction of the cost;
MPI does not pay at this size (the problem has ~1e3 dofs): run ensembles one simulation per process.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import abuse_fe  # noqa: F401

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import write_result  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
THETA = {"modulus_cell": 5e7, "hardening_modulus": 3e8, "hardening_exponent": 2.0, "strain_critical": 0.4}
COND = {"cell_thickness": 5e-3, "punch_radius": 6.35e-3}


def _one_run(resolution: str) -> dict:
    from mpi4py import MPI

    from abuse_fe.indentation import IndentationFE

    sim = IndentationFE(resolution=resolution)
    t0 = time.perf_counter()
    sim.run(THETA, COND)  # includes form compilation (cached on disk after the first time)
    t1 = time.perf_counter()
    ds = sim.run(THETA, COND)  # warm: what an ensemble pays per sample
    t2 = time.perf_counter()
    f = ds.force_indenter.sel(displacement=2e-3, method="nearest").item()
    s = ds.strain_separator_max.sel(displacement=2e-3, method="nearest").item()
    V = ds.attrs
    return {"res": resolution, "ranks": MPI.COMM_WORLD.size, "first": t1 - t0, "warm": t2 - t1,
            "force_2mm": f, "strain_2mm": s, "onset": float(ds.displacement_short_onset), "its": V["newton_iterations"]}


def timings(resolutions, ranks_list):
    rows = []
    for res in resolutions:
        for n in ranks_list:
            cmd = [str(Path(sys.executable).parent / "mpiexec"), "-n", str(n), sys.executable, __file__, "--worker", res]
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
            if out.returncode != 0:
                print(out.stderr[-1500:])
                continue
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print("\nWall time per simulation (81 depths to 4 mm, H = 5 mm, R = 6.35 mm; warm = forms compiled)")
    print(f"{'mesh':8s} {'ranks':>5s} {'first [s]':>10s} {'warm [s]':>9s} {'Newton':>7s} {'F(2mm) [N]':>11s} {'ε(2mm)':>8s} {'onset [mm]':>10s}")
    for r in rows:
        print(f"{r['res']:8s} {r['ranks']:5d} {r['first']:10.2f} {r['warm']:9.2f} {r['its']:7d} {r['force_2mm']:11.2f} {r['strain_2mm']:8.4f} {r['onset']*1e3:10.3f}")
    return rows


def hertz():
    from abuse_fe.indentation import IndentationProblem

    E, ν, R = 1.0e8, 0.3, 5.0e-3
    δ = np.array([0.0, 5e-6, 10e-6, 20e-6])
    print("\nHertz check: rigid sphere R = 5 mm on a 10 mm layer, E = 100 MPa, ν = 0.3 (F = 4/3 E* √R δ^1.5)")
    print(f"{'mesh':8s} " + " ".join(f"{'F/F_H @ %g µm' % (d * 1e6):>15s}" for d in δ[1:]))
    rows = []
    for n in (16, 32, 48):
        p = IndentationProblem(n, n, domain_radius=10e-3, poisson_ratio=ν, grading_r=4.0, grading_z=4.0, penalty=1e4, smoothing=1e-6)
        p.set_state(modulus=E, hardening_modulus=1.0, hardening_exponent=2.0, punch_radius=R, thickness=10e-3)
        res = p.solve_path(δ)
        ratio = res.force[1:] / (4 / 3 * E / (1 - ν**2) * np.sqrt(R) * δ[1:] ** 1.5)
        print(f"{n}x{n:<5d} " + " ".join(f"{x:15.4f}" for x in ratio))
        rows.append({"mesh": f"{n}x{n}", "depth_um": (δ[1:] * 1e6).tolist(), "force_over_hertz": ratio.tolist()})
    return rows


def lumped_agreement(n: int = 31, fit: bool = False):
    from scipy.stats import qmc

    from abuse_fe.indentation import IndentationProblem, lame, lumped_force, lumped_strain

    p = IndentationProblem(16, 8)
    rows = []
    for u in qmc.Sobol(6, seed=3).random(32)[:n]:
        E = 10 ** (np.log10(5e6) + u[0] * 2)
        B = 10 ** (7 + u[1] * np.log10(300))
        nn, R, H = 1 + 3 * u[2], 3e-3 + 9e-3 * u[3], 3e-3 + 9e-3 * u[4]
        p.set_state(modulus=E, hardening_modulus=B, hardening_exponent=nn, punch_radius=R, thickness=H)
        d = np.linspace(0, 0.6 * H, 25)
        r = p.solve_path(d, max_step=min(5e-5, 0.01 * H))
        rows.append((E, B, nn, R, H, d[1:], r.force[1:], r.strain_max[1:]))
    if fit:
        A, S = [], []
        for E, B, nn, R, H, d, F, s in rows:
            M = sum(lame(E, 0.1)) + lame(E, 0.1)[1]
            e, a, base = d / H, np.sqrt(2 * R * d), 2 * np.pi * R * H
            fe, fh = base * M * e**2 / 2, base * B * e ** (nn + 1) / (nn + 1)
            A.append(np.c_[fe, fe * H / a, fh, fh * H / a] / F[:, None])
            S.append(np.c_[e, d / a, e**2, e * np.log(B / E)] / s[:, None])
        A, S = np.vstack(A), np.vstack(S)
        print("LUMPED_FORCE_COEFFS =", tuple(np.round(np.linalg.lstsq(A, np.ones(len(A)), rcond=None)[0], 5)))
        print("LUMPED_STRAIN_COEFFS =", tuple(np.round(np.linalg.lstsq(S, np.ones(len(S)), rcond=None)[0], 6)))
    ef = np.concatenate([np.abs(lumped_force(d, E, B, nn, R, H) / F - 1) for E, B, nn, R, H, d, F, s in rows])
    es = np.concatenate([np.abs(lumped_strain(d, E, B, R, H) / s - 1) for E, B, nn, R, H, d, F, s in rows])
    print(f"\nLumped law vs FE ({len(rows)} Sobol load paths, δ ≤ 0.6 H): relative error")
    print(f"{'':8s} {'median':>8s} {'p90':>8s} {'max':>8s}")
    print(f"{'force':8s} {np.median(ef):8.3f} {np.quantile(ef, .9):8.3f} {ef.max():8.3f}")
    print(f"{'strain':8s} {np.median(es):8.3f} {np.quantile(es, .9):8.3f} {es.max():8.3f}")
    return {"load_paths": len(rows), "relative_error": {
        k: {"median": float(np.median(e)), "p90": float(np.quantile(e, .9)), "max": float(e.max())}
        for k, e in (("force", ef), ("strain", es))}}


def calibration():
    from abuse_fe.calibration import FAMILIES, SPEED_ASSUMED, fe_check, fit_family, read_family

    folder = REPO.parent / "shared" / "data" / "indentation" / "raw"
    print(f"\nCalibration to the real LCO pouch curves (speed {SPEED_ASSUMED * 6e4:.1f} mm/min ASSUMED; thickness assumed)")
    print(f"{'family':10s} {'n':>3s} {'E [MPa]':>8s} {'B [MPa]':>8s} {'n_h':>5s} {'ε_c':>6s} {'RMSE [N]':>9s} "
          f"{'rel':>6s} {'rel FE':>7s} {'rel FE-fit':>10s} {'onset meas [mm]':>16s} {'LOO MAE [mm]':>13s} {'LOO MAE FE':>10s}")
    rows = []
    for fam in FAMILIES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            curves = read_family(folder, fam)
        fit = fit_family(curves, fam)
        _, rel_fe = fe_check(fit, curves)
        fit_fe = fit_family(curves, fam, model="fe")
        th = fit.theta
        m = fit.onset_loo[:, 0]
        print(f"{fam:10s} {len(curves):3d} {th['modulus_cell'] / 1e6:8.1f} {th['hardening_modulus'] / 1e6:8.1f} "
              f"{th['hardening_exponent']:5.2f} {th['strain_critical']:6.3f} {fit.rmse:9.1f} {fit.rmse_relative:6.3f} "
              f"{rel_fe:7.3f} {fit_fe.rmse_relative:10.3f} {m.mean() * 1e3:8.2f} ± {m.std() * 1e3:4.2f} "
              f"{fit.onset_mae * 1e3:13.2f} {fit_fe.onset_mae * 1e3:10.2f}")
        rows.append({"family": fam, "n": len(curves), "modulus_cell_mpa": th["modulus_cell"] / 1e6,
                     "hardening_modulus_mpa": th["hardening_modulus"] / 1e6, "hardening_exponent": th["hardening_exponent"],
                     "strain_critical": th["strain_critical"], "rmse_n": fit.rmse, "rmse_relative": fit.rmse_relative,
                     "rmse_relative_fe": rel_fe, "rmse_relative_fe_fit": fit_fe.rmse_relative,
                     "onset_measured_mm_mean": m.mean() * 1e3, "onset_measured_mm_sd": m.std() * 1e3,
                     "onset_loo_mae_mm": fit.onset_mae * 1e3, "onset_loo_mae_mm_fe": fit_fe.onset_mae * 1e3})
    return {"speed_assumed_mm_per_min": SPEED_ASSUMED * 6e4, "families": rows}


def coupled_timing():
    from abuse_fe.coupled import IndentationFECoupled, IndentationLumped, default_theta

    θ = default_theta(IndentationLumped) | {"strain_critical": 0.4}
    print("\nCoupled chain, wall time per run (warm)")
    rows = []
    for cls in (IndentationLumped, IndentationFECoupled):
        sim = cls()
        sim.run(θ, {})
        t0 = time.perf_counter()
        ds = sim.run(θ, {})
        wall = time.perf_counter() - t0
        print(f"{cls.name:24s} {wall:6.2f} s   hazard {int(ds.hazard_level)}  TR {bool(ds.thermal_runaway)}")
        rows.append({"simulator": cls.name, "wall_s": wall, "hazard_level": int(ds.hazard_level),
                     "thermal_runaway": bool(ds.thermal_runaway)})
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--fit-lumped", action="store_true")
    ap.add_argument("--calibration", action="store_true", help="only the calibration table")
    a = ap.parse_args()
    if a.worker:
        out = _one_run(a.worker)
        from mpi4py import MPI

        if MPI.COMM_WORLD.rank == 0:
            print(json.dumps(out))
        sys.exit(0)
    if a.calibration:
        calibration()
        sys.exit(0)
    if a.fit_lumped:
        lumped_agreement(fit=True)
        sys.exit(0)
    payload = {"quick": a.quick, "theta": THETA, "conditions": COND,
               "timings": timings(("coarse", "medium") if a.quick else ("coarse", "medium", "fine"), (1, 2)),
               "hertz": hertz(), "calibration": calibration(), "coupled_timing": coupled_timing()}
    if not a.quick:
        payload["lumped_agreement"] = lumped_agreement()
    print(f"→ {write_result('fe_indentation', payload)}")
