"""Cross-validation fold fits: one ``pm.sample`` per fold vs the weighted model compiled once.

On the default study's run directory (frozen decoder, real tests and calibrated posterior; made up to ``calibrate``
when missing), the same leave-family-out folds are fitted in
this one process, one after another, two ways, at the cross-validation's draws and target_accept:

- ``per_fold_model``: the way folds were fitted before — `risk.bayes.physics.fit_physics` on each fold's tests
  (PyMC model, ADVI, ``pm.sample`` through NumPyro: every fold builds and compiles its own programs);
- ``weighted_once``: `risk.predict.realcv._fit_fold` — the model of all tests with per-test likelihood weights,
  `risk.bayes.weighted.WeightedFits`, compiled on the first fold and reused.

Both start their chains from their ADVI fit and sample in the calibrated posterior's centring. Prints per fold the
wall time, mean leapfrog steps, R-hat, bulk/tail ESS, divergences and the fold's held-out TR log loss, then the ratio
of total wall times; writes ``benchmarks/results/crossval_folds.json``.

    python benchmarks/crossval_folds.py [--run runs/indentation_pouch] [--folds 3] [--draws 300]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("PYTENSOR_FLAGS", "blas__ldflags=")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=REPO / "runs" / "indentation_pouch")
    ap.add_argument("--folds", type=int, default=3, help="leave-family-out folds (families in order)")
    ap.add_argument("--draws", type=int, default=None, help="draws = tune per chain (default: the study's CV draws)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if not (args.run / "posterior.nc").exists():  # the default study up to its calibration (~12 min)
        subprocess.run([sys.executable, "-m", "risk.cli", "calibrate", str(REPO / "studies" / "indentation_pouch.yaml"),
                        "--out", str(args.run)], check=True, cwd=REPO)

    import jax

    from benchmarks.record import write_result
    from risk.bayes.data import calibration_data
    from risk.bayes.physics import centring_from_json, fit_physics, p_tr_from_levels, physics_setup, predict_levels
    from risk.bayes.sampling import load_posterior
    from risk.data import read_real
    from risk.predict.crossval import log_loss
    from risk.predict.realcv import _fit_fold, fold_setup, training_rows
    from risk.study import load_study
    from sim2real import load_decoder

    study = load_study(REPO / "studies" / "indentation_pouch.yaml")
    inf = study.inference
    draws = args.draws or inf.crossval_draws
    decoder_dir = args.run / "model"
    decoder = load_decoder(decoder_dir)
    data = calibration_data(read_real(args.run / "real.nc"), decoder)  # the study's selection (ingest applied it)
    families = list(data.families)
    priors = [study.priors()[n] for n in decoder.parameter_names]
    centred = centring_from_json(json.loads(load_posterior(args.run / "posterior.nc").attrs["centred_families"]))
    setup = fold_setup(physics_setup(decoder, data, priors, seed=args.seed, max_dim=inf.subspace_max_dim,
                                     family_discrepancy=inf.family_discrepancy_scale, family_scale=inf.family_scale,
                                     family_logit=inf.family_logit_scale, family_link=inf.family_link_scale), centred)
    apply = jax.jit(lambda u, c: decoder.jax_apply(u, c)["logit_runaway"])

    def logit_fn(u, c):
        return np.asarray(apply(np.asarray(u, np.float32), np.asarray(c, np.float32)), float)

    family = np.asarray(data.family).astype(str)
    level = np.asarray(data.hazard_level, float)
    kw = {"chains": inf.chains, "target_accept": inf.target_accept, "draws": draws, "tune": draws}
    rows = []
    for arm in ("per_fold_model", "weighted_once"):
        for k, fam in enumerate(families[:args.folds]):
            held = np.flatnonzero((family == fam) & np.isfinite(level))
            train = training_rows(len(family), held, family, True)
            t0 = time.perf_counter()
            if arm == "per_fold_model":
                tree, d = fit_physics(data.subset(train), decoder, setup, seed=args.seed + k, allow_bad_diagnostics=True,
                                      posterior_predictive=False, log_likelihood=False, var_names="free", **kw)
            else:
                tree, d = _fit_fold("benchmark", str(decoder_dir), data, setup, train, args.seed + k, kw)
            wall = time.perf_counter() - t0
            p = p_tr_from_levels(predict_levels(tree, logit_fn, [fam] * held.size, data.conditions[held],
                                                seed=args.seed).mean(axis=0))
            rows.append({"arm": arm, "family_left_out": fam, "wall_s": wall,
                         "leapfrog_steps_mean": float(tree["sample_stats"]["n_steps"].mean()),
                         "rhat_max": d.rhat_max, "ess_bulk_min": d.ess_bulk_min, "ess_tail_min": d.ess_tail_min,
                         "divergences": d.divergences, "tr_log_loss": log_loss((level[held] >= 6).astype(float), p)})
            r = rows[-1]
            print(f"{arm:<16}{fam:<20}{r['wall_s']:>8.1f} s{r['leapfrog_steps_mean']:>7.1f}{r['rhat_max']:>8.3f}"
                  f"{r['ess_bulk_min']:>7.0f}{r['ess_tail_min']:>7.0f}{r['divergences']:>4}{r['tr_log_loss']:>8.3f}",
                  flush=True)
    total = {a: sum(r["wall_s"] for r in rows if r["arm"] == a) for a in ("per_fold_model", "weighted_once")}
    ratio = total["per_fold_model"] / total["weighted_once"]
    print(f"total wall: per-fold models {total['per_fold_model']:.0f} s, weighted once {total['weighted_once']:.0f} s "
          f"(ratio {ratio:.2f})")
    write_result("crossval_folds", {"draws": draws, "tune": draws, "target_accept": inf.target_accept,
                                    "chains": inf.chains, "rows": rows, "total_wall_s": total, "ratio": ratio})


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
