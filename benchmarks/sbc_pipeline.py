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
``--checkpoint FILE``: one `sbc_ranks` call per batch, batch c with its own prior draws (seed + 100·c), and FILE
rewritten with the ranks so far after every batch, so a run stopped early keeps its finished batches;
``--resume FILE`` (with ``--checkpoint``) keeps the finished batches of such a file (or of a plain run of one batch,
which is batch 0) and runs the rest.
Writes ``benchmarks/results/sbc_pipeline.json`` (``--out``) through `record.write_result`.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import write_result  # noqa: E402


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
                                       family_logit=ctx.study.inference.family_logit_scale,
                                       family_link=ctx.study.inference.family_link_scale)


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
    ap.add_argument("--checkpoint", type=Path, default=None,
                    help="run batch by batch (batch c: prior draws and NUTS seeded seed + 100·c) and rewrite this "
                         "file with the ranks so far after every batch")
    ap.add_argument("--resume", type=Path, default=None,
                    help="with --checkpoint: keep the finished batches of this checkpoint (same settings) and run the rest")
    args = ap.parse_args(argv)
    if args.resume is not None and args.checkpoint is None:
        ap.error("--resume needs --checkpoint")

    import numpy as np

    from risk.bayes.sbc import SBCResult, format_table, rank_uniformity, sbc_ranks

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
    kw = dict(n_families=args.families, tests_per_family=args.tests_per_family, draws=args.draws, tune=args.tune,
              thin=args.thin, method=args.method, log=lambda m: print(m, flush=True))
    if args.checkpoint is None:
        res = sbc_ranks(decoder, data, setup, n_replicates=args.replicates, seed=args.seed,
                        batch_size=args.batch_size, **kw)
        out = _payload(res, args, src, uni := rank_uniformity(res.ranks, res.n_draws, bins=args.bins),
                       time.perf_counter() - t0)
    else:
        parts, done, wall0 = [], 0, 0.0
        if args.resume is not None:
            prev = json.loads(args.resume.read_text())
            done = prev["replicates"]
            seeds = prev["design"].get("batch_seeds", [prev["design"]["seed"]])
            same = {k: prev[k] == getattr(args, k) for k in ("draws", "tune", "thin", "bins")} | {
                "method": prev["design"]["method"] == args.method, "batch_size": prev["design"]["batch_size"] == args.batch_size,
                "families": prev["design"]["n_families"] == args.families,
                "tests": prev["design"]["tests_per_family"] == args.tests_per_family,
                "seeds": seeds == [args.seed + 100 * i for i in range(len(seeds))],
                "batches": done == len(seeds) * args.batch_size and done < args.replicates}
            if not all(same.values()):
                sys.exit(f"--resume {args.resume}: settings differ ({[k for k, v in same.items() if not v]})")
            ranks = {k: np.asarray(v, dtype=int) for k, v in prev["ranks"].items()}
            parts.append(SBCResult(ranks, prev["n_thinned_draws"], {}, prev["design"], prev["batches"]))
            wall0 = prev["wall_time_s"]
            print(f"resumed {done} replicates ({len(seeds)} batches, {wall0:.0f} s) from {args.resume}", flush=True)
        for c, start in enumerate(range(0, args.replicates, args.batch_size)):
            if start < done:
                continue
            n = min(args.batch_size, args.replicates - start)
            part = sbc_ranks(decoder, data, setup, n_replicates=n, seed=args.seed + 100 * c, batch_size=n, **kw)
            for rec in part.batches:
                rec.update(batch=c, replicates=[start, start + n - 1], seed=args.seed + 100 * c)
            parts.append(part)
            res = SBCResult({k: np.concatenate([q.ranks[k] for q in parts]) for k in part.ranks}, part.n_draws,
                            {k: np.concatenate([q.truth[k] for q in parts if q.truth]) for k in part.truth},
                            dict(part.design, seed=args.seed, batch_seeds=[args.seed + 100 * i for i in range(c + 1)]),
                            [b for q in parts for b in q.batches])
            uni = rank_uniformity(res.ranks, res.n_draws, bins=args.bins)
            out = _payload(res, args, src, uni, wall0 + time.perf_counter() - t0)
            out["complete"] = start + n >= args.replicates
            if args.resume is not None:
                out["resumed_from"] = {"file": str(args.resume), "replicates": done, "wall_time_s": wall0}
            write_result("sbc_pipeline", out, path=args.checkpoint)
    print(format_table(uni))
    print(f"{out['replicates']} replicates, {res.n_draws} thinned draws each, {res.divergences} divergences, "
          f"wall time {out['wall_time_s'] / 60:.1f} min")
    path = write_result("sbc_pipeline", out, path=args.out)
    print(f"→ {path}")
    return out


def _payload(res, args, src, uni: dict, wall: float) -> dict:
    """The recorded result: settings, p-values, rank histograms, sampler records and ranks."""
    return {"replicates": len(next(iter(res.ranks.values()))), "run": str(src), "design": res.design,
            "draws": args.draws, "tune": args.tune, "thin": args.thin, "n_thinned_draws": res.n_draws, "bins": args.bins,
            "p_values": {k: v["p_value"] for k, v in uni["parameters"].items()},
            "p_bonferroni": {k: v["p_bonferroni"] for k, v in uni["parameters"].items()},
            "rank_histograms": {k: v["counts"] for k, v in uni["parameters"].items()},
            "m": uni["m"], "alpha": uni["alpha"], "min_p_bonferroni": uni["min_p_bonferroni"],
            "verdict": "pass" if uni["pass"] else "fail", "divergences": res.divergences, "batches": res.batches,
            "wall_time_s": round(wall, 1),
            "ranks": {k: v.tolist() for k, v in res.ranks.items()}}


if __name__ == "__main__":
    main()
