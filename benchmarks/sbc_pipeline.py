"""Simulation-based calibration of the whole hierarchical physics model with a real frozen decoder.

Draws R replicates (parameters, observables, hazard levels) from the prior predictive of the model
`risk.bayes.physics.build_physics_model` samples — decoder surrogate in the study's data-informed
subspace, prior moments, family covariate, link scale, ordinal cutpoints, discrepancy — at a reduced
design (3 families × 5 tests), fits every replicate with NumPyro NUTS in batches, and tests the ranks of
the true hyperparameters for uniformity (χ² on 10 bins, Bonferroni over parameters; `risk.bayes.sbc`).

    nice -n 10 .venv/bin/python benchmarks/sbc_pipeline.py [--run RUN_DIR] [--replicates 100]

``--run``: a run directory with ``model/`` (the frozen decoder), ``study.yaml`` and ``real.nc``, e.g. a
``risk run studies/indentation_pouch.yaml --quick`` run (``risk simulate``, ``ingest``, ``train`` are
enough). Default: the newest ``runs/*`` or ``.pytest_cache/trisk-quick-runs/indentation_pouch-*`` with a
``model/`` dir. The run is copied to a temporary directory first (nothing is written into it).
Writes ``benchmarks/results/sbc_pipeline.json``.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "sbc_pipeline.json"


def find_run() -> Path:
    """The newest run directory with a trained decoder, a study file and real tests."""
    cands = list((REPO / "runs").glob("*")) + list((REPO / ".pytest_cache" / "trisk-quick-runs").glob("indentation_pouch-*"))
    cands = [c for c in cands if (c / "model" / "model.json").exists() and (c / "study.yaml").exists()
             and (c / "real.nc").exists()]
    if not cands:
        sys.exit("no run with model/, study.yaml and real.nc found: pass --run, or build one with "
                 "`risk simulate/ingest/train studies/indentation_pouch.yaml --quick --out DIR`")
    return max(cands, key=lambda c: (c / "model" / "model.json").stat().st_mtime)


def load_inputs(run: Path, seed: int, max_dim: int | None = None):
    """(decoder, calibration data, physics setup) of a run directory, as the calibrate stage builds them."""
    from risk.bayes.physics import physics_setup
    from risk.pipeline import RunContext
    from risk.stages import _physics_inputs
    from risk.study import load_study

    ctx = RunContext(study=load_study(run / "study.yaml", quick=True), out=run, quick=True)
    inputs = _physics_inputs(ctx)
    if inputs is None:
        sys.exit(f"{run}: no real tests (real.nc) to shape the design")
    decoder, data, priors = inputs
    dim = ctx.study.inference.subspace_max_dim if max_dim is None else max_dim
    return decoder, data, physics_setup(decoder, data, priors, seed=seed, max_dim=dim,
                                       family_discrepancy=ctx.study.inference.family_discrepancy_scale,
                                       family_scale=ctx.study.inference.family_scale,
                                       family_logit=ctx.study.inference.family_logit_scale)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=None)
    ap.add_argument("--replicates", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=10)  # 10 copies per NUTS run: the latents of a batch grow with its square
    ap.add_argument("--families", type=int, default=3)
    ap.add_argument("--tests-per-family", type=int, default=5)
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--tune", type=int, default=200)
    ap.add_argument("--thin", type=int, default=4)
    ap.add_argument("--bins", type=int, default=10)
    ap.add_argument("--seed", type=int, default=20261202)
    ap.add_argument("--method", choices=("folds", "nested"), default="folds")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    from risk.bayes.sbc import format_table, rank_uniformity, sbc_ranks

    t0 = time.perf_counter()
    src = args.run or find_run()
    tmp = Path(tempfile.mkdtemp(prefix="sbc-run-"))
    try:
        run = tmp / "run"
        shutil.copytree(src, run, ignore=shutil.ignore_patterns("ensemble.zarr", "report.*", "exports", "*.lock",
                                                                "posterior*.nc", "predictions.nc", "sensitivity.nc"))
        decoder, data, setup = load_inputs(run, args.seed)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"decoder of {src}: {len(decoder.parameter_names)} parameters, subspace dim {setup.subspace.dim}", flush=True)
    res = sbc_ranks(decoder, data, setup, n_replicates=args.replicates, n_families=args.families,
                    tests_per_family=args.tests_per_family, seed=args.seed, batch_size=args.batch_size,
                    draws=args.draws, tune=args.tune, thin=args.thin, method=args.method,
                    log=lambda m: print(m, flush=True))
    uni = rank_uniformity(res.ranks, res.n_draws, bins=args.bins)
    wall = time.perf_counter() - t0
    print(format_table(uni))
    print(f"{args.replicates} replicates, {res.n_draws} thinned draws each, {res.divergences} divergences, "
          f"wall time {wall / 60:.1f} min")
    out = {"replicates": args.replicates, "run": str(src), "design": res.design, "draws": args.draws,
           "tune": args.tune, "thin": args.thin, "n_thinned_draws": res.n_draws, "bins": args.bins,
           "p_values": {k: v["p_value"] for k, v in uni["parameters"].items()},
           "p_bonferroni": {k: v["p_bonferroni"] for k, v in uni["parameters"].items()},
           "rank_histograms": {k: v["counts"] for k, v in uni["parameters"].items()},
           "m": uni["m"], "alpha": uni["alpha"], "min_p_bonferroni": uni["min_p_bonferroni"],
           "verdict": "pass" if uni["pass"] else "fail", "divergences": res.divergences, "batches": res.batches,
           "wall_time_s": round(wall, 1),
           "ranks": {k: v.tolist() for k, v in res.ranks.items()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print(f"→ {args.out}")
    return out


if __name__ == "__main__":
    main()
