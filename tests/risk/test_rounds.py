"""Simulation rounds at the posterior (risk.rounds, ``sim2real.rounds``) on the real quick indentation run (the
one the report tests read): the coupled FE chain simulating posterior cells, the decoder retrained and NUTS
recalibrating, at small sizes."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from risk import stages
from risk.bayes.diagnostics import Diagnostics
from risk.bayes.sampling import load_posterior
from risk.pipeline import RunContext
from risk.rounds import posterior_design
from risk.rundir import decoder_dir
from risk.study import load_study
from simulators.ensemble import open_ensemble
from tests.quick_runs import REPO, quick_run


ROUND = 4  # simulations per round and in the evaluation set


@pytest.fixture(scope="module")
def quick_indentation(tmp_path_factory):
    run = quick_run("indentation_pouch")
    assert run.returncode == 0, run.stderr[-2000:]
    out = tmp_path_factory.mktemp("rounds") / "run"
    out.mkdir()
    for name in ("model", "ensemble.zarr"):
        shutil.copytree(run.out / name, out / name)
    for name in ("real.nc", "posterior.nc", "diagnostics.json", "study.yaml"):
        shutil.copy2(run.out / name, out / name)
    study = load_study(REPO / "studies" / "indentation_pouch.yaml", quick=True)
    study = study.model_copy(update={
        "sim2real": study.sim2real.model_copy(update={"rounds": 1, "round_size": ROUND}),
        "inference": study.inference.model_copy(update={"draws": 100, "tune": 100})})
    return RunContext(study=study, out=out, quick=True)


def test_posterior_design_simulates_real_tests_conditions_inside_the_priors(quick_indentation):
    ctx = quick_indentation
    decoder, data, priors = stages._physics_inputs(ctx)
    tree = load_posterior(ctx.path("posterior.nc"))
    plan = posterior_design(tree, decoder, data, ctx.study.condition_values(), 40, seed=1)
    assert len(plan) == 40 and plan.condition_names == tuple(ctx.study.condition_values())
    for k, p in enumerate(priors):
        lo, hi = p.ppf(0.0), p.ppf(1.0)
        assert np.all((plan.theta[:, k] >= lo) & (plan.theta[:, k] <= hi)), decoder.parameter_names[k]
    # every simulated condition vector is one of a real test's (the decoder's conditions, in the simulator's order)
    names = list(decoder.condition_names)
    cols = [plan.condition_names.index(n) for n in names]
    real = {tuple(np.round(c, 6)) for c in np.asarray(data.conditions)}
    assert all(tuple(np.round(row, 6)) in real for row in plan.condition[:, cols])
    # the cells the decoder will be refined on lie inside its design region (the calibrated model's box)
    lower, upper = (np.asarray(b) for b in json.loads(tree.attrs["design_bounds"]))
    u_plan = decoder.to_unconstrained(plan.theta)
    assert np.all((u_plan >= lower - 1e-9) & (u_plan <= upper + 1e-9))


@pytest.mark.slow  # ~2 min on 2 cores (simulations on a Dask cluster, decoder retrained, two ADVI fits and NUTS compiled
# afresh); no shipped study runs rounds (sim2real.rounds: 0), so it is an extra: `pytest -m slow tests/risk/test_rounds.py`
def test_one_round_retrains_recalibrates_and_records(quick_indentation):
    ctx = quick_indentation
    decoder, data, priors = stages._physics_inputs(ctx)
    tree = load_posterior(ctx.path("posterior.nc"))
    diag = Diagnostics(**{k: v for k, v in json.loads(ctx.path("diagnostics.json").read_text()).items()
                          if k in Diagnostics.__dataclass_fields__})
    before = ctx.path("posterior.nc").read_bytes()
    *_, summary = stages._simulation_rounds(ctx, decoder, data, priors, tree, diag, seed=3)
    rec = json.loads(ctx.path("rounds.json").read_text())
    n_eval = rec["evaluation"]["simulations"]
    assert [r["round"] for r in rec["rounds"]] == [0, 1] and 1 <= n_eval <= ROUND  # a failed run is recorded
    n0 = open_ensemble(ctx.path("ensemble.zarr")).sizes["sample"]
    round1 = open_ensemble(ctx.path("rounds/round1/ensemble.zarr")).sizes["sample"]
    assert rec["rounds"][1]["simulations"] == n0 + round1 and round1 + rec["rounds"][1]["failed"] == ROUND
    for r in rec["rounds"]:  # every round's decoder scored on the same evaluation simulations
        err = r["decoder_error_posterior_region"]
        assert err["n"] == n_eval and all(np.isfinite(v) and v >= 0 for v in err["nrmse"].values())
        assert set(r["p_tr"]) == {sc.name for sc in ctx.study.scenarios} and all(0 <= p <= 1 for p in r["p_tr"].values())
    # the last round's decoder and posterior are the run's: downstream stages read them
    assert decoder_dir(ctx.out) == ctx.path("model_refined")
    assert ctx.path("rounds/round0/posterior.nc").read_bytes() == before != ctx.path("posterior.nc").read_bytes()
    assert json.loads(ctx.path("diagnostics.json").read_text()) == json.loads(
        ctx.path("rounds/round1/diagnostics.json").read_text())
    assert [s["round"] for s in summary] == [0, 1]
