"""The stages of a study, in order: simulate → fidelity → convergence → ingest → train → calibrate → crossvalidate →
predict → report → export.

Each function takes a `RunContext`, writes its artefacts into the run directory and returns a small
JSON summary for ``stages.json``. Heavy packages are imported inside the stage that needs them.
"""
from __future__ import annotations

import json
import math
import os

import numpy as np

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from risk.pipeline import RunContext, Stage
from risk.rundir import decoder_dir


def progress_bar(ctx: RunContext) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=ctx.console, transient=False)


def simulate(ctx: RunContext) -> dict:
    """Ensemble over the priors on Dask → ``ensemble.zarr`` (+ ``failures.jsonl``)."""
    from simulators.ensemble import DesignMismatch, design_sets, run_ensemble

    s = ctx.study
    plan = design_sets(s.priors(), s.condition_values(), s.condition_sets(), s.ensemble.size, s.ensemble.design,
                       ctx.stage_seed("simulate"))
    with progress_bar(ctx) as bar:
        task = bar.add_task(f"simulating {s.simulator.name}", total=len(plan))
        try:
            res = run_ensemble(s.simulator.name, dict(s.simulator.options), plan, ctx.path("ensemble.zarr"),
                               cluster=ctx.cluster or s.ensemble.cluster, workers=s.ensemble.workers,
                               threads_per_worker=s.ensemble.threads_per_worker, timeout=s.ensemble.timeout,
                               mpi_ranks=s.ensemble.mpi_ranks, retry_failed=ctx.force,
                               batch_size=s.ensemble.batch_size, attrs={"study_hash": s.hash},
                               progress=lambda done, total: bar.update(task, completed=done))
        except DesignMismatch as err:
            from risk.errors import InputError

            raise InputError(str(err).split(": ", 1)[1], path=ctx.path("ensemble.zarr"), field="ensemble") from None
    if len(res.failed):
        ctx.console.print(f"[yellow]{len(res.failed)} simulations failed; see {ctx.path('failures.jsonl')}[/yellow]")
    ok = res.n_done_before + len(res.computed)
    if ok == 0:
        from risk.errors import InputError

        raise InputError("every simulation failed; see failures.jsonl", path=ctx.path("failures.jsonl"))
    return {"samples": res.n_total, "finished": ok, "failed": len(res.failed) + 0,
            "computed_now": len(res.computed), "seconds": round(res.wall_time, 2)}


def fidelity(ctx: RunContext) -> dict:
    """The study's simulator against the higher-fidelity simulator it reduces (``reference:``), on fresh draws across
    its prior (`risk.fidelity.compare`) → ``fidelity.json``; a study without a reference gets a note."""
    s = ctx.study
    if s.reference is None:
        return {"note": "study names no reference simulator"}
    from risk.fidelity import compare

    r = s.reference
    res = compare(s.simulator.name, dict(s.simulator.options), r.simulator, dict(r.options), s.priors(),
                  s.condition_values(), s.condition_sets(), n=r.runs, seed=ctx.stage_seed("fidelity"),
                  workers=max(1, s.ensemble.workers), timeout=s.ensemble.timeout,
                  observables=tuple(s.sim2real.observables))
    res["quick"] = bool(ctx.quick)
    ctx.path("fidelity.json").write_text(json.dumps(res, indent=2, default=float))
    if res["failures"]:
        ctx.console.print(f"[yellow]{len(res['failures'])} reference-check runs failed; see fidelity.json[/yellow]")
    return {"reference": r.simulator, "draws": res["n_draws"], "failures": len(res["failures"]),
            **{f"{arm}_agreement": res[arm]["runaway_agreement"] for arm in res["arms"]}}


def convergence(ctx: RunContext) -> dict:
    """The study's simulator on its own discretisation and two refined ones (``convergence:``), on fresh draws across
    its prior, each output's numerical uncertainty against its spread over the ensemble (`risk.convergence.check`)
    → ``mesh_convergence.json``; a study without the section gets a note."""
    s = ctx.study
    if s.convergence is None:
        return {"note": "study asks for no convergence check"}
    from risk.convergence import EXTRA_OUTPUTS, check, ensemble_spread
    from simulators.ensemble import open_ensemble

    observables = tuple(s.sim2real.observables)
    spread = ensemble_spread(open_ensemble(ctx.path("ensemble.zarr")).load(), (*observables, *EXTRA_OUTPUTS))
    if s.convergence.model == "reference":  # the FE model the study's mesh-free simulator reduces
        name, options, reduced_from = s.reference.simulator, dict(s.reference.options), (s.simulator.name,
                                                                                           dict(s.simulator.options))
    else:
        name, options, reduced_from = s.simulator.name, dict(s.simulator.options), None
    res = check(name, options, s.priors(), s.condition_values(), s.condition_sets(), n=s.convergence.runs,
                seed=ctx.stage_seed("convergence"), input_spread=spread, workers=max(1, s.ensemble.workers),
                timeout=s.ensemble.timeout, observables=observables, reduced_from=reduced_from)
    res["quick"] = bool(ctx.quick)
    ctx.path("mesh_convergence.json").write_text(json.dumps(res, indent=2, default=_json_default))
    if res["failures"]:
        ctx.console.print(f"[yellow]{len(res['failures'])} convergence-check runs failed; see "
                          f"mesh_convergence.json[/yellow]")
    return {"draws": res["n_draws"], "complete": res["n_complete"], "converged": res["converged"],
            "runaway_changes": res["runaway_changes"],
            **{f"{k}_ratio_to_input": round(v["ratio_to_input"], 4) for k, v in res["outputs"].items()
               if math.isfinite(v["ratio_to_input"])}}


def _json_default(x):
    """Tuples of options and NumPy scalars in ``mesh_convergence.json``."""
    return x.tolist() if hasattr(x, "tolist") else float(x)


def ingest(ctx: RunContext) -> dict:
    """Real tests → ``real.nc`` (same observables as the simulations)."""
    s = ctx.study
    if s.data is None:
        return {"tests": 0, "note": "study has no data section"}
    import xarray as xr

    from risk.data import read, write_real

    ds = read(s.data.kind, s.data_path())
    ds = ds.rename({k: v for k, v in s.data.rename.items() if k in ds})
    for name, value in s.data.conditions.items():
        if name not in ds:
            from risk.study import _quantity_si

            ds[name] = ("test", np.full(ds.sizes["test"], _quantity_si(value)), {"units": "SI", "long_name": name})
    if s.data.families:
        keep = ds["cell_family"].isin(s.data.families)
        ds = ds.sel(test=keep.values)
    summary: dict = {}
    if s.data.trigger_conditions:  # the simulator conditions that stand for each trigger mechanism
        from risk.data.ftrc import apply_trigger_conditions
        from risk.errors import DataError

        fixed = {k: v for k, v in s.condition_values().items() if not isinstance(v, tuple)}
        try:
            ds, summary["trigger_conditions"] = apply_trigger_conditions(ds, s.trigger_conditions(), fixed)
        except DataError as err:
            raise DataError(err.problem, path=s.data_path(), field="trigger_conditions") from None
    if s.data.runaway_triggers:  # outcomes of triggers the simulator does not model are not used, and listed
        if "trigger" not in ds or "thermal_runaway" not in ds:
            from risk.errors import DataError

            raise DataError(f"data.runaway_triggers is set but the {s.data.kind} data have no trigger and runaway "
                            f"columns", path=s.data_path(), field="runaway_triggers")
        other = ~ds["trigger"].isin(s.data.runaway_triggers).values & np.isfinite(ds["thermal_runaway"].values)
        if other.any():
            ds["thermal_runaway"] = ds["thermal_runaway"].where(~xr.DataArray(other, dims="test"))
            summary["outcome_not_used"] = {
                "reason": f"runaway of a trigger {s.simulator.name} does not model "
                          f"(data.runaway_triggers: {', '.join(s.data.runaway_triggers)}); observables kept",
                "tests": [str(t) for t in ds["test"].values[other]]}
    write_real(ds, ctx.path("real.nc"))
    return {"tests": int(ds.sizes.get("test", 0)), "kind": s.data.kind, **summary}


def _real(ctx: RunContext):
    from risk.data import read_real

    path = ctx.path("real.nc")
    return read_real(path) if path.exists() else None


def train(ctx: RunContext) -> dict:
    """sim2real: decoder p(x | θ, c) on the ensemble, frozen; encoder q(θ | x, c) on real tests → ``model/``."""
    import torch

    from sim2real import EncoderConfig
    from simulators.ensemble import open_ensemble

    s, cfg = ctx.study, ctx.study.sim2real
    # tiny networks: one thread is as fast, and two spin-wait under contention (calorimetry quick train 33 s alone,
    # 261 s beside a running test suite with 2 threads)
    torch.set_num_threads(1)
    ens = open_ensemble(ctx.path("ensemble.zarr")).load()
    seed = ctx.stage_seed("train")
    decoder = _decoder_builder(ctx).append_simulations(ens).train()
    real = _real(ctx)
    fit = None
    if real is not None and real.sizes.get("test", 0):
        fit = decoder.fit_encoder(real, EncoderConfig(steps=cfg.encoder_steps, restarts=cfg.restarts, seed=seed))
    decoder.save(ctx.path("model"), fit)
    metrics = json.loads(ctx.path("model/metrics.json").read_text()) if ctx.path("model/metrics.json").exists() else {}
    return {"simulations": int(ens.sizes["sample"]), "encoder": fit is not None,
            "metrics": {k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}}


def _decoder_builder(ctx: RunContext):
    """An untrained `FrozenDecoderCVAE` with the study's simulator parameters, priors and sim2real settings."""
    from risk.study import _quantity_si
    from sim2real import DecoderConfig, FrozenDecoderCVAE
    from simulators import load
    from simulators.chemistry import CATEGORICAL_CONDITIONS

    s, cfg = ctx.study, ctx.study.sim2real
    names = [p.name for p in load(s.simulator.name).parameters]
    priors = s.priors()
    dcfg = DecoderConfig(width=cfg.hidden, depth=cfg.layers, epochs=cfg.epochs_decoder, lr=cfg.learning_rate,
                         val_fraction=cfg.holdout_fraction, gp_observables=tuple(cfg.gp_observables),
                         loss=cfg.decoder_loss, weight_decay=cfg.weight_decay, batch_size=cfg.batch_size,
                         seed=ctx.stage_seed("train"))
    # a test whose chemistry the data do not state (the Soteria cells) is simulated with the study's stated one
    stated = {k: _quantity_si(v) for k, v in s.conditions.items()
              if k in CATEGORICAL_CONDITIONS and isinstance(v, str)}
    return FrozenDecoderCVAE((names, [priors[n] for n in names]), observables=cfg.observables, config=dcfg,
                             condition_defaults=stated or None)


def _scenarios(ctx: RunContext, decoder):
    """The study's scenarios as decoder condition vectors [SI]: a condition the scenario does not set comes
    from the study's fixed value (a condition every simulation and test of the study shares), else from its
    family's real tests (their median), else from the simulator's default — never from the ensemble; a
    scenario whose family has no data and sets no capacity fails with its name."""
    from risk.errors import StudyError
    from risk.predict.scenarios import Scenario
    from risk.study import _quantity_si

    from risk.predict.scenarios import family_conditions

    from simulators.chemistry import CATEGORICAL_CONDITIONS

    real = _real(ctx)
    # a categorical condition (the chemistry) is the family's own, not the study's design default
    fixed = {k: _quantity_si(v) for k, v in ctx.study.conditions.items()
             if isinstance(v, (int, float, str)) and k not in CATEGORICAL_CONDITIONS}
    out = []
    for sc in ctx.study.scenarios:
        given = {**fixed, "soc": sc.soc, **{k: _quantity_si(v) for k, v in sc.conditions.items()}}
        try:
            c = family_conditions(decoder.layout, real, sc.cell_family, given)
        except ValueError as err:
            raise StudyError(f"scenario {sc.name!r}: {err}", field="scenarios") from None
        out.append(Scenario(sc.name, sc.cell_family, sc.soc, sc.severity, c))
    return out


def _physics_inputs(ctx: RunContext):
    """(decoder, calibration data, priors in decoder order) of the study, or None without real tests."""
    from risk.bayes.data import calibration_data
    from sim2real import load_decoder

    real = _real(ctx)
    if real is None or not real.sizes.get("test", 0):
        return None
    decoder = load_decoder(decoder_dir(ctx.out))
    priors = ctx.study.priors()
    return decoder, calibration_data(real, decoder), [priors[n] for n in decoder.parameter_names]


def _metadata_table(ctx: RunContext):
    """The real-data table the metadata baselines read (indentation ``tests.csv`` or the databank)."""
    s = ctx.study
    table = s.data_path() / "tests.csv" if s.data.kind == "indentation" else s.data_path()
    return table if table.exists() else None


#: --quick draws (and warm-up draws) per chain of the metadata baseline fitted beside the physics model
QUICK_METADATA_DRAWS = 500


def calibrate(ctx: RunContext) -> dict:
    """The physics model (frozen decoder as likelihood, data-informed subspace) with NumPyro NUTS →
    ``posterior.nc`` + ``diagnostics.json``; the metadata baseline → ``posterior_<kind>.nc``."""
    from risk.bayes.physics import fit_physics, physics_setup

    import shutil

    s, inf = ctx.study, ctx.study.inference
    shutil.rmtree(ctx.path("model_refined"), ignore_errors=True)  # round 0 starts from the train stage's decoder
    ctx.path("rounds.json").unlink(missing_ok=True)  # a run without rounds shows none (round stores stay, to resume)
    inputs = _physics_inputs(ctx)
    if inputs is None:
        return {"note": "no real tests: the prior predictive is used downstream"}
    decoder, data, priors = inputs
    seed = ctx.stage_seed("calibrate")
    setup = physics_setup(decoder, data, priors, seed=seed, max_dim=inf.subspace_max_dim,
                          family_discrepancy=inf.family_discrepancy_scale, emulator_length=inf.emulator_error_length,
                          family_scale=inf.family_scale, family_logit=inf.family_logit_scale, family_link=inf.family_link_scale)
    table = _metadata_table(ctx)
    metadata = _start_metadata_fit(ctx, table, seed) if table is not None else None
    # keep going on bad diagnostics: the report shows the failure banner, and `risk run` exits 3 at the
    # end (from diagnostics.json) unless inference.allow_bad_diagnostics
    tree, diag = fit_physics(data, decoder, setup, seed=seed, draws=inf.draws, tune=inf.tune, chains=inf.chains,
                             target_accept=inf.target_accept, out_dir=ctx.out, allow_bad_diagnostics=True, force=True,
                             provenance={"study_hash": s.hash, "data_notes": list(data.notes)})
    summary: dict = {}
    if s.sim2real.rounds:
        decoder, data, setup, tree, diag, summary["rounds"] = _simulation_rounds(ctx, decoder, data, priors, tree,
                                                                                diag, seed=seed)
    ctx.path("subspace.json").write_text(json.dumps({"eigenvalues": setup.subspace.eigenvalues.tolist(),
                                                     "directions": setup.subspace.table(),
                                                     "n_tests": setup.subspace.n_tests}, indent=2))
    mis = _misspecification(ctx, tree, data, decoder)
    summary |= {"tests": len(data.test), "families": list(data.families), "diagnostics_ok": bool(diag.ok),
                "subspace_dim": setup.subspace.dim, "data_notes": list(data.notes),
                "misspecification_flag": mis["flag"]}
    if metadata is not None:
        metadata.result()  # re-raises the baseline's error, if any
        summary["metadata_model"] = s.data.kind
    return summary


def _start_metadata_fit(ctx: RunContext, table, seed: int):
    """The metadata baseline behind `risk predict --model metadata` (on the study's families), fitted in a spawned
    process beside the physics NUTS run, whose vectorised chains keep one core busy → its future.

    --quick: at most `QUICK_METADATA_DRAWS` + as many warm-up draws per chain (the baseline is not gated here; its
    own diagnostics are written beside it)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from risk.bayes.baselines import calibrate_metadata

    inf = ctx.study.inference
    draws, tune = (min(inf.draws, QUICK_METADATA_DRAWS), min(inf.tune, QUICK_METADATA_DRAWS)) if ctx.quick else \
        (inf.draws, inf.tune)
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    future = pool.submit(calibrate_metadata, ctx.out, table, seed=seed, draws=draws, tune=tune,
                         families=ctx.study.data.families or None, allow_bad_diagnostics=True)
    pool.shutdown(wait=False)  # the worker exits when its fit is done
    return future


def _simulation_rounds(ctx: RunContext, decoder, data, priors, tree, diag, *, seed: int):
    """``sim2real.rounds`` rounds of `risk.rounds`: simulate new cells drawn from the posterior, retrain the
    decoder on every simulation so far, recalibrate. Each round in ``rounds/round<r>/`` (``ensemble.zarr``,
    ``model/``, ``posterior.nc``, ``diagnostics.json``; round 0's posterior copied to ``rounds/round0/``); the
    last round's decoder → ``model_refined/`` (`risk.rundir.decoder_dir`) and its posterior and diagnostics
    replace the top-level ones; ``rounds.json`` (`risk.rounds.round_record`). Returns the last round's
    ``(decoder, data, setup, tree, diagnostics, summary)``."""
    import shutil

    import torch
    from distributed import Client

    from risk.rounds import decoder_error, posterior_design, round_record, scenario_p_tr
    from simulators.ensemble import local_cluster, open_ensemble, run_ensemble

    s, cfg = ctx.study, ctx.study.sim2real
    torch.set_num_threads(1)
    base = ctx.path("rounds")
    (base / "round0").mkdir(parents=True, exist_ok=True)
    for name in ("posterior.nc", "diagnostics.json"):
        shutil.copy2(ctx.path(name), base / "round0" / name)
    scenarios = _scenarios(ctx, decoder)
    cluster = ctx.cluster or s.ensemble.cluster
    own = local_cluster(s.ensemble.workers, s.ensemble.threads_per_worker) if cluster == "local" else None
    client = Client(own if own is not None else cluster, set_as_default=False)  # one cluster for every round

    def simulate(plan, store, r):
        with progress_bar(ctx) as bar:
            task = bar.add_task(f"round {r}: simulating {s.simulator.name} at the posterior", total=len(plan))
            # a rerun of an interrupted round resumes its store; a store of another posterior is set aside
            res = run_ensemble(s.simulator.name, dict(s.simulator.options), plan, store, client=client,
                               timeout=s.ensemble.timeout, mpi_ranks=s.ensemble.mpi_ranks, retry_failed=True,
                               batch_size=s.ensemble.batch_size, attrs={"study_hash": s.hash, "round": r},
                               progress=lambda done, total: bar.update(task, completed=done))
        n_ok = res.n_done_before + len(res.computed)
        return (open_ensemble(store).load() if n_ok else None), len(res.failed)

    def record(r, n_sim, n_failed):
        return {"round": r, "simulations": n_sim, "failed": n_failed, "diagnostics_ok": bool(diag.ok),
                "rhat_max": float(diag.rhat_max), "ess_bulk_min": float(diag.ess_bulk_min),
                "p_tr": scenario_p_tr(tree, decoder, scenarios, seed=seed)}

    ensembles = [open_ensemble(ctx.path("ensemble.zarr")).load()]
    records, decoders = [record(0, int(ensembles[0].sizes["sample"]), 0)], [decoder]
    setup = None
    try:
        for r in range(1, cfg.rounds + 1):
            d = base / f"round{r}"
            plan = posterior_design(tree, decoder, data, s.condition_values(), cfg.round_size, seed=seed + r)
            new, n_failed = simulate(plan, d / "ensemble.zarr", r)
            if new is None:
                ctx.console.print(f"[yellow]round {r}: every simulation failed; see {d / 'failures.jsonl'}[/yellow]")
            else:
                ensembles.append(new)
            decoder, data, setup, tree, diag = _refit_round(ctx, ensembles, priors, d, seed + r)
            records.append(record(r, sum(int(e.sizes["sample"]) for e in ensembles), n_failed))
            decoders.append(decoder)
        # one evaluation set from the final posterior scores every round's decoder
        plan = posterior_design(tree, decoder, data, s.condition_values(), cfg.round_size, seed=seed + 1000)
        evaluation, _ = simulate(plan, base / "evaluation" / "ensemble.zarr", "evaluation")
    finally:
        client.close()
        if own is not None:
            own.close()
    n_eval = 0 if evaluation is None else int(evaluation.sizes["sample"])
    errors = [decoder_error(dec, evaluation) if n_eval else {} for dec in decoders]
    result = round_record(records, errors, {"simulations": n_eval, "drawn_from": f"round {cfg.rounds} posterior"})
    ctx.path("rounds.json").write_text(json.dumps(result, indent=2))
    shutil.copytree(base / f"round{cfg.rounds}" / "model", ctx.path("model_refined"))
    for name in ("posterior.nc", "diagnostics.json"):
        shutil.copy2(base / f"round{cfg.rounds}" / name, ctx.path(name))
    summary = [{"round": x["round"], "simulations": x["simulations"], "diagnostics_ok": x["diagnostics_ok"],
                "nrmse": x["decoder_error_posterior_region"].get("nrmse")} for x in result["rounds"]]
    return decoder, data, setup, tree, diag, summary


def _refit_round(ctx: RunContext, ensembles: list, priors, out, seed: int):
    """One round's decoder (trained on ``ensembles``, saved in ``out/model``) and its recalibration (``out/``):
    returns ``(decoder, data, setup, tree, diagnostics)``."""
    from risk.bayes.data import calibration_data
    from risk.bayes.physics import fit_physics, physics_setup

    s, inf = ctx.study, ctx.study.inference
    builder = _decoder_builder(ctx)
    for ens in ensembles:
        builder.append_simulations(ens)
    decoder = builder.train()
    decoder.save(out / "model")
    data = calibration_data(_real(ctx), decoder)
    setup = physics_setup(decoder, data, priors, seed=seed, max_dim=inf.subspace_max_dim,
                          family_discrepancy=inf.family_discrepancy_scale, emulator_length=inf.emulator_error_length,
                          family_scale=inf.family_scale, family_logit=inf.family_logit_scale, family_link=inf.family_link_scale)
    tree, diag = fit_physics(data, decoder, setup, seed=seed, draws=inf.draws, tune=inf.tune, chains=inf.chains,
                             target_accept=inf.target_accept, out_dir=out, allow_bad_diagnostics=True, force=True,
                             provenance={"study_hash": s.hash, "data_notes": list(data.notes), "round": out.name})
    return decoder, data, setup, tree, diag


def _misspecification(ctx: RunContext, tree, data, decoder) -> dict:
    """Posterior predictive p-values, simulated-range, discrepancy, design-edge and design checks of the calibrated model →
    ``misspecification.json`` (`risk.bayes.misspecification`)."""
    from risk.bayes.misspecification import misspecification_report, write
    from risk.bayes.model import DISCREPANCY_SCALE
    from simulators.ensemble import open_ensemble

    ens_path = ctx.path("ensemble.zarr")
    ens = open_ensemble(ens_path).load() if ens_path.exists() else None
    entry = np.asarray(json.loads(tree.attrs["observed_entry_observable"]), int)
    result = misspecification_report(tree, data, decoder, ens, entry_observable=entry,
                                     discrepancy_scale=DISCREPANCY_SCALE,
                                     declared_conditions=ctx.study.condition_bounds())
    write(result, ctx.path("misspecification.json"))
    if result["flag"]:
        ctx.console.print("[yellow]misspecification flagged:[/] " + "; ".join(result["reasons"]))
    if result["extrapolation"]:
        ctx.console.print("[yellow]extrapolation:[/] " + "; ".join(result["extrapolation_reasons"]))
    return result


def _calibrated_centring(ctx: RunContext) -> dict[str, tuple[float, ...]] | tuple[float, ...] | None:
    """The calibrated physics posterior's centring of the family locations (``centred_families`` attr), or None."""
    import xarray as xr

    path = ctx.path("posterior.nc")
    if not path.exists():
        return None
    with xr.open_datatree(path, engine="h5netcdf") as tree:
        cf = tree.attrs.get("centred_families")
    from risk.bayes.physics import centring_from_json

    return None if cf is None else centring_from_json(json.loads(cf))


def crossvalidate(ctx: RunContext) -> dict:
    """Grouped cross-validation of the reported physics model against the metadata regression and the
    family-frequency baseline (leave replicates, SOC levels and whole families out) → ``crossval.json``."""
    from risk.predict.realcv import crossvalidate_study

    inputs = _physics_inputs(ctx)
    if inputs is None:
        return {"note": "no real tests: nothing to cross-validate"}
    inf = ctx.study.inference
    draws, tune = (min(inf.crossval_draws, 250), min(inf.crossval_tune, 250)) if ctx.quick else \
        (inf.crossval_draws, inf.crossval_tune)
    result = crossvalidate_study(ctx.study, *inputs, decoder_dir=decoder_dir(ctx.out), table=_metadata_table(ctx),
                                 seed=ctx.stage_seed("crossvalidate"), draws=draws, tune=tune, chains=inf.chains,
                                 target_accept=inf.target_accept, max_dim=inf.subspace_max_dim, quick=ctx.quick,
                                 family_discrepancy=inf.family_discrepancy_scale, centred=_calibrated_centring(ctx),
                                 emulator_length=inf.emulator_error_length, family_scale=inf.family_scale,
                                 workers=min(len(os.sched_getaffinity(0)), 4))
    from risk.predict.realcv import write_crossval

    write_crossval(result, ctx.path("crossval.json"))
    summary = {scheme: {m: round(v[m]["log_loss"], 4) for m in ("physics", "metadata", "family_frequency") if m in v}
               for scheme, v in result.items() if isinstance(v, dict) and "physics" in v}
    for scheme, v in result.get("heat", {}).items():  # calorimetry: interval scores of the heat intervals [kJ]
        if isinstance(v, dict) and "physics" in v:
            summary[f"heat_{scheme}"] = {m: round(v[m]["interval_score_90"], 2) for m in ("physics", "group_normal")}
    return summary


def _prior_sensitivity(ctx: RunContext, tree, p_cells: np.ndarray, scenarios) -> None:
    """Power-scaling prior sensitivity of the hyperparameters and the scenarios' P(TR) →
    ``prior_sensitivity.json`` (`risk.bayes.prior_sensitivity`)."""
    from risk.bayes.physics import PhysicsSetup, build_physics_model
    from risk.bayes.prior_sensitivity import per_draw, prior_sensitivity, write_prior_sensitivity

    inputs = _physics_inputs(ctx)
    if inputs is None or "log_likelihood" not in tree.children:
        return
    decoder, data, _ = inputs
    model = build_physics_model(data, decoder, PhysicsSetup.from_attrs(tree.attrs))
    p_tr = per_draw(p_cells.mean(axis=2), tree, "scenario", [sc.name for sc in scenarios])
    write_prior_sensitivity(prior_sensitivity(tree, model, {"p_tr": p_tr}), ctx.path("prior_sensitivity.json"))


#: decoder evaluations for the candidate tests of the next-test ranking (full studies): 1000 posterior draws × 256
#: cells per candidate up to 250 candidates (the default study has 100), fewer draws (≥ 100) beyond — the
#: calorimetry grid has 1875 candidates, whose 480 M evaluations at 1000 draws were 7 of its 11 predict minutes
CANDIDATE_EVALUATIONS = 64_000_000


def predict(ctx: RunContext) -> dict:
    """P(TR | scenario) for new cells, aleatory/epistemic split, sensitivity, rare events."""
    import xarray as xr

    from risk.bayes.sampling import load_posterior, stack_draws
    from risk.predict.rare_events import crude_monte_carlo, subset_simulation, tr_limit_state
    from risk.predict.scenarios import (decompose, family_slope_draws, link_draws, new_cell_p_tr,
                                        population_shift, write_predictions)
    from risk.predict.sensitivity import sobol_indices
    from sim2real import load_decoder

    s = ctx.study
    if not s.scenarios:
        return {"note": "study has no scenarios"}
    decoder = load_decoder(decoder_dir(ctx.out))
    scenarios = _scenarios(ctx, decoder)
    tree = load_posterior(ctx.path("posterior.nc")) if ctx.path("posterior.nc").exists() else None
    # never beyond the decoder's design region (`clip_to_design`), clipped inside the jitted decoder: the predict
    # stage calls it ~10⁴ times (clipping in NumPy, bounds parsed per call, cost 12 of its ~150 s; measured)
    lower, upper = (np.full(len(decoder.parameter_names), v, np.float32) for v in (-np.inf, np.inf))
    if tree is not None and "design_bounds" in tree.attrs:
        lower, upper = (np.asarray(b, np.float32) for b in json.loads(tree.attrs["design_bounds"]))
    logit_fn = decoder.numpy_apply("logit_runaway", bounds=(lower, upper))

    seed = ctx.stage_seed("predict")
    names = list(decoder.parameter_names)
    candidates, cand_labels = _candidate_tests(ctx, decoder)
    scenario_diag, agreement = None, None
    n_sim = min(s.inference.scenario_check_runs, QUICK_SCENARIO_CHECKS) if ctx.quick else s.inference.scenario_check_runs
    if tree is not None and n_sim:  # full-simulator runs in worker processes while the rest is computed here
        agreement = _scenario_simulator_check(ctx, tree, decoder, logit_fn, scenarios, n_sim, seed + 6)
    if tree is not None:
        # every draw for the scenarios (their P(TR) is diagnosed like a free variable), thinned for candidates
        p_cells = new_cell_p_tr(tree, logit_fn, scenarios, n_cells=64 if ctx.quick else 128, seed=seed)
        n_cand_cells = 64 if ctx.quick else 256
        cand_draws = 100 if ctx.quick else int(np.clip(CANDIDATE_EVALUATIONS // max(len(candidates) * n_cand_cells, 1),
                                                       100, 1000))
        p_cand = new_cell_p_tr(tree, logit_fn, candidates, n_cells=n_cand_cells, seed=seed + 1,
                               max_draws=cand_draws).mean(axis=2) if candidates else np.zeros((0, 1))
        scenario_diag = _scenario_diagnostics(ctx, tree, p_cells, scenarios)
        _prior_sensitivity(ctx, tree, p_cells, scenarios)
        mu = stack_draws(tree, "mu_pop").mean(0)
        slope = family_slope_draws(tree).mean(0)[None]

        def population_at(c):  # posterior-mean location of a new family of the cell under conditions c
            return mu + population_shift(tree, slope, np.asarray(c, float)[None])[0, 0]
        mu_family = dict(zip(map(str, tree["posterior"]["family"].values), stack_draws(tree, "mu_family").mean(0)))
        chol = stack_draws(tree, "cell_chol").mean(0)
        link = tuple(float(x.mean()) for x in link_draws(tree))
        basis = "posterior"
    else:  # no real data: prior predictive; every prior draw is one (epistemic) draw of the cell
        priors = s.priors()
        rng = np.random.default_rng(seed)
        theta = np.column_stack([priors[n].sample(rng, 2000 if ctx.quick else 8000) for n in names])
        u = decoder.to_unconstrained(theta)
        p_all = np.stack([1 / (1 + np.exp(-logit_fn(u, np.broadcast_to(sc.conditions, (len(u), len(sc.conditions))))))
                          for sc in [*scenarios, *candidates]])
        p_cells, p_cand = p_all[:len(scenarios), :, None], p_all[len(scenarios):]
        mu, chol = u.mean(0), np.linalg.cholesky(np.cov(u.T) + 1e-9 * np.eye(len(names)))
        mu_family = {}
        link = (0.0, 1.0)
        basis = "prior predictive (no real data)"

        def population_at(c):
            return mu
    pred = decompose(p_cells, scenarios, study_hash=s.hash)
    pred.attrs["basis"] = basis
    if basis == "posterior":  # what a new test of each scenario would measure (total heat, force at onset, …)
        from risk.predict.scenarios import observable_quantiles

        pred = pred.assign(observable_quantiles(tree, decoder, scenarios, seed=seed + 2,
                                                max_draws=250 if ctx.quick else 1000))
    write_predictions(pred, ctx.path("predictions.nc"))
    next_test = _next_test(ctx, p_cand, candidates, cand_labels, pred, basis)

    # Sensitivity of P(TR) of the first scenario: Shapley effects over its posterior cell-to-cell
    # distribution (dependent inputs) and grouped epistemic/aleatory indices; the ±2 box Sobol indices
    # of the surrogate are kept beside them. Rare events for the least likely scenario: per posterior draw
    # (an interval), plus the plug-in value at posterior-mean parameters for comparison.
    def real_logit_fn(u, c, offset=0.0, scale=None):  # the decoder's logit through the posterior-mean link
        return link[0] + offset + (link[1] if scale is None else scale) * logit_fn(u, c)

    tree_or_none = tree if basis == "posterior" else None
    c0, mu_0 = np.asarray(scenarios[0].conditions), mu_family.get(scenarios[0].cell_family, population_at(scenarios[0].conditions))
    off_0, scale_0 = _plugin_link(tree_or_none, scenarios[0], seed, logit_fn, mu_0)
    sens = sobol_indices(lambda u: 1 / (1 + np.exp(-real_logit_fn(u, np.broadcast_to(c0, (len(u), len(c0))), off_0,
                                                                  scale_0))),
                         names, [(m - 2.0, m + 2.0) for m in mu_0], n_base=128 if ctx.quick else 1024, seed=seed)
    for v in ("S1", "ST"):
        sens[v].attrs["long_name"] += " of P(TR) over an independent uniform ±2 box in u around the family " \
                                      "location (surrogate exploration; see shapley_effect for the cell population)"
    sens = xr.merge([sens, _shapley_sensitivity(ctx, tree_or_none, logit_fn, real_logit_fn, scenarios[0], mu_0, chol,
                                                names, seed)], combine_attrs="no_conflicts")
    sens.attrs.update(scenario=scenarios[0].name, quick=int(bool(ctx.quick)))
    sens.to_netcdf(ctx.path("sensitivity.nc"))
    k = int(np.argmin(pred["p_tr_mean"].values))
    ck = np.asarray(scenarios[k].conditions)
    mu_k = mu_family.get(scenarios[k].cell_family, population_at(ck))
    off_k, scale_k = _plugin_link(tree_or_none, scenarios[k], seed, logit_fn, mu_k)
    g = tr_limit_state(lambda u: real_logit_fn(u, np.broadcast_to(ck, (len(u), len(ck))), off_k, scale_k), mu_k, chol)
    ss = subset_simulation(g, 1 + chol.shape[1], seed=seed, n_per_level=500 if ctx.quick else 2000)
    where = "family" if scenarios[k].cell_family in mu_family else "population"
    rare = {"scenario": scenarios[k].name, "subset_simulation": {"p": ss.p, "cov": ss.cov, "calls": ss.calls},
            "location": where, "quick": bool(ctx.quick),
            "note": f"subset_simulation / crude_monte_carlo: plug-in P(TR) of a new cell at the posterior-mean "
                    f"{where} location (u space) and cell-to-cell spread, no epistemic spread; 'posterior' holds "
                    "the per-draw estimate with its 90 % credible interval"}
    if ss.p >= 1e-4:
        mc = crude_monte_carlo(g, 1 + chol.shape[1], seed=seed, n_samples=200_000)
        rare["crude_monte_carlo"] = {"p": mc.p, "cov": mc.cov, "calls": mc.calls}
    failure_cells = None if ss.failure_samples is None else mu_k + ss.failure_samples[:, 1:] @ chol.T
    source = "failure-region cells of the plug-in subset simulation"
    if tree_or_none is not None:
        source = "failure-region cells of the per-draw subset simulations (pooled over posterior draws)"
        rare["posterior"], failure_cells = _posterior_rare_event(ctx, tree, logit_fn, scenarios[k], seed)
    # the full simulator against its own surrogate (no link) at failure-region cells; n ≥ 50 in a full study
    # (0 turns the check off); --quick re-runs QUICK_SIMULATOR_CHECKS, labelled quick
    n_check = s.inference.rare_event_check_runs and (QUICK_SIMULATOR_CHECKS if ctx.quick else
                                                     max(s.inference.rare_event_check_runs, MIN_SIMULATOR_CHECKS))
    if n_check and failure_cells is not None and len(failure_cells):
        rare["full_simulator_check"] = {**_check_with_simulator(ctx, decoder, logit_fn, failure_cells, ck, n_check,
                                                                seed), "source": source}
    ctx.path("rare_events.json").write_text(json.dumps(rare, indent=2))
    if agreement is not None:
        table = agreement.result()
        pred = pred.assign(table)
        pred.attrs.update(table.attrs)
        write_predictions(pred, ctx.path("predictions.nc"))
    check = rare.get("full_simulator_check", {})
    return {"basis": basis, "scenarios": len(scenarios), "next_test": next_test, "scenario_diagnostics": scenario_diag,
            "p_tr_mean": dict(zip(pred["scenario"].values.tolist(), map(float, pred["p_tr_mean"].values))),
            "rare_event": {"scenario": rare["scenario"], "plug_in": ss.p,
                           **{q: rare["posterior"][q] for q in ("p_median", "p_q05", "p_q95") if "posterior" in rare}},
            "simulator_check": {k: check[k] for k in ("n", "confirmed", "wilson95") if k in check},
            "simulator_agreement": {str(sc): {"simulator": float(pred["simulator_runaway_fraction"].values[i]),
                                              "decoder": float(pred["decoder_runaway_p"].values[i])}
                                    for i, sc in enumerate(pred["scenario"].values)}
            if "simulator_runaway_fraction" in pred else None}


def _scenario_diagnostics(ctx: RunContext, tree, p_cells: np.ndarray, scenarios) -> dict:
    """R-hat and bulk/tail ESS of each scenario's P(TR) over the posterior draws, merged into
    ``diagnostics.json`` (its ``ok`` turns false when they fail: the gate covers the reported numbers)."""
    import arviz as az
    import xarray as xr

    from risk.bayes.diagnostics import Thresholds

    post = tree["posterior"]
    draws = p_cells.mean(axis=2).reshape(len(scenarios), post.sizes["chain"], post.sizes["draw"])
    ds = xr.Dataset({"p_tr": (("scenario", "chain", "draw"), draws)}).transpose("chain", "draw", "scenario")
    rhat = float(np.nanmax(az.rhat(ds)["p_tr"].values))
    bulk = float(np.nanmin(az.ess(ds, method="bulk")["p_tr"].values))
    tail = float(np.nanmin(az.ess(ds, method="tail")["p_tr"].values))
    t = Thresholds()
    out = {"rhat_max": rhat, "ess_bulk_min": bulk, "ess_tail_min": tail,
           "ok": bool(rhat <= t.rhat_max and bulk >= t.ess_min and tail >= t.ess_min)}
    path = ctx.path("diagnostics.json")
    if path.exists():
        d = json.loads(path.read_text())
        d["scenario_p_tr"] = out
        if not out["ok"]:
            d["ok"] = False
            d.setdefault("messages", []).append(f"scenario P(TR): R-hat {rhat:.3f}, bulk ESS {bulk:.0f}, tail ESS {tail:.0f}")
        path.write_text(json.dumps(d, indent=2))
    return out


#: full-simulator runs per scenario with --quick (a full study runs inference.scenario_check_runs)
QUICK_SCENARIO_CHECKS = 2


def _scenario_simulator_check(ctx: RunContext, tree, decoder, logit_fn, scenarios, n: int, seed: int):
    """The full simulator at ``n`` new cells of every scenario against the decoder there
    (`risk.predict.simulator_agreement`), started → its `ScenarioCheck`, whose ``result()`` holds the
    ``simulator_*``/``decoder_*`` variables of ``predictions.nc``."""
    from functools import partial

    from risk.predict.simulator_agreement import ScenarioCheck, scenario_cells

    s = ctx.study
    cells = scenario_cells(tree, scenarios, n, seed=seed)
    names = decoder.layout.condition_names
    decoder_p = [1 / (1 + np.exp(-logit_fn(u, np.broadcast_to(sc.conditions, (len(u), len(sc.conditions))))))
                 for u, sc in zip(cells, scenarios)]
    args = [(s.simulator.name, dict(s.simulator.options), decoder.transform, dict(zip(names, map(float, sc.conditions))),
             s.ensemble.timeout) for sc in scenarios]
    check = ScenarioCheck(cells, decoder_p, [partial(_simulated_runaway, *a) for a in args],
                          batch_simulators=[partial(_simulated_runaways, *a) for a in args],
                          batch_size=s.ensemble.batch_size, workers=max(1, s.ensemble.workers),
                          note=f"{s.simulator.name}, {n} new cells per scenario (one per posterior draw)"
                               + (" (quick)" if ctx.quick else ""))
    return check


#: failure-region cells the full simulator re-runs: at least 50 in a full study (a Wilson 95 % interval of
#: a fraction near 0 is then ≤ 0.071 wide; Brown, Cai & DasGupta 2001), at most 8 with --quick (labelled)
MIN_SIMULATOR_CHECKS, QUICK_SIMULATOR_CHECKS = 50, 8


def _check_with_simulator(ctx: RunContext, decoder, logit_fn, cells: np.ndarray, conditions, n: int, seed: int) -> dict:
    """Re-run ``n`` failure-region cells ``(m, n_param)`` (u space) with the study's full simulator
    (`risk.predict.rare_events.check_failure_samples`): confirmed fraction, Wilson 95 % interval, and the
    surrogate's expectation at the same cells. Failed runs are recorded, not fatal."""
    from functools import partial

    from risk.predict.rare_events import check_failure_samples

    s = ctx.study
    cond = dict(zip(decoder.layout.condition_names, map(float, conditions)))
    args = (s.simulator.name, dict(s.simulator.options), decoder.transform, cond, s.ensemble.timeout)
    simulate, simulate_batch = partial(_simulated_runaway, *args), partial(_simulated_runaways, *args)

    def surrogate_p(u: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-logit_fn(u, np.broadcast_to(conditions, (len(u), len(conditions))))))

    # the study's ensemble workers run the cells (50 FE runs: 84 s one after another on the default study)
    out = check_failure_samples(cells, surrogate_p, simulate, n=n, seed=seed, workers=max(1, s.ensemble.workers),
                                simulate_batch=simulate_batch, batch_size=s.ensemble.batch_size)
    out.update(simulator=s.simulator.name, quick=bool(ctx.quick))
    if ctx.quick:
        out["note"] = f"quick: {out.get('n', 0)} runs; a full study re-runs at least {MIN_SIMULATOR_CHECKS}"
    return out


def _simulated_runaway(simulator: str, options: dict, transform, condition: dict, timeout: float,
                       u: np.ndarray) -> bool:
    """Does the full ``simulator`` run away at the cell ``u`` ``(n_param,)`` (u space, mapped to θ by the
    decoder's ``transform``)? A failed run raises (`risk.predict.rare_events.check_failure_samples` records it)."""
    from sim2real.bridge import simulated_runaway
    from simulators.ensemble import run_one

    theta = dict(zip(transform.names, map(float, transform.from_unconstrained(np.asarray(u, float)[None])[0])))
    r = run_one(simulator, options, theta, condition, timeout)
    if not r["ok"]:
        raise RuntimeError(r["error"])
    return bool(np.nan_to_num(simulated_runaway(r["dataset"])).any())


def _simulated_runaways(simulator: str, options: dict, transform, condition: dict, timeout: float,
                        us: np.ndarray) -> list[tuple[bool | None, str | None, float]]:
    """`_simulated_runaway` at the cells ``us`` ``(k, n_param)`` as one batch (`simulators.ensemble.run_chunk`:
    the simulator's vectorised `run_batch`, the same results; a failing batch re-run cell by cell, each failure
    recorded): per cell ``(runaway or None, error or None, seconds)``."""
    from sim2real.bridge import simulated_runaway
    from simulators.ensemble import run_chunk

    thetas = transform.from_unconstrained(np.asarray(us, float).reshape(-1, len(transform.names)))
    samples = [(i, dict(zip(transform.names, map(float, th))), condition) for i, th in enumerate(thetas)]
    return [(bool(np.nan_to_num(simulated_runaway(r["dataset"])).any()), None, r["wall_time"]) if r["ok"]
            else (None, str(r["error"])[:500], r["wall_time"]) for _, r in run_chunk(simulator, options, samples, timeout)]


def _posterior_rare_event(ctx: RunContext, tree, logit_fn, scenario, seed: int) -> tuple[dict, np.ndarray]:
    """P(TR) of a new cell of ``scenario`` per posterior draw (subset simulation each,
    `risk.predict.rare_events.posterior_rare_event`): median, 90 % interval, and — when p ≥ 1e-4 — crude
    Monte Carlo of the posterior-predictive probability over the same draws and whether the interval
    covers it. Returns the JSON block and the pooled failure-region cells ``(m, n_param)``."""
    from risk.predict.rare_events import crude_monte_carlo, new_cell_limit_states, posterior_rare_event

    # 50 / 200 draws: each draw also draws the directions the data leave at the prior, which dominate the
    # draw-to-draw spread (measured on the indentation quick run: with 20 draws p_mean was 0.08 against
    # predictions.nc's 0.16 over 4000 draws; with 200 draws 0.15)
    states = new_cell_limit_states(tree, logit_fn, scenario, n_draws=50 if ctx.quick else 200, seed=seed + 3)
    res = posterior_rare_event([(st.g, st.dim) for st in states], seed=seed + 4,
                               n_per_level=1000 if ctx.quick else 2000)
    failures = res.pop("failure_samples")
    cells = [st.cells(xi) for st, xi in zip(states, failures) if xi is not None and len(xi)]
    res["per_draw"]["draw"] = [st.draw for st in states]
    if res["p_mean"] >= 1e-4:  # the posterior predictive by plain MC: cells spread evenly over the same draws
        per = max(200_000 // len(states), 1)
        mc = [crude_monte_carlo(st.g, st.dim, seed=seed + 5 + j, n_samples=per, batch=per)
              for j, st in enumerate(states)]
        p = float(np.mean([m.p for m in mc]))
        n_all = per * len(states)
        res["crude_monte_carlo"] = {"p": p, "cov": float(np.sqrt((1 - p) / (n_all * p))) if p > 0 else float("inf"),
                                    "calls": n_all, "target": "E_post[p_s] over the same draws"}
        res["covers_crude_monte_carlo"] = bool(res["p_q05"] <= p <= res["p_q95"])
    return res, (np.concatenate(cells) if cells else None)


#: decoder evaluations per posterior draw of the exact Shapley enumeration (n_outer 1000 × 3 inner × 510 subsets)
SHAPLEY_CALLS_PER_DRAW = 1000 * 3 * 510


def _plugin_link(tree, scenario, seed: int, logit_fn, location: np.ndarray) -> tuple[float, float | None]:
    """Posterior means of the runaway logit's shift and sim-to-real scale for ``scenario``'s family at the plug-in
    ``location`` ``(n_param,)`` (`risk.bayes.physics.family_logit_offsets`, `link_scales`, `reference_shift`; an
    unseen family's mean over its draws) — the plug-in counterpart of the per-draw link; ``(0, None)`` without a
    posterior (None: the study-wide scale)."""
    from risk.bayes.physics import family_logit_offsets, link_scales, reference_shift

    if tree is None:
        return 0.0, None
    total = tree["posterior"].sizes["chain"] * tree["posterior"].sizes["draw"]
    rng = np.random.default_rng(seed)
    keep, family, c = np.arange(total), [scenario.cell_family], np.asarray(scenario.conditions, float)[None]
    offset, scale = family_logit_offsets(tree, keep, family, c, rng), link_scales(tree, keep, family, rng)
    ref = reference_shift(tree, keep, scale, np.broadcast_to(np.asarray(location, float), (total, 1, len(location))),
                          c, logit_fn)
    return float((offset + ref).mean()), float(scale.mean())


def _shapley_sensitivity(ctx: RunContext, tree, logit_fn, real_logit_fn, scenario, mu, chol, names, seed: int):
    """Shapley effects of P(TR) of a new cell of ``scenario`` over each posterior draw's cell-to-cell
    distribution and grouped epistemic/aleatory indices (`risk.predict.shapley`) → the Shapley variables of
    ``sensitivity.nc`` (`risk.predict.sensitivity.shapley_dataset`). Without a posterior: one "draw" at
    the prior-predictive mean and covariance of u (Gaussian approximation), groups NaN."""
    from risk.predict.rare_events import DrawLimitState, new_cell_limit_states
    from risk.predict.sensitivity import shapley_dataset
    from risk.predict.shapley import gaussian_shapley_effects, grouped_indices
    from simulators import registry

    c = np.asarray(scenario.conditions, float)
    if tree is not None:
        states = new_cell_limit_states(tree, logit_fn, scenario, n_draws=8 if ctx.quick else 50, seed=seed + 6)
        wide = new_cell_limit_states(tree, logit_fn, scenario, n_draws=100 if ctx.quick else 400, seed=seed + 7)
    else:
        states = [DrawLimitState(0, np.asarray(mu, float), np.asarray(chol, float), 0.0, 1.0, None)]
        wide = []

    def p_of(st):
        def f(u):
            logit = (real_logit_fn(u, np.broadcast_to(c, (len(u), len(c)))) if tree is None else
                     st.shift + st.scale * logit_fn(u, np.broadcast_to(c, (len(u), len(c)))))
            return 1 / (1 + np.exp(-logit))
        return f

    # n_outer = 400, full and --quick: the reported effect is the mean over posterior draws, and its error is the
    # draws' (measured on the full default study, 9 parameters, 2026-12-07: the effects' sd over 50 draws 0.024-0.045,
    # so the mean's sampling error ~0.004), while the Monte Carlo s.e. of the mean was 0.0005-0.0007 at n_outer 1000
    # (~0.001 at 400). 1000 cost 56 CPU-s of that predict stage (py-spy), for no visible gain. The exact enumeration
    # visits 2^d subsets: beyond 9 parameters n_outer shrinks to keep SHAPLEY_CALLS_PER_DRAW (the cost of 1000 at 9
    # parameters); the s.e. of every effect is stored with it. --quick: 8 draws (52 -> 12 thread-seconds of the quick
    # indentation predict stage at 20 draws of 1000 before), a full study 50.
    d = len(names)
    n_outer = int(min(400, max(100, SHAPLEY_CALLS_PER_DRAW // ((2**d - 2) * 3))))
    n_var = 4000 if ctx.quick else 10000
    def effects(j: int):  # one posterior draw, its own seed: the same result in any thread, in any order
        st = states[j]
        return gaussian_shapley_effects(p_of(st), st.location, st.factor @ st.factor.T, seed=seed + 8 + j,
                                        n_outer=n_outer, n_var=n_var)

    # draws in threads, one per core: NumPy's batched linear algebra and the jitted decoder release the GIL (measured
    # on the calorimetry study: the Shapley effects were 125 of its 204 predict seconds, in one thread)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, len(os.sched_getaffinity(0)))) as pool:
        res = list(pool.map(effects, range(len(states))))
    if wide:  # crossed draws × cells table: the same standard normal cells under every draw
        z = np.random.default_rng(seed + 9).standard_normal((256 if ctx.quick else 1024, wide[0].factor.shape[1]))
        table = np.stack([p_of(st)(st.location + z @ st.factor.T) for st in wide])
        grouped = grouped_indices(table)
        grouped_note = f"{len(wide)} posterior draws x {len(z)} cells, crossed"
    else:
        grouped = {"S1": np.full(2, np.nan), "ST": np.full(2, np.nan), "shapley": np.full(2, np.nan),
                   "variance": np.nan}
        grouped_note = "no posterior: no epistemic/aleatory split"
    units = {p.name: p.unit for p in registry.load(ctx.study.simulator.name).parameters}
    return shapley_dataset(np.array([r.effects for r in res]), np.array([r.se for r in res]),
                           np.array([r.variance for r in res]), [st.draw for st in states], grouped, names,
                           units=[units.get(n, "") for n in names],
                           attrs={"shapley_n_outer": n_outer, "shapley_n_inner": 3, "shapley_n_var": n_var,
                                  "shapley_calls_per_draw": int(res[0].calls), "grouped_design": grouped_note,
                                  "shapley_input_space": "u (decoder's z-scored unconstrained parameters); "
                                                         "a new cell of the scenario per posterior draw",
                                  "shapley_reference": "Owen 2014 SIAM/ASA JUQ 2:245; Song, Nelson & Staum 2016 "
                                                       "SIAM/ASA JUQ 4:1060; Broto, Bachoc & Depecker 2020 "
                                                       "SIAM/ASA JUQ 8:693"})


def _candidate_tests(ctx: RunContext, decoder) -> tuple[list, list[dict]]:
    """Candidate tests for the next-test ranking: the study's condition ranges × the scenarios' families."""
    from risk.predict.design import candidate_grid
    from risk.predict.scenarios import Scenario

    layout = decoder.layout
    vectors, labels = candidate_grid(ctx.study.condition_values(), layout.condition_names, layout.condition_default,
                                     points=3 if ctx.quick else 5)
    from risk.predict.scenarios import family_conditions
    from simulators.chemistry import CATEGORICAL_CONDITIONS

    families = list(dict.fromkeys(sc.cell_family for sc in ctx.study.scenarios))
    real = _real(ctx)
    own = [j for j, n in enumerate(layout.condition_names) if n in CATEGORICAL_CONDITIONS]  # the family's chemistry
    cands, out_labels = [], []
    for fam in families:
        fam_vec = family_conditions(layout, real, fam, {}) if own else ()
        for vec, lab in zip(vectors, labels):
            vec = [fam_vec[j] if j in own else v for j, v in enumerate(vec)]
            soc = lab.get("soc", vec[layout.condition_names.index("soc")] if "soc" in layout.condition_names else float("nan"))
            name = fam + ": " + ", ".join(f"{k}={v:.4g}" for k, v in lab.items())
            cands.append(Scenario(name, fam, float(soc), "candidate test", tuple(map(float, vec))))
            out_labels.append(lab)
    return cands, out_labels


def _next_test(ctx: RunContext, p_cand: np.ndarray, candidates: list, labels: list[dict], pred, basis: str) -> dict:
    """Rank candidate tests by expected reduction of the scenarios' P(TR) variance → ``next_test.nc``."""
    from risk.predict.design import expected_information, next_test_dataset
    from simulators import registry

    if not candidates:
        return {}
    n_cells = ctx.study.inference.next_test_cells
    p_scen = pred["p_tr_draws"].values
    if p_scen.shape[1] > p_cand.shape[1]:  # candidates were thinned evenly (`new_cell_p_tr` max_draws): same draws
        p_scen = p_scen[:, np.linspace(0, p_scen.shape[1] - 1, p_cand.shape[1]).astype(int)]
    info = expected_information(p_cand, p_scen, n_cells=n_cells)
    units = {c.name: c.unit for c in registry.load(ctx.study.simulator.name).conditions}
    ds = next_test_dataset(info, labels, [c.cell_family for c in candidates], pred["scenario"].values.tolist(),
                           units, n_cells=n_cells, basis=basis)
    ds.to_netcdf(ctx.path("next_test.nc"), engine="h5netcdf")
    best = ds.isel(candidate=0)
    return {"cell_family": str(best["cell_family"].values), "variance_reduction": float(best["variance_reduction"]),
            "eig_nat": float(best["eig"]), **{k: float(best[k]) for k in labels[0]}}


def report(ctx: RunContext) -> dict:
    """``report.html`` + ``report.pdf`` from the saved artefacts (never recomputes)."""
    from risk.report.build import build_report

    html, pdf = build_report(ctx.out, ctx.study.model_dump(mode="json"), pdf="pdf" in ctx.study.report.formats)
    return {"html": html.name, "pdf": pdf.name if pdf else None}


def export(ctx: RunContext) -> dict:
    """Insurer exports (docs/exports.md): ``exports/risk.{parquet,csv,json}`` and, with an exposure, the
    exceedance curves and the portfolio tables; the summary holds the portfolio's annual runaway events."""
    from risk.export import read_export, write_exports

    if not ctx.study.scenarios:
        return {"note": "study has no scenarios: nothing to export"}
    files = write_exports(ctx.out, ctx.study.model_dump(mode="json"))
    summary: dict = {"files": sorted(files)}
    if "portfolio.parquet" in files:
        total = read_export(files["portfolio.parquet"]).set_index("entry").loc["total"]
        summary["portfolio_annual_events"] = {k: float(total[f"annual_events_{k}"]) for k in ("mean", "q05", "q95")}
    return summary


STAGES: list[Stage] = [
    Stage("simulate", simulate, sections=("simulator", "parameters", "conditions", "ensemble"),
          artefacts=("ensemble.zarr",), description="ensemble of simulations over the priors"),
    Stage("fidelity", fidelity, sections=("simulator", "parameters", "conditions", "ensemble", "reference",
                                          "sim2real"),
          artefacts=("fidelity.json",), description="the simulator against the higher-fidelity simulator it reduces"),
    Stage("convergence", convergence, sections=("simulator", "parameters", "conditions", "ensemble", "reference",
                                                "convergence", "sim2real"), upstream=("simulate",),
          artefacts=("mesh_convergence.json",), description="the simulator's discretisation error (refined meshes)"),
    Stage("ingest", ingest, sections=("data",), artefacts=(), reads_data=True,
          description="real tests → real.nc"),
    Stage("train", train, sections=("simulator", "parameters", "sim2real"), upstream=("simulate", "ingest"),
          artefacts=("model",), description="sim2real decoder (frozen) + encoder"),
    Stage("calibrate", calibrate, sections=("parameters", "inference", "sim2real"), upstream=("train", "ingest"),
          artefacts=("misspecification.json",), description="hierarchical Bayesian calibration (NumPyro NUTS)"),
    Stage("crossvalidate", crossvalidate, sections=("parameters", "inference", "data"),
          upstream=("train", "ingest", "calibrate"),
          artefacts=("crossval.json",), description="grouped cross-validation of the physics model and its baselines"),
    Stage("predict", predict, sections=("scenarios", "inference"), upstream=("calibrate",),
          artefacts=("predictions.nc",), description="P(TR | scenario), sensitivity, rare events, next-test ranking"),
    Stage("report", report, sections=("report",), upstream=("predict", "fidelity", "convergence"),
          artefacts=("report.html",),
          description="regulator report (HTML + PDF)"),
    Stage("export", export, sections=("export",), upstream=("predict",), artefacts=("exports",),
          description="insurer exports"),
]
