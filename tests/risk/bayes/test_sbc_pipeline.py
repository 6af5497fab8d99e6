"""Simulation-based calibration of the whole physics model (`risk.bayes.sbc`) with a real frozen decoder.

The slow test reads the decoder of the newest cached quick run of the default study
(``.pytest_cache/trisk-quick-runs/indentation_pouch-*`` or ``runs/*`` with ``model/``, copied first: nothing
is written there); without one it builds its own with the CLI stages ``simulate``, ``ingest``, ``train``
(`risk.cli`, ``--quick``) in a temporary directory. `tests.quick_runs.quick_run` is not used: it deletes
the cached runs of other source revisions.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from risk.bayes.sbc import format_table, rank_uniformity

REPO = Path(__file__).resolve().parents[3]
STUDY = REPO / "studies" / "indentation_pouch.yaml"


# ------------------------------------------------------------------------------------- rank_uniformity
def test_rank_uniformity_uniform_and_skewed():
    rng = np.random.default_rng(0)
    L, R = 199, 500
    uniform = {f"p{i}": rng.integers(0, L + 1, R) for i in range(5)}
    res = rank_uniformity(uniform, L, bins=10)
    assert res["pass"] and res["m"] == 5
    assert all(sum(v["counts"]) == R for v in res["parameters"].values())
    # an over-dispersed posterior (truth in the middle: ranks pile up centrally) and a biased one
    central = np.clip(np.round(rng.normal(L / 2, L / 10, R)), 0, L).astype(int)
    biased = np.clip(np.round(rng.beta(1, 3, R) * L), 0, L).astype(int)
    res = rank_uniformity({**uniform, "central": central, "biased": biased}, L, bins=10)
    assert not res["pass"]
    assert not res["parameters"]["central"]["pass"] and not res["parameters"]["biased"]["pass"]
    assert res["parameters"]["central"]["p_bonferroni"] == min(1.0, res["parameters"]["central"]["p_value"] * 7)
    assert "FAIL" in format_table(res)


def test_rank_uniformity_uneven_bins_and_bounds():
    # L + 1 = 7 rank values in 3 bins hold 3, 2, 2 values: every rank value exactly once is uniform (p = 1)
    res = rank_uniformity(np.repeat(np.arange(7), 10), 6, bins=3)
    assert res["parameters"]["rank"]["counts"] == [30, 20, 20]
    assert res["parameters"]["rank"]["p_value"] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        rank_uniformity(np.array([0, 7]), 6)


# ------------------------------------------------------------------------- whole-pipeline SBC (slow)
def _cached_run() -> Path | None:
    cands = list((REPO / ".pytest_cache" / "trisk-quick-runs").glob("indentation_pouch-*")) + list((REPO / "runs").glob("*"))
    cands = [c for c in cands if c.is_dir() and (c / "model" / "model.json").exists() and (c / "real.nc").exists()
             and (c / "study.yaml").exists()]
    return max(cands, key=lambda c: (c / "model" / "model.json").stat().st_mtime) if cands else None


def _run_dir(tmp: Path) -> Path:
    """A private run directory with ``model/``, ``real.nc`` and ``study.yaml``."""
    run = tmp / "run"
    src = _cached_run()
    if src is not None:
        shutil.copytree(src, run, ignore=shutil.ignore_patterns("ensemble.zarr", "report.*", "exports", "*.lock",
                                                                "posterior*.nc", "predictions.nc", "sensitivity.nc"))
        return run
    for stage in ("simulate", "ingest", "train"):  # the project's own stages, quick settings
        res = subprocess.run([sys.executable, "-m", "risk.cli", stage, str(STUDY), "--quick", "--out", str(run)],
                             capture_output=True, text=True, cwd=REPO, timeout=2400)
        assert res.returncode == 0, f"risk {stage} failed:\n{res.stderr[-4000:]}"
    return run


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_sbc_whole_physics_model(tmp_path):
    """20 prior-predictive replicates of the full physics model (3 families × 5 tests, real decoder):
    ranks of every hyperparameter uniform (χ² on 5 bins — 4 expected per bin with 20 replicates —
    Bonferroni over parameters, family-wise level 0.01)."""
    from risk.bayes.physics import physics_setup
    from risk.bayes.sbc import sbc_ranks
    from risk.pipeline import RunContext
    from risk.stages import _physics_inputs
    from risk.study import load_study

    run = _run_dir(tmp_path)
    ctx = RunContext(study=load_study(run / "study.yaml", quick=True), out=run, quick=True)
    decoder, data, priors = _physics_inputs(ctx)
    setup = physics_setup(decoder, data, priors, seed=11, max_dim=ctx.study.inference.subspace_max_dim,
                          family_discrepancy=ctx.study.inference.family_discrepancy_scale,
                          family_scale=ctx.study.inference.family_scale)
    res = sbc_ranks(decoder, data, setup, n_replicates=20, n_families=3, tests_per_family=5, seed=11,
                    batch_size=20, draws=250, tune=250, thin=5)
    uni = rank_uniformity(res.ranks, res.n_draws, bins=5)
    print(format_table(uni), "\nbatches:", res.batches)
    assert res.n_draws == 200 and len(res.ranks) >= 15
    assert uni["pass"], format_table(uni)
