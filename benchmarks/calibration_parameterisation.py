"""Calibration wall time and ESS/s: the shipped parameterisation vs the ones it replaced.

Both fits use the same run directory (frozen decoder + real tests of the default study, made by
``risk run studies/indentation_pouch.yaml`` up to ``train``), the same priors, draws and seed:

- ``subspace``: `risk.bayes.physics` as the calibrate stage runs it (family and cell latents in the
  k-dimensional data-informed subspace, `risk.bayes.subspace`, with the soft wall at the decoder's design
  region, `risk.bayes.model.design_penalty`, family locations partially centred, as far as the ADVI
  pilot finds them pinned by the data, `risk.bayes.physics.centred_families`);
- ``subspace_noncentred``: the same with every family location non-centred (the parameterisation before);
- ``subspace_no_wall``: the same without the wall (families free to leave the simulated region);
- ``full``: the identity basis without the wall (every physical parameter a free family location and a
  per-test latent), the first parameterisation — the same model otherwise (family runaway-logit offsets and
  per-family link scales), except the family covariate, which is a direction of the subspace.

Every arm is fitted as the calibrate stage fits it (`risk.stages`: the study's chains, target_accept and
inference options).

Prints a table (wall time, min bulk/tail ESS, ESS/s, R-hat, divergences) and writes
``benchmarks/results/calibration_parameterisation.json``.

    python benchmarks/calibration_parameterisation.py [--run runs/indentation_pouch] [--draws 1000 --tune 1000]
        [--arms subspace,subspace_noncentred,subspace_no_wall,full]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("PYTENSOR_FLAGS", "blas__ldflags=")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from benchmarks.record import write_result  # noqa: E402


def _ensure_run(run: Path) -> None:
    if (run / "model" / "model.json").exists() and (run / "real.nc").exists():
        return
    cmd = [sys.executable, "-m", "risk.cli", "train", str(REPO / "studies" / "indentation_pouch.yaml"), "--out", str(run)]
    subprocess.run(cmd, check=True, cwd=REPO)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=REPO / "runs" / "indentation_pouch")
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--arms", default="subspace,subspace_noncentred,subspace_no_wall,full",
                    help="comma-separated arms (module doc); the full space takes ~20 min")
    args = ap.parse_args()
    _ensure_run(args.run)

    from risk.bayes.data import calibration_data
    from risk.bayes.physics import fit_physics, physics_setup
    from risk.bayes.subspace import InformedSubspace
    from risk.data import read_real
    from risk.study import load_study
    from sim2real import load_decoder

    study = load_study(REPO / "studies" / "indentation_pouch.yaml")
    decoder = load_decoder(args.run / "model")
    data = calibration_data(read_real(args.run / "real.nc"), decoder)
    priors = [study.priors()[n] for n in decoder.parameter_names]
    inf = study.inference
    sub = physics_setup(decoder, data, priors, seed=args.seed, max_dim=inf.subspace_max_dim,
                        family_discrepancy=inf.family_discrepancy_scale, emulator_length=inf.emulator_error_length,
                        family_scale=inf.family_scale, family_logit=inf.family_logit_scale,
                        family_link=inf.family_link_scale)
    full = replace(sub, subspace=InformedSubspace.full(decoder.parameter_names, sub.prior_mean), covariate=None,
                   design_bounds=None, centred=None)
    rows = []
    arms = {"subspace": sub, "subspace_noncentred": replace(sub, centred=(False,) * sub.subspace.dim),
            "subspace_no_wall": replace(sub, design_bounds=None), "full": full}
    for name in args.arms.split(","):
        setup = arms[name]
        t0 = time.perf_counter()
        tree, d = fit_physics(data, decoder, setup, seed=args.seed, draws=args.draws, tune=args.tune,
                              chains=inf.chains, target_accept=inf.target_accept, allow_bad_diagnostics=True,
                              posterior_predictive=False)
        wall = time.perf_counter() - t0
        steps = float(tree["sample_stats"]["n_steps"].mean()) if "n_steps" in tree["sample_stats"] else float("nan")
        rows.append({"parameterisation": name, "dim": setup.subspace.dim, "wall_s": wall,
                     "centred": json.loads(tree.attrs.get("centred_families", "null")), "leapfrog_steps_mean": steps,
                     "ess_bulk_min": d.ess_bulk_min, "ess_tail_min": d.ess_tail_min,
                     "ess_bulk_per_s": d.ess_bulk_min / wall, "rhat_max": d.rhat_max, "divergences": d.divergences,
                     "ok": d.ok})
    print(f"{'parameterisation':<21}{'k':>3}{'wall [s]':>10}{'steps':>7}{'bulk ESS':>10}{'tail ESS':>10}{'ESS/s':>8}"
          f"{'R-hat':>8}{'div':>6}  ok")
    for r in rows:
        print(f"{r['parameterisation']:<21}{r['dim']:>3}{r['wall_s']:>10.1f}{r['leapfrog_steps_mean']:>7.1f}"
              f"{r['ess_bulk_min']:>10.0f}{r['ess_tail_min']:>10.0f}{r['ess_bulk_per_s']:>8.2f}{r['rhat_max']:>8.3f}"
              f"{r['divergences']:>6}  {r['ok']}")
    ratio = rows[0]["ess_bulk_per_s"] / max(rows[-1]["ess_bulk_per_s"], 1e-12)
    print(f"ESS/s ratio {rows[0]['parameterisation']}/{rows[-1]['parameterisation']}: {ratio:.1f}")
    path = write_result("calibration_parameterisation",
                        {"draws": args.draws, "tune": args.tune, "tests": int(len(data.test)), "rows": rows,
                         "ess_per_s_ratio": ratio, "ratio_of": [rows[0]["parameterisation"], rows[-1]["parameterisation"]],
                         "eigenvalues": sub.subspace.eigenvalues.tolist()})
    print(f"→ {path}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
