"""Build the regulator report (``report.html`` + ``report.pdf``) from a run's saved artefacts.

Nothing is re-estimated: the report reads ``runs/<study>/`` (see :mod:`risk.report.artefacts`),
summarises it (quantiles, coverage of saved predictive draws), draws figures and renders
``templates/report.html.j2``. Absent artefacts give a visible "not computed in this run" section.
The insurer exports are (re)written first by :func:`risk.export.write_exports` (deterministic:
seeded) and the report shows the very tables it wrote.

Examples
--------
>>> html, pdf = build_report("runs/demo", study.model_dump())   # doctest: +SKIP
"""
from __future__ import annotations

import datetime as _dt
import json
import math
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import xarray as xr

from risk.export import Exposure, read_export, study_name, write_exports
from risk.report import credibility, figures, numbers
from risk.report.artefacts import FILES, Artefacts, load_artefacts, sbc_record
from risk.report.pdf import html_to_pdf

TEMPLATE_DIR = Path(__file__).parent / "templates"
NOT_COMPUTED = "not computed in this run"


def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
                             autoescape=jinja2.select_autoescape(["html", "j2"]),
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters.update(number=numbers.number, quantity=numbers.quantity, one_in=numbers.one_in,
                       percent=numbers.percent, short_hash=numbers.short_hash,
                       money=numbers.money)
    return env


def flatten(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested JSON → ``[("a.b.c", value), ...]`` rows (lists of scalars kept as one value)."""
    if isinstance(obj, dict):
        rows: list[tuple[str, Any]] = []
        for k, v in obj.items():
            rows += flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return rows
    if isinstance(obj, list) and any(isinstance(v, (dict, list)) for v in obj):
        rows = []
        for i, v in enumerate(obj):
            rows += flatten(v, f"{prefix}[{i}]")
        return rows
    if isinstance(obj, list):
        return [(prefix, ", ".join(numbers.number(v) for v in obj))]
    return [(prefix, obj)]


def _table_rows(obj: Any) -> list[dict]:
    """Flattened JSON as template rows with human-formatted values."""
    return [{"key": k, "value": numbers.number(v) if not isinstance(v, str) else v}
            for k, v in flatten(obj)]


def _attr(da: xr.DataArray | None, name: str, default: str = "") -> str:
    return str(da.attrs.get(name, default)) if da is not None else default


# --------------------------------------------------------------------------- sections
def _verdict(art: Artefacts) -> dict:
    """Validity banner: ok / failed / unknown (diagnostics absent)."""
    diag = art.diagnostics
    if diag is None:
        return {"state": "unknown", "title": "Validity unknown: MCMC diagnostics "
                + NOT_COMPUTED, "messages": [art.problems.get("diagnostics", "")]}
    ok = bool(diag.get("ok"))
    return {"state": "ok" if ok else "failed",
            "title": ("Diagnostics passed: the posterior is fit for use" if ok else
                      "INVALID: the MCMC diagnostics failed — do not rely on these "
                      "probabilities"),
            "messages": [str(m) for m in diag.get("messages") or []]}


def _summary(art: Artefacts) -> dict:
    pred = art.predictions
    if pred is None:
        return {"computed": False, "why": art.problems.get("predictions", NOT_COMPUTED)}
    n = pred.sizes["scenario"]

    def coord(name):
        if name in pred.coords or name in pred:
            return [v for v in np.asarray(pred[name].values).reshape(-1)]
        return [None] * n

    rows = []
    for i, (scen, fam, soc, sev) in enumerate(zip(coord("scenario"), coord("cell_family"),
                                                  coord("soc"), coord("severity"))):
        mean, q05, q50, q95 = (float(pred[v].values[i])
                               for v in ("p_tr_mean", "p_tr_q05", "p_tr_q50", "p_tr_q95"))
        rows.append({"scenario": str(scen), "cell_family": "" if fam is None else str(fam),
                     "soc": "—" if soc is None else numbers.percent(float(soc), 3),
                     "severity": "" if sev is None else numbers.number(sev),
                     "words": numbers.probability_words(mean, q05, q95),
                     "mean": mean, "q05": q05, "q50": q50, "q95": q95})
    observables = []  # what a new test of each scenario would measure: posterior predictive quantiles
    for var in pred.data_vars:
        name = str(var)
        if name.endswith("_q50") and not name.startswith("p_tr") and f"{name[:-4]}_q05" in pred:
            base = name[:-4]
            observables.append({"name": base, "unit": _attr(pred[name], "units", "1"), "rows": [
                {"scenario": r["scenario"], **{q: float(pred[f"{base}_{q}"].values[i]) for q in ("q05", "q50", "q95")}}
                for i, r in enumerate(rows)]})
    agreement = []  # the full simulator at the scenarios' cells against its decoder (risk.predict.simulator_agreement)
    if "simulator_runaway_fraction" in pred:
        for i, r in enumerate(rows):
            v = {k: float(pred[k].values[i]) for k in ("simulator_runs", "simulator_runaway_fraction",
                                                       "simulator_runaway_wilson_lo", "simulator_runaway_wilson_hi",
                                                       "decoder_runaway_p", "decoder_within_wilson")}
            agreement.append({"scenario": r["scenario"], "p_tr": r["mean"], "runs": int(v["simulator_runs"]),
                              "simulator": v["simulator_runaway_fraction"], "lo": v["simulator_runaway_wilson_lo"],
                              "hi": v["simulator_runaway_wilson_hi"], "decoder": v["decoder_runaway_p"],
                              "agrees": v["decoder_within_wilson"] == 1.0})
    return {"computed": True, "rows": rows, "figure": figures.p_tr_vs_soc(pred), "observables": observables,
            "agreement": agreement, "agreement_note": str(pred.attrs.get("simulator_check", "")),
            "disagreeing": [a["scenario"] for a in agreement if not a["agrees"]],
            "n_draws": int(pred.sizes.get("draw", 0)),
            "units": _attr(pred["p_tr_mean"], "units", "1")}


def _exports(art: Artefacts, study: dict, write: bool) -> dict:
    """Write (optionally) and read back the insurer exports for display."""
    if art.predictions is None:
        return {"computed": False, "why": "needs predictions.nc (" + NOT_COMPUTED + ")"}
    if write:
        write_exports(art.run_dir, study, predictions=art.predictions)
    out = art.run_dir / "exports"
    if not (out / "risk.parquet").exists():
        return {"computed": False, "why": "exports/ " + NOT_COMPUTED}
    risk = read_export(out / "risk.parquet")
    exposure = Exposure.from_study(study)
    res: dict[str, Any] = {"computed": True, "files": sorted(p.name for p in out.iterdir()),
                           "has_exposure": "annual_expected_loss" in risk.columns,
                           "exposure": None, "rows": risk.to_dict(orient="records")}
    if exposure is not None:
        res["exposure"] = {"fleet_size": exposure.fleet_size,
                           "abuse_events_per_cell_year": exposure.abuse_events_per_cell_year,
                           "costs": exposure.cost_per_event_by_severity,
                           "currency": exposure.currency, "seed": exposure.seed,
                           "n_monte_carlo": exposure.n_monte_carlo,
                           "weights": exposure.scenario_weights}
        res["frequency"] = [_frequency_row(ev) for ev in exposure.frequency.describe()]
    if (out / "portfolio.parquet").exists():
        res["portfolio_rows"] = read_export(out / "portfolio.parquet").to_dict(orient="records")
    if (out / "exceedance.parquet").exists():
        curve = read_export(out / "exceedance.parquet")
        res["exceedance_figure"] = figures.exceedance_curve(curve, exposure.currency
                                                            if exposure else "currency")
        res["exceedance_rows"] = curve[curve["exceedance_probability"].isin([0.1, 0.01, 0.001])
                                       ].to_dict(orient="records")
    return res


def _frequency_row(ev: dict) -> dict:
    """One abuse-event class for the report: rate mean and 90 % interval [1/(cell yr)], the tested
    severities it maps onto, and where the rate and the mapping come from (a source or "assumption")."""
    def origin(prov: dict) -> str:
        if prov.get("source"):
            return str(prov["source"])
        return "user assumption" + (f": {prov['note']}" if prov.get("note") else "")

    rate, sev = ev["rate"], ev["severities"]
    return {"event_class": ev["event_class"], "description": ev.get("description") or "",
            "distribution": rate["distribution"], "mean": rate["mean"], "q05": rate["q05"], "q95": rate["q95"],
            "rate_source": origin(rate), "rate_assumption": bool(rate.get("assumption")),
            "shares": sev["shares"], "mapping_source": origin(sev), "mapping_assumption": bool(sev.get("assumption"))}


def _provenance(art: Artefacts, study: dict) -> dict:
    ens = art.ensemble
    failures = art.failures or []
    errors: dict[str, int] = {}
    for f in failures:
        first = str(f.get("error", "")).splitlines()[0][:160] if f.get("error") else "unknown"
        errors[first] = errors.get(first, 0) + 1
    real = []
    if art.real is not None:
        for node in art.real.subtree:
            ds = node.to_dataset()
            if "test" not in ds.dims:
                continue
            fam = (", ".join(sorted({str(v) for v in ds["cell_family"].values}))
                   if "cell_family" in ds else "—")
            soc = ds["soc"] if "soc" in ds else None
            real.append({"kind": node.path.strip("/") or "root", "n_tests": int(ds.sizes["test"]),
                         "families": fam,
                         "soc_range": "—" if soc is None or not np.isfinite(soc.values).any()
                         else f"{numbers.percent(float(np.nanmin(soc)), 3)} – "
                              f"{numbers.percent(float(np.nanmax(soc)), 3)}",
                         "variables": ", ".join(f"{v} [{ds[v].attrs.get('units', '?')}]"
                                                for v in ds.data_vars)})
    sim = (study.get("simulator") or {})
    return {"provenance": None if art.provenance is None else _table_rows(art.provenance),
            "stages": art.stages, "real": real, "ensemble": ens,
            "simulator": sim.get("name", "") if isinstance(sim, dict) else str(sim),
            "simulator_options": _table_rows({k: v for k, v in sim.items() if k != "name"})
            if isinstance(sim, dict) else [],
            "n_failures": len(failures), "failure_kinds": sorted(errors.items(),
                                                                   key=lambda kv: -kv[1])[:5],
            "mesh": _mesh_convergence(art.mesh_convergence),
            "fidelity": _fidelity(art.fidelity),
            "hashes": {k: (art.predictions.attrs.get("study_hash") if art.predictions is not None
                           else None) for k in ("study_hash",)}}


#: the reduced model's arms in the reference check (`risk.fidelity`), as the report names them
FIDELITY_ARMS = {"as_study": "as the study runs it", "same_physics": "same physics (the reduction alone)"}


def _fidelity(res: dict | None) -> dict | None:
    """The study's simulator against the higher-fidelity simulator it reduces (``fidelity.json``): one row per arm
    (runaways, agreement with its Wilson 95 % interval, time-to-runaway ratio, peak-temperature error, the calibrated
    observables' mean absolute errors, seconds)."""
    if res is None:
        return None
    rows = []
    for arm in res.get("arms", list(FIDELITY_ARMS)):
        a, label = res[arm], FIDELITY_ARMS[arm]
        rng = a.get("time_to_runaway_ratio_range") or []
        rows.append({"arm": label, "n": a["n"], "runaways": a["runaways"], "agreement": a["runaway_agreement"],
                     "lo": a["runaway_agreement_wilson95"][0], "hi": a["runaway_agreement_wilson95"][1],
                     "ratio": a["time_to_runaway_ratio_median"], "ratio_range": rng,
                     "peak_mae": a["peak_temperature_mae_no_runaway_K"], "seconds": a["seconds_per_run"],
                     "observables": a.get("observable_mae", {}),
                     "meets": bool(a["n"] >= res["min_runs"] and a["runaway_agreement"] >= res["agreement_target"])})
    return {"simulator": res["simulator"], "reference": res["reference"], "note": res["note"],
            "options": res.get("reference_options", {}), "held": res.get("held", {}), "n_draws": res["n_draws"],
            "reference_runaways": res["reference_runaways"], "reference_seconds": res["reference_seconds_per_run"],
            "target": res["agreement_target"], "min_runs": res["min_runs"], "failures": len(res["failures"]),
            "quick": bool(res.get("quick")), "rows": rows, "units": res.get("observable_units", {})}


#: the discretisation levels of the convergence check (`risk.convergence`), as the report names them
LEVEL_NAMES = ("the study's", "refined once", "refined twice")


def _mesh_convergence(res: dict | None) -> dict | None:
    """The simulator on its own discretisation and two refined ones (``mesh_convergence.json``): per level its
    options that change and seconds per run; per output its numerical uncertainty (RMS and largest over the draws,
    grid convergence index), the states of the draws, the apparent order and the ratio to its spread over the
    ensemble."""
    if res is None:
        return None
    opts = res.get("level_options") or []
    changed = sorted({k for o in opts[1:] for k, v in o.items() if opts[-1].get(k) != (opts[0].get(k) if opts else None)}
                     ) if len(opts) > 1 else []
    levels = [{"name": LEVEL_NAMES[k] if k < len(LEVEL_NAMES) else f"level {k}",
               "options": ", ".join(f"{key}: {o.get(key, 'default')}" for key in changed) or "as the study",
               "seconds": sec} for k, (o, sec) in enumerate(zip(opts, res.get("level_seconds_per_run", [])))]
    outputs = [{"name": name, "units": v["units"] or "1", "n": v["n"], "rms": v["uncertainty_rms"],
                "max": v["uncertainty_max"], "order": v["order_median"], "spread": v["input_spread"],
                "ratio": v["ratio_to_input"],
                "states": ", ".join(f"{n} {s}" for s, n in v["states"].items() if n),
                "negligible": {True: "yes", False: "no", None: "not judged"}[v["negligible"]]}
               for name, v in res["outputs"].items()]
    return {"simulator": res["simulator"], "reduced_from": res.get("reduced_from"), "ratio": res["ratio"],
            "n_draws": res["n_draws"],
            "n_complete": res["n_complete"], "levels": levels, "outputs": outputs, "runaways": res["runaways"],
            "runaway_changes": res["runaway_changes"], "hazard_level_changes": res["hazard_level_changes"],
            "fraction": res["input_fraction"], "converged": res["converged"], "failures": len(res["failures"]),
            "quick": bool(res.get("quick"))}


def _priors(study: dict) -> list[dict]:
    rows = []
    for name, spec in (study.get("parameters") or {}).items():
        spec = spec or {}
        prior = dict(spec.get("prior") or {})
        dist = prior.pop("dist", "?")
        unit = spec.get("unit", "")
        args = ", ".join(f"{k} = {numbers.quantity(v, unit if k in ('low', 'high', 'mu') and dist != 'lognormal' else '')}"  # noqa: E501
                         for k, v in prior.items() if v is not None)
        rows.append({"name": name, "dist": dist, "args": args, "unit": unit or "1",
                     "reference": spec.get("reference") or "—"})
    return rows


def _hyperpriors(art: Artefacts) -> list[dict]:
    """The physics posterior's hierarchy priors (`risk.bayes.model.hyperpriors`) with the scales it was sampled at
    (its attrs); [] without a physics posterior."""
    tree = art.posterior
    if tree is None or "prior_mean" not in tree.attrs:
        return []
    from risk.bayes.model import FAMILY_SCALE, hyperpriors

    a = tree.attrs
    fd, fl, fk = a.get("family_discrepancy_scale"), a.get("family_logit_scale"), a.get("family_link_scale")
    return hyperpriors(family_scale=float(json.loads(a.get("family_scale", str(FAMILY_SCALE)))),
                       family_discrepancy_scale=None if fd is None else float(json.loads(fd)),
                       emulator="emulator_error" in a, family_logit_scale=None if fl is None else float(json.loads(fl)),
                       family_link_scale=None if fk is None else float(json.loads(fk)))


def _misspecification(art: Artefacts) -> dict | None:
    """``misspecification.json`` as table rows: one per observable/outcome with its posterior predictive
    p-values, outside-interval share, outside-simulated-range share and discrepancy check; the parameters whose
    calibrated cells reach beyond the design region (≥ 0.5 %, largest share first); the design rows."""
    m = art.misspecification
    if m is None:
        return None
    rows = []
    for name in dict.fromkeys([*m.get("observables", {}), *m.get("simulated_range", {}), *m.get("discrepancy", {})]):
        ppc, rng, disc = (m.get(k, {}).get(name) for k in ("observables", "simulated_range", "discrepancy"))
        rows.append({"name": name, "p_values": (ppc or {}).get("p_values", {}),
                     "outside_interval": None if ppc is None else ppc["interval"]["share_outside"],
                     "outside_range": None if rng is None else rng["share_outside"],
                     "discrepancy": None if disc is None else disc["posterior_median"],
                     "discrepancy_prior": None if disc is None else disc["prior_quantile"],
                     "flag": bool((ppc or {}).get("extreme") or (ppc or {}).get("interval", {}).get("extreme")
                                  or (rng or {}).get("extreme") or (disc or {}).get("extreme"))})
    for name, r in m.get("outcome", {}).items():
        rows.append({"name": name, "p_values": r["p_values"], "outside_interval": None, "outside_range": None,
                     "discrepancy": None, "discrepancy_prior": None, "flag": bool(r["extreme"])})
    design = [{"name": k, **v} for k, v in m.get("design", {}).items()]
    edge = sorted(({"name": k, **v} for k, v in m.get("design_edge", {}).items() if v["share_beyond"] >= 0.005),
                  key=lambda r: -r["share_beyond"])
    return {"flag": bool(m.get("flag")), "reasons": m.get("reasons", []), "rows": rows, "design": design,
            "design_edge": edge, "extrapolation": bool(m.get("extrapolation")),
            "extrapolation_reasons": m.get("extrapolation_reasons", []), "alpha": m.get("alpha")}


def _rounds(art: Artefacts) -> dict | None:
    """``rounds.json`` (`risk.rounds`) as rows: per round its simulations, diagnostics, decoder NRMSE per
    observable and runaway Brier score on the evaluation set drawn from the final posterior, and P(TR) per
    scenario; None without simulation rounds."""
    r = art.rounds
    if not r:
        return None
    rows = [{"round": x["round"], "simulations": x["simulations"], "ok": x["diagnostics_ok"],
             "nrmse": x["decoder_error_posterior_region"].get("nrmse", {}),
             "brier": x["decoder_error_posterior_region"].get("brier"), "p_tr": x["p_tr"]} for x in r["rounds"]]
    return {"rows": rows, "observables": list(rows[0]["nrmse"]), "scenarios": list(rows[0]["p_tr"]),
            "evaluation": r.get("evaluation", {})}


def _validation(art: Artefacts) -> dict:
    res: dict[str, Any] = {
        "metrics": None if art.metrics is None else _table_rows(art.metrics),
        "metrics_why": art.problems.get("metrics", NOT_COMPUTED),
        "ppc": [], "ppc_why": art.problems.get("posterior", NOT_COMPUTED), "crossval": None, "heat_cv": [],
        "runaway_cv": [], "rupture_cv": [], "observable_cv": [], "observable_cv_all": [],
        "crossval_why": art.problems.get("crossval", NOT_COMPUTED)}
    post = art.posterior
    if post is not None and "posterior_predictive" in post and "observed_data" in post:
        pp_ds = post["posterior_predictive"].to_dataset()
        obs_ds = post["observed_data"].to_dataset()
        for name in obs_ds.data_vars:
            if name not in pp_ds:
                continue
            pp, obs = pp_ds[name], obs_ds[name]
            cov = figures.coverage(pp, obs, 0.9)
            res["ppc"].append({"name": str(name), "label": figures.label(obs, str(name)),
                               "coverage": cov, "figure": figures.posterior_predictive(pp, obs),
                               "n_obs": int(np.isfinite(obs.astype(float).values).sum())})
    elif post is not None:
        res["ppc_why"] = "posterior.nc has no posterior_predictive/observed_data groups"
    res["misspecification"] = _misspecification(art)
    res["rounds"] = _rounds(art)
    res["misspecification_why"] = art.problems.get("misspecification", NOT_COMPUTED)
    if art.crossval is not None:
        rows = []
        for scheme, entry in art.crossval.items():
            if not isinstance(entry, dict) or "physics" not in entry:
                continue
            phys = entry["physics"]
            for metric in ("log_loss", "brier", "ordinal_log_loss"):
                if metric not in phys:
                    continue
                others = {m: entry[m].get(metric) if m in entry else None for m in CV_BASELINES}
                best = min((v for v in others.values() if v is not None), default=None)
                rows.append({"scheme": scheme, "metric": metric, "physics": phys[metric], **others,
                             "better": None if best is None else phys[metric] < best,
                             "n_tests": entry.get("n_tests"), "n_folds": entry.get("n_folds")})
        res["crossval"] = rows
        res["crossval_quick"] = bool(art.crossval.get("quick"))
        res["reliability"] = {scheme: entry["physics"].get("reliability", [])
                              for scheme, entry in art.crossval.items() if isinstance(entry, dict) and "physics" in entry}
        lfo = art.crossval.get("leave_family_out") or {}
        res["by_family"] = [  # which left-out family each model predicts well (TR log loss per family)
            {"family": fam, "n": rec["n"], "physics": rec["log_loss"],
             **{m: lfo[m].get("by_family", {}).get(fam, {}).get("log_loss") if m in lfo else None
                for m in ("metadata", "family_frequency")}}
            for fam, rec in (lfo.get("physics") or {}).get("by_family", {}).items()]
        res["heat_cv"] = [  # calorimetry: the physics model's heat intervals vs per-group normal intervals
            {"scheme": scheme, **{f"{m}_{k}": entry[m][k] for m in ("physics", "group_normal")
                                  for k in ("coverage_90", "width_90", "interval_score_90")},
             "better": entry["physics"]["interval_score_90"] < entry["group_normal"]["interval_score_90"],
             "n_tests": entry.get("n_tests"), "n_folds": entry.get("n_folds"),
             "fold_ok": (entry.get("fold_diagnostics", {}).get("physics") or {}).get("ok")}
            for scheme, entry in (art.crossval.get("heat") or {}).items() if isinstance(entry, dict) and "physics" in entry]
        obs_cv = (art.crossval.get("heat") or {}).get("observables") or art.crossval.get("observables") or {}
        res["observable_cv"] = [  # every calibrated observable out of sample, per held-out cell family
            {"observable": name, "units": entry.get("units", ""), "scheme": scheme, "family": family, **scores}
            for name, entry in obs_cv.items()
            for scheme, by in entry.items() if isinstance(by, dict)
            for family, scores in (by.get("by_family") or {}).items()]
        res["observable_cv_all"] = [  # the same intervals over all held-out tests, against the per-group normal
            {"observable": name, "units": entry.get("units", ""), "scheme": scheme, "n_tests": by.get("n_tests"),
             **{f"{m}_{k}": (by.get(m) or {}).get(k) for m in ("physics", "group_normal")
                for k in ("coverage_90", "interval_score_90")},
             "better": by.get("group_normal") is not None
             and by["physics"]["interval_score_90"] < by["group_normal"]["interval_score_90"],
             "bounds": by.get("bounds")}
            for name, entry in obs_cv.items() for scheme, by in entry.items() if isinstance(by, dict) and "physics" in by]
        for key, outcome in (("runaway_cv", "runaway"), ("rupture_cv", "bottom_rupture")):
            # calorimetry: out-of-fold P(TR) and P(bottom rupture) of the same folds against frequency baselines
            res[key] = [
                {"scheme": scheme, **{m: entry[m]["log_loss"] for m in ("physics", *RUNAWAY_BASELINES) if m in entry},
                 **{f"{m}_brier": entry[m]["brier"] for m in ("physics", *RUNAWAY_BASELINES) if m in entry},
                 "better": all(entry["physics"]["log_loss"] < entry[m]["log_loss"] for m in RUNAWAY_BASELINES if m in entry),
                 "n_tests": entry.get("n_tests"), "n_folds": entry.get("n_folds"), "n_events": entry.get("n_ruptures")}
                for scheme, entry in ((art.crossval.get("heat") or {}).get(outcome) or {}).items() if "physics" in entry]
    return res


#: calorimetry runaway baselines (risk.predict.heatcv.RUNAWAY_BASELINES)
RUNAWAY_BASELINES = ("family_frequency", "soc_trigger_frequency")


#: the models the reported physics model is validated against (crossval.json, risk.predict.realcv)
CV_BASELINES = ("metadata", "family_frequency", "ablation_family_constant")


PER_UNIT_DIMS = ("test", "family", "observed_entry", "scenario")  # posterior dims of latents, not hyperparameters


def _posterior(art: Artefacts, study: dict) -> dict:
    post = art.posterior
    if post is None or "posterior" not in post:
        return {"computed": False, "why": art.problems.get("posterior", NOT_COMPUTED)}
    ds = post["posterior"].to_dataset()
    names = figures.scalar_posterior_vars(ds)
    params = study.get("parameters") or {}
    rows = []

    def row(name: str, v: np.ndarray, unit: str) -> dict:
        q05, q50, q95 = np.quantile(v, [0.05, 0.5, 0.95])
        return {"name": name, "unit": unit, "mean": float(v.mean()), "sd": float(v.std()),
                "q05": q05, "q50": q50, "q95": q95}

    for n in names:
        unit = ds[n].attrs.get("units") or (params.get(n) or {}).get("unit") or "1"
        rows.append(row(n, ds[n].values.ravel(), unit))
    # population-level vectors (hierarchical hyperparameters: μ_pop, τ_family, cell sd per physical
    # parameter in the decoder's u space; discrepancy per observable; cutpoints); per-test and
    # per-family latents stay in posterior.nc
    for n in ds.data_vars:
        extra = [d for d in ds[n].dims if d not in figures.SAMPLE_DIMS]
        if len(extra) != 1 or extra[0] in PER_UNIT_DIMS or ds.sizes[extra[0]] > 12:
            continue
        unit = ds[n].attrs.get("units") or ("1 (u space)" if extra[0] == "parameter" else "1")
        for j, label in enumerate(ds[extra[0]].values):
            rows.append(row(f"{n}[{label}]", ds[n].isel({extra[0]: j}).values.ravel(), unit))
    return {"computed": True, "rows": rows, "n_chains": int(ds.sizes.get("chain", 0)),
            "n_draws": int(ds.sizes.get("draw", 0)),
            "figure": figures.parameter_posteriors(ds, params) if names else None}


def _decomposition(art: Artefacts) -> dict:
    pred = art.predictions
    if pred is None or "p_tr_var_aleatory" not in pred or "p_tr_var_epistemic" not in pred:
        return {"computed": False, "why": art.problems.get("predictions", NOT_COMPUTED)}
    rows = []
    for i, s in enumerate(pred["scenario"].values):
        a, e = float(pred["p_tr_var_aleatory"].values[i]), float(pred["p_tr_var_epistemic"]
                                                                  .values[i])
        tot = a + e
        rows.append({"scenario": str(s), "sd_aleatory": math.sqrt(max(a, 0)),
                     "sd_epistemic": math.sqrt(max(e, 0)),
                     "share_epistemic": e / tot if tot > 0 else math.nan})
    return {"computed": True, "rows": rows, "figure": figures.variance_decomposition(pred)}


def _sensitivity(art: Artefacts) -> dict:
    """Ranking by Shapley effects over the posterior and the cell-to-cell distribution (`risk.predict.shapley`),
    with the epistemic/aleatory grouped split; Sobol indices over a box where no Shapley effects were saved."""
    s = art.sensitivity
    if s is None:
        return {"computed": False, "why": art.problems.get("sensitivity", NOT_COMPUTED)}

    def val(name, i):
        return float(s[name].values[i]) if name in s else math.nan

    shapley = "shapley_effect" in s
    order = np.argsort(-s["shapley_effect" if shapley else "ST"].values)
    rows = [{"rank": r + 1, "parameter": str(s["parameter"].values[i]), "ST": val("ST", i),
             "ST_conf": val("ST_conf", i), "S1": val("S1", i), "S1_conf": val("S1_conf", i),
             "shapley": val("shapley_effect", i), "shapley_q05": val("shapley_effect_q05", i),
             "shapley_q95": val("shapley_effect_q95", i)}
            for r, i in enumerate(order)]
    groups = ([{"group": str(g), "shapley": float(s["group_shapley"].values[j])}
               for j, g in enumerate(s["group"].values)] if "group_shapley" in s else [])
    return {"computed": True, "shapley": shapley, "rows": rows, "groups": groups,
            "scenario": str(s.attrs.get("scenario", "")), "figure": figures.sensitivity_ranking(s)}


def _without_lists(obj: Any) -> Any:
    """The rare-event record without its per-draw and per-sample lists (kept in rare_events.json)."""
    if isinstance(obj, dict):
        return {k: _without_lists(v) for k, v in obj.items() if k not in ("per_draw", "failed_runs", "failure_samples")}
    return obj


def _unit(var: xr.DataArray) -> str:
    unit = str(var.attrs.get("units", ""))
    return "" if unit in ("1", "") else unit


def _next_test(art: Artefacts, top: int = 8) -> dict:
    """The best candidate tests by expected reduction of the scenarios' P(TR) variance."""
    nt = art.next_test
    if nt is None:
        return {"computed": False, "why": art.problems.get("next_test", NOT_COMPUTED)}
    conds = [str(v) for v in nt.data_vars if nt[v].dims == ("candidate",)
             and v not in ("eig", "variance_reduction", "cell_family")]
    rows = []
    for i in range(min(top, nt.sizes["candidate"])):
        c = nt.isel(candidate=i)
        rows.append({"family": str(c["cell_family"].values),
                     "conditions": ", ".join(f"{k} = {float(c[k]):.4g} {_unit(nt[k])}".rstrip() for k in conds),
                     "eig": float(c["eig"]), "reduction": float(c["variance_reduction"])})
    return {"computed": True, "rows": rows, "n_cells": int(nt.attrs.get("n_cells_per_test", 1)),
            "n_candidates": int(nt.sizes["candidate"]), "basis": nt.attrs.get("basis", "")}


def _limitations(art: Artefacts, study: dict, ctx: dict) -> list[str]:
    """Limitations derived from the artefacts, then the study's own (``report.limitations``)."""
    out = []
    absent = [rel for key, rel in FILES.items()
              if getattr(art, key) is None and key not in ("failures", "next_test")]
    if absent:
        out.append("Artefacts absent from this run (their sections say so): "
                   + ", ".join(absent) + ".")
    for key, msg in art.problems.items():
        out.append(f"Unreadable artefact — {msg}")
    if ctx["verdict"]["state"] == "failed":
        out.append("The MCMC diagnostics failed: the posterior, and every probability derived "
                   "from it, may be wrong.")
    for p in ctx["validation"]["ppc"]:
        if math.isfinite(p["coverage"]) and p["coverage"] < 0.8:
            out.append(f"Posterior predictive 90 % intervals cover only "
                       f"{numbers.percent(p['coverage'])} of the real {p['name']} observations: "
                       "the model under-represents the observed variability.")
    for row in ctx["validation"]["crossval"] or []:
        if row["better"] is False:
            out.append(f"Cross-validation ({row['scheme']}, {row['metric']}): the physics model does not "
                       "beat every baseline.")
    if ctx["summary"]["computed"]:
        zero = [r["scenario"] for r in ctx["summary"]["rows"] if r["q05"] <= 0]
        if zero:
            out.append("Lower credible bounds of zero (" + ", ".join(zero) + "): the draws "
                       "cannot resolve probabilities below about 1 in "
                       f"{numbers.group(max(ctx['summary']['n_draws'], 1))}.")
        if ctx["summary"]["disagreeing"]:
            out.append("At the cells behind P(TR) of " + ", ".join(ctx["summary"]["disagreeing"]) + " the full "
                       "simulator's runaway fraction lies outside what its decoder predicts (section 3): those "
                       "probabilities carry the decoder's error as well as the simulator's physics.")
    if art.failures:
        out.append(f"{len(art.failures)} simulation(s) failed and are excluded from the "
                   "ensemble; if failures correlate with parameters, the surrogate is biased "
                   "there.")
    out.append("Probabilities are conditional on one abuse event of each scenario as defined "
               "in the study; they do not cover abuse modes, cell designs or ageing states that "
               "the scenarios and real tests do not represent.")
    report_cfg = study.get("report") or {}
    out += [str(x) for x in (report_cfg.get("limitations") or [])
            if isinstance(report_cfg, dict)]
    return out


def _evidence(art: Artefacts, ctx: dict, sbc: dict | None) -> list[str]:
    """Page-one evidence lines: this model's validation, SBC, predictive checks and convergence, in words."""
    out = []
    cv = art.crossval or {}
    lfo = cv.get("leave_family_out") or {}
    if "physics" in lfo:
        p = lfo["physics"].get("log_loss")
        base = {m: (lfo.get(m) or {}).get("log_loss") for m in ("metadata", "family_frequency")}
        better = [m for m, v in base.items() if v is not None and p is not None and p < v]
        out.append(f"Whole cell families left out ({lfo.get('n_tests', '?')} tests, {lfo.get('n_folds', '?')} folds"
                   f"{', quick: reduced draws' if cv.get('quick') else ''}): TR log loss of the physics model "
                   f"{numbers.number(p, 3)} against metadata regression {numbers.number(base['metadata'], 3)} and "
                   f"family frequency {numbers.number(base['family_frequency'], 3)} — "
                   + ("physics better than both" if len(better) == 2 else
                      "physics better than " + better[0].replace("_", " ") if better else "a baseline is better"))
    for row in ctx["validation"]["heat_cv"]:
        out.append(f"Heat, {row['scheme']} ({row['n_tests']} tests): the physics model's 90 % intervals cover "
                   f"{numbers.percent(row['physics_coverage_90'])}, interval score {numbers.number(row['physics_interval_score_90'], 3)} kJ "
                   f"against {numbers.number(row['group_normal_interval_score_90'], 3)} kJ for per-group normal intervals — "
                   + ("physics better" if row["better"] else "the baseline is better"))
    if not out:
        out.append("No cross-validation on real tests in this run (crossval.json " + NOT_COMPUTED + ").")
    if sbc and sbc["applies"]:
        out.append(f"Simulation-based calibration of the whole inference ({sbc['source']}): {sbc['replicates']} "
                   f"replicates, {sbc['m']} parameters, smallest Bonferroni-adjusted χ² p "
                   f"{numbers.number(sbc['min_p_bonferroni'], 2)} — {sbc['verdict']}.")
    else:
        out.append("Simulation-based calibration: no record for this model's likelihood.")
    ppc = credibility._ppc_coverages(art)
    if ppc:
        out.append("Posterior predictive 90 % intervals cover "
                   + ", ".join(f"{numbers.percent(v)} of the real {k}" for k, v in ppc.items()) + ".")
    diag = art.diagnostics or {}
    if diag:
        out.append("Convergence: " + ("passed" if diag.get("ok") else "FAILED")
                   + "".join(f"; {k.replace('_', ' ')} {numbers.number(diag[k], 4)}"
                             for k in ("rhat_max", "ess_bulk_min", "ess_tail_min", "divergences") if k in diag))
    return out


# --------------------------------------------------------------------------- entry point
def render_html(run_dir: str | Path, study: dict, *, write_exports_too: bool = True) -> str:
    """Render the report HTML (a self-contained string) from the artefacts in ``run_dir``."""
    art = load_artefacts(run_dir)
    study = study or {}
    head = study.get("study") or {}
    ctx: dict[str, Any] = {
        "name": study_name(study) or Path(run_dir).name,
        "description": head.get("description") or "",
        "seed": head.get("seed"),
        "built": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "study_hash": (art.predictions.attrs.get("study_hash") if art.predictions is not None
                       else (art.provenance or {}).get("study_hash")) or "—",
        "verdict": _verdict(art),
        "diagnostics": None if art.diagnostics is None else _table_rows(
            {k: v for k, v in art.diagnostics.items() if k != "messages"}),
        "summary": _summary(art),
        "exports": _exports(art, study, write_exports_too),
        "provenance": _provenance(art, study),
        "priors": _priors(study),
        "hyperpriors": _hyperpriors(art),
        "scenarios": _table_rows(study.get("scenarios")) if study.get("scenarios") else [],
        "study_yaml": art.study_yaml,
        "validation": _validation(art),
        "posterior": _posterior(art, study),
        "decomposition": _decomposition(art),
        "sensitivity": _sensitivity(art),
        "next_test": _next_test(art),
        "rare_events": None if art.rare_events is None else _table_rows(_without_lists(art.rare_events)),
        "prior_sensitivity": art.prior_sensitivity,
        "not_computed": NOT_COMPUTED,
        "problems": art.problems,
    }
    sbc = sbc_record(art)
    ctx["sbc"] = sbc
    ctx["evidence"] = _evidence(art, ctx, sbc)
    ctx["credibility"] = credibility.assess(art, study, sbc)
    ctx["quick"] = any(isinstance(r, dict) and r.get("quick") for r in (art.stages or {}).values())
    ctx["limitations"] = _limitations(art, study, ctx)
    return _env().get_template("report.html.j2").render(**ctx)


def build_report(run_dir: str | Path, study: dict, *, pdf: bool = True,
                 write_exports_too: bool = True) -> tuple[Path, Path | None]:
    """Write ``report.html`` and ``report.pdf`` in ``run_dir`` from its saved artefacts.

    Parameters
    ----------
    run_dir : ``runs/<study>/``.
    study : the study as a plain dict (``Study.model_dump()``).
    pdf : also print the PDF with headless Chromium (needs the Debian package ``chromium``).
    write_exports_too : (re)write ``exports/`` first (seeded, so identical on rebuild).

    Returns
    -------
    (html_path, pdf_path); pdf_path is None when ``pdf=False``.

    Raises
    ------
    risk.report.pdf.MissingToolError
        If ``pdf=True`` and Chromium is not installed.
    """
    run_dir = Path(run_dir)
    html_path = run_dir / "report.html"
    html_path.write_text(render_html(run_dir, study, write_exports_too=write_exports_too),
                         encoding="utf-8")
    pdf_path = html_to_pdf(html_path, run_dir / "report.pdf") if pdf else None
    return html_path, pdf_path
