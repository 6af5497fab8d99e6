"""Credibility assessment of a run in the style of NASA-STD-7009A, computed from its artefacts.

NASA-STD-7009A (2016), *Standard for Models and Simulations*, Appendix E (credibility assessment):
each factor gets a level 0–4 from the evidence available, from 0 (insufficient evidence) to 4
(comprehensive, quantitative evidence). The factors scored here are the ones a run's artefacts can
evidence — verification, validation, input pedigree, results uncertainty, results robustness, use history
and M&S management; "people qualifications" cannot be read from files and is left to the reader.

Levels are **computed** from the saved artefacts by the rules in each ``_<factor>`` function (a degraded
``crossval.json`` lowers the validation level), never written as static text. 7009A does not average
factors: the report states each level and the weakest one.

Every factor is returned as ``{"factor", "level", "evidence": [str], "criteria": str}``.
"""
from __future__ import annotations

import math
from typing import Any

from risk.report import numbers
from risk.report.artefacts import Artefacts

REFERENCE = ("NASA-STD-7009A (2016), Standard for Models and Simulations, Appendix E: Credibility Assessment "
             "Scale, levels 0–4")

#: decoder held-out accuracy accepted as verified surrogate: central 90 % intervals cover 80–98 % of held-out
#: simulations for every observable, and the runaway head separates runaway from none (AUC ≥ 0.9)
SURROGATE_COVERAGE = (0.80, 0.98)
SURROGATE_AUC = 0.9
#: posterior predictive 90 % intervals cover at least this share of each real observable
PPC_COVERAGE_MIN = 0.80
#: calorimetry heat intervals: nominal 90 %, calibrated if 85–95 % of held-out tests are covered
HEAT_COVERAGE = (0.85, 0.95)
CV_SCHEMES = ("leave_replicates_out", "leave_soc_out", "leave_family_out")
LEVEL_WORDS = {0: "insufficient evidence", 1: "minimal", 2: "partial", 3: "substantial", 4: "comprehensive"}


def _f(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _verification(art: Artefacts, sbc: dict | None) -> dict:
    ev, level = [], 0
    dec = (art.metrics or {}).get("decoder", art.metrics or {})
    cov = dec.get("coverage90") or {}
    surrogate_ok = bool(cov) and all(SURROGATE_COVERAGE[0] <= _f(v) <= SURROGATE_COVERAGE[1] for v in cov.values())
    auc = _f(dec.get("auc"))
    if math.isfinite(auc):
        surrogate_ok = surrogate_ok and auc >= SURROGATE_AUC
    if art.metrics is not None:
        level = 1
        ev.append("surrogate on held-out simulations: 90 % coverage "
                  + ", ".join(f"{k} {numbers.percent(_f(v))}" for k, v in cov.items())
                  + (f"; runaway AUC {numbers.number(auc, 3)}" if math.isfinite(auc) else "")
                  + (" — within tolerance" if surrogate_ok else " — outside tolerance"))
    else:
        ev.append("surrogate held-out metrics (model/metrics.json) absent")
    off = _simulator_disagreements(art.predictions)
    if off is not None:  # held-out simulations spread over the prior do not show where the calibrated cells live
        ev.append("full simulator at the scenarios' calibrated cells (predictions.nc): "
                  + (f"the surrogate is outside its Wilson 95 % interval for {', '.join(off)}" if off else
                     "the surrogate is within its Wilson 95 % interval for every scenario"))
        surrogate_ok = surrogate_ok and not off
    if surrogate_ok:
        level = 2
    sbc_ok = bool(sbc and sbc.get("applies") and sbc.get("verdict") == "pass")
    if sbc and sbc.get("applies"):
        ev.append(f"simulation-based calibration of the whole inference ({sbc['source']}): "
                  f"{sbc['replicates']} replicates, {sbc['m']} parameters, smallest Bonferroni p "
                  f"{numbers.number(sbc['min_p_bonferroni'], 2)} — {sbc['verdict']}")
    else:
        ev.append("no simulation-based calibration record for this model's likelihood")
    if surrogate_ok and sbc_ok:
        level = 3
    if art.fidelity is not None:  # the reduced simulator against the model it reduces (risk.fidelity)
        f = art.fidelity
        a, same = f.get("as_study", {}), f.get("same_physics", {})
        lo, hi = a.get("runaway_agreement_wilson95", [math.nan, math.nan])
        ev.append(f"{f.get('simulator')} against the model it reduces ({f.get('reference')}, fidelity.json): runaway "
                  f"agreement {numbers.number(_f(a.get('runaway_agreement')), 2)} (Wilson 95 % "
                  f"{numbers.number(_f(lo), 2)}–{numbers.number(_f(hi), 2)}) over {a.get('n')} fresh draws as the study "
                  f"runs it, {numbers.number(_f(same.get('runaway_agreement')), 2)} for the reduction alone; target "
                  f"{numbers.number(_f(f.get('agreement_target')), 2)} on ≥ {f.get('min_runs')} runs")
    mc = art.mesh_convergence
    if mc is not None:  # the simulator's own discretisation error (risk.convergence)
        worst = max((v for v in mc.get("outputs", {}).values() if math.isfinite(_f(v.get("ratio_to_input")))),
                    key=lambda v: _f(v["ratio_to_input"]), default=None)
        of = f", the reference {mc['reduced_from']} reduces," if mc.get("reduced_from") else ""
        ev.append(f"{mc.get('simulator')}{of} on two refined discretisations (mesh_convergence.json, {mc.get('n_draws')} "
                  f"draws): runaway changed in {mc.get('runaway_changes')}, largest numerical uncertainty "
                  + (f"{numbers.number(_f(worst['ratio_to_input']), 2)} of its output's spread over the ensemble"
                     if worst is not None else "not judged")
                  + f" — {'converged' if mc.get('converged') else 'not shown converged'}")
        # a reference's convergence verifies the study's simulator through the reduction's measured agreement
        reduction_ok = not mc.get("reduced_from") or _fidelity_meets(art.fidelity)
        if level == 3 and mc.get("converged") and reduction_ok:
            level = 4
    else:
        ev.append("no mesh-convergence record in this run (mesh-free simulator, or not recorded): the simulator's "
                  "own verification is in the project's test suite (analytic solutions, energy balance), not here")
    return {"factor": "Verification", "level": level, "evidence": ev,
            "criteria": "1 surrogate metrics recorded; 2 surrogate within tolerance (coverage 80–98 %, AUC ≥ 0.9, "
                        "and within the full simulator's interval at every scenario's calibrated cells where checked); "
                        "3 and SBC of the inference passes; 4 and the simulator's discretisation error shown "
                        "negligible on refined meshes (mesh_convergence.json: no runaway changes, numerical "
                        "uncertainty ≤ 0.1 of each output's spread over the ensemble), or its FE reference's where "
                        "the simulator is mesh-free and meets the reduction target against it"}


def _fidelity_meets(f: dict | None) -> bool:
    """Does the study's simulator meet the reduction target against its reference as the study runs it
    (``fidelity.json``: agreement ≥ target on ≥ the minimum runs)?"""
    a = (f or {}).get("as_study") or {}
    return bool(f) and a.get("n", 0) >= f.get("min_runs", math.inf) and \
        _f(a.get("runaway_agreement")) >= _f(f.get("agreement_target"))


def _simulator_disagreements(pred) -> list[str] | None:
    """Scenarios whose decoder P(runaway) lies outside the full simulator's Wilson 95 % interval at their calibrated
    cells (`risk.predict.simulator_agreement`); None when predictions.nc holds no such check."""
    if pred is None or "decoder_within_wilson" not in pred:
        return None
    done = pred["simulator_runs"].values > 0
    return [str(sc) for sc, ok, d in zip(pred["scenario"].values, pred["decoder_within_wilson"].values, done)
            if d and ok != 1]


def _beats(entry: dict, model: str, baseline: str, metric: str = "log_loss") -> bool | None:
    a, b = (entry.get(model) or {}).get(metric), (entry.get(baseline) or {}).get(metric)
    if a is None or b is None or not (math.isfinite(_f(a)) and math.isfinite(_f(b))):
        return None
    return _f(a) < _f(b)


def _validation(art: Artefacts) -> dict:
    cv = art.crossval
    criteria = ("1 grouped cross-validation recorded; 2 physics beats the family-frequency baseline when whole families "
                "are left out; 3 and beats the metadata regression there; 4 and beats every baseline in every scheme of "
                "a full (not quick) cross-validation, with posterior predictive coverage ≥ 80 %. Calorimetry (heat "
                "intervals): 2 one grouped scheme's 90 % intervals cover 85–95 % with a lower interval score than "
                "per-group normal intervals; 3 every scheme; 4 ≥ 2 schemes of a full cross-validation and posterior "
                "predictive coverage ≥ 80 %. A misspecification flag (misspecification.json) caps the level at 2")
    if cv is None:
        return {"factor": "Validation", "level": 0, "criteria": criteria,
                "evidence": ["no cross-validation on real tests (crossval.json absent)"]}
    ev, level = [], 1
    quick = bool(cv.get("quick"))
    heat = cv.get("heat") or {}
    lfo = cv.get("leave_family_out") or {}
    if "physics" in lfo:
        n = lfo.get("n_tests")
        ev.append("leave-family-out TR log loss: physics "
                  + numbers.number(_f(lfo["physics"].get("log_loss")), 3)
                  + "".join(f", {m} {numbers.number(_f(lfo[m].get('log_loss')), 3)}"
                            for m in ("metadata", "family_frequency", "ablation_family_constant") if m in lfo)
                  + (f" ({n} tests)" if n is not None else ""))
        if _beats(lfo, "physics", "family_frequency"):
            level = 2
            if _beats(lfo, "physics", "metadata"):
                level = 3
                schemes = [cv[s] for s in CV_SCHEMES if isinstance(cv.get(s), dict) and "physics" in cv[s]]
                all_best = len(schemes) == len(CV_SCHEMES) and all(
                    _beats(e, "physics", b) for e in schemes for b in ("metadata", "family_frequency") if b in e)
                ppc = _ppc_coverages(art)
                if all_best and not quick and ppc and min(ppc.values()) >= PPC_COVERAGE_MIN:
                    level = 4
    heat_entries = {k: v for k, v in heat.items() if isinstance(v, dict) and "physics" in v}
    if heat_entries:  # calorimetry: sharp and calibrated heat intervals in every grouped scheme
        passed = 0
        for scheme, e in heat_entries.items():
            cov, s_p, s_b = (_f(e["physics"].get("coverage_90")), _f(e["physics"].get("interval_score_90")),
                             _f((e.get("group_normal") or {}).get("interval_score_90")))
            passed += HEAT_COVERAGE[0] <= cov <= HEAT_COVERAGE[1] and s_p < s_b
            ev.append(f"heat {scheme}: physics 90 % interval covers {numbers.percent(cov)}, interval score "
                      f"{numbers.number(s_p, 3)} vs per-group normal {numbers.number(s_b, 3)}")
        heat_level = 1 + (passed >= 1) + (passed == len(heat_entries))
        if passed == len(heat_entries) >= 2 and not quick and min(_ppc_coverages(art).values(), default=0) >= PPC_COVERAGE_MIN:
            heat_level = 4
        level = heat_level if "physics" not in lfo else min(level, heat_level)
    for scheme, e in (heat.get("runaway") or {}).items():  # calorimetry: out-of-fold P(TR) of the same folds
        if isinstance(e, dict) and "physics" in e:
            ev.append(f"runaway {scheme}: physics log loss {numbers.number(_f(e['physics'].get('log_loss')), 3)}"
                      + "".join(f", {m} {numbers.number(_f(e[m].get('log_loss')), 3)}"
                                for m in ("family_frequency", "soc_trigger_frequency") if m in e))
    mis = art.misspecification
    if mis is not None and mis.get("flag"):  # a model the data question is not validated beyond level 2
        level = min(level, 2)
        ev.append("misspecification flagged (misspecification.json): " + "; ".join(mis.get("reasons", [])[:3]))
    elif mis is not None:
        ev.append("no misspecification flagged (posterior predictive p-values, simulated range, discrepancy, "
                  "design edge)")
    if mis is not None and mis.get("extrapolation"):  # a few tests outside the design: their predictions extrapolate
        ev.append("extrapolation (misspecification.json): " + "; ".join(mis.get("extrapolation_reasons", [])[:3]))
    if quick:
        ev.append("quick run: reduced cross-validation (leave-family-out only, reduced draws)")
    return {"factor": "Validation", "level": level, "evidence": ev, "criteria": criteria}


def _ppc_coverages(art: Artefacts) -> dict[str, float]:
    """Share of real observations inside the 90 % posterior predictive interval, per observable."""
    import numpy as np

    post = art.posterior
    if post is None or "posterior_predictive" not in post or "observed_data" not in post:
        return {}
    pp, obs = post["posterior_predictive"].to_dataset(), post["observed_data"].to_dataset()
    out = {}
    for name in obs.data_vars:
        if name not in pp:
            continue
        sample_dims = [d for d in pp[name].dims if d in ("chain", "draw")]
        lo, hi = (pp[name].quantile(q, dim=sample_dims) for q in (0.05, 0.95))
        y = obs[name].astype(float)
        ok = np.isfinite(y.values)
        if ok.any():
            inside = ((y >= lo) & (y <= hi)).values[ok]
            out[str(name)] = float(inside.mean())
    return out


def _input_pedigree(art: Artefacts, study: dict) -> dict:
    ev, level = [], 0
    params = study.get("parameters") or {}
    sourced = [n for n, p in params.items() if (p or {}).get("reference")]
    n_real = 0
    families: set[str] = set()
    if art.real is not None:
        for node in art.real.subtree:
            ds = node.to_dataset()
            if "test" in ds.dims:
                n_real += int(ds.sizes["test"])
                if "cell_family" in ds:
                    families |= {str(v) for v in ds["cell_family"].values}
    hashes = (art.provenance or {}).get("data_hashes") or {}
    if n_real:
        level = 1
        ev.append(f"{n_real} real tests of {len(families) or '?'} cell families in real.nc")
    else:
        ev.append("no real tests in this run")
    if hashes:
        ev.append(f"{len(hashes)} data file(s) identified by SHA-256 in provenance.json")
    if params:
        ev.append(f"{len(sourced)} of {len(params)} prior(s) cite a source")
    if n_real and hashes and params and len(sourced) * 2 >= len(params):
        level = 2
        if len(sourced) == len(params) and len(families) >= 3:
            level = 3
            ingest = ((art.stages or {}).get("ingest") or {}).get("summary") or {}
            skipped = ingest.get("outcome_not_used") or {}
            if "tests" in ingest and (not skipped or skipped.get("reason")):
                level = 4
                ev.append(f"the ingest record lists the {ingest['tests']} tests used"
                          + (f"; outcomes of {len(skipped.get('tests', []))} not used: {skipped['reason']}"
                             if skipped else ", no exclusion"))
    return {"factor": "Input pedigree", "level": level, "evidence": ev,
            "criteria": "1 real tests used; 2 data files hashed and at least half of the priors sourced; 3 every prior "
                        "sourced and ≥ 3 cell families; 4 and the tests used, and every exclusion with its reason, recorded by ingest"}


def _uncertainty(art: Artefacts) -> dict:
    ev, level = [], 0
    diag = art.diagnostics
    if diag is not None:
        level = 1
        ok = bool(diag.get("ok"))
        ev.append("MCMC diagnostics " + ("passed" if ok else "FAILED") + " (R-hat ≤ 1.01, bulk/tail ESS ≥ 400, "
                  "no divergences, over every free variable and the scenarios' P(TR))")
        if ok:
            level = 2
            pred = art.predictions
            split = pred is not None and "p_tr_var_aleatory" in pred and "p_tr_var_epistemic" in pred
            ppc = _ppc_coverages(art)
            if ppc:
                ev.append("posterior predictive 90 % coverage of the real tests: "
                          + ", ".join(f"{k} {numbers.percent(v)}" for k, v in ppc.items()))
            if split:
                ev.append("aleatory (cell-to-cell) and epistemic (parameter) variance of P(TR) separated")
            if split and ppc and min(ppc.values()) >= PPC_COVERAGE_MIN:
                level = 3
                rare = art.rare_events if isinstance(art.rare_events, dict) else {}
                if isinstance(rare.get("posterior"), dict):
                    ev.append("rare-event probability given as an interval over posterior draws")
                    level = 4
    else:
        ev.append("no MCMC diagnostics (diagnostics.json absent)")
    return {"factor": "Results uncertainty", "level": level, "evidence": ev,
            "criteria": "1 diagnostics recorded; 2 passed; 3 and aleatory/epistemic split with posterior predictive "
                        "coverage ≥ 80 %; 4 and rare-event probabilities carry their epistemic interval"}


def _robustness(art: Artefacts) -> dict:
    ev, level = [], 0
    if art.sensitivity is not None:
        level = 1
        ev.append("sensitivity of P(TR) to the physical parameters (sensitivity.nc)")
    ps = art.prior_sensitivity
    if ps is not None:
        rows = ps.get("rows") or []
        flagged = [r["quantity"] for r in rows if r.get("diagnosis") not in (None, "ok")]
        ev.append(f"power-scaling prior sensitivity: {len(flagged)} of {len(rows)} quantities flagged"
                  + (f" ({', '.join(map(str, flagged[:6]))})" if flagged else ""))
        p_rows = [r for r in rows if str(r["quantity"]).startswith("p_tr")]
        # prior-dominated: the priors move the mean P(TR) more than the data do (absolute gradients of the mean);
        # a file without them (older runs) falls back to "flagged at all"
        dominated = [r["quantity"] for r in p_rows
                     if (r["prior_dominated"] if r.get("prior_dominated") is not None
                         else r.get("diagnosis") not in (None, "ok"))]
        moves = []
        for key, verb in (("halved", "halving"), ("doubled", "doubling")):
            shifts = [abs(r[f"shift_prior_{key}"]) for r in p_rows if r.get(f"shift_prior_{key}") is not None]
            if shifts:
                moves.append(f"{verb} the priors' weight moves a mean P(TR) by at most {max(shifts):.3f}")
        if p_rows:
            ev.append(f"{len(dominated)} of {len(p_rows)} scenario P(TR) prior-dominated"
                      + (f" ({', '.join(map(str, dominated[:4]))})" if dominated else "")
                      + "".join(f"; {m}" for m in moves))
        level = 2 if level >= 1 else 1
        if not dominated and level >= 2:
            level = 3
            if not flagged and art.next_test is not None:
                level = 4
    if art.next_test is not None:
        ev.append("next-test ranking: the test that would most change the conclusion is named")
    if not ev:
        ev.append("no sensitivity or prior-sensitivity analysis in this run")
    return {"factor": "Results robustness", "level": level, "evidence": ev,
            "criteria": "1 parameter sensitivity; 2 and prior sensitivity; 3 and the scenarios' P(TR) not prior-"
                        "dominated (the data move each mean P(TR) more than the priors do); 4 and no quantity "
                        "flagged, with the next informative test named"}


def _use_history(study: dict) -> dict:
    uses = [str(u) for u in ((study.get("report") or {}).get("use_history") or [])]
    level = min(len(uses), 4)
    ev = uses or ["no documented earlier use of this model for a decision (report.use_history is empty)"]
    return {"factor": "Use history", "level": level, "evidence": ev,
            "criteria": "one level per documented earlier use of the model (report.use_history), up to 4"}


def _management(art: Artefacts) -> dict:
    ev, level = [], 0
    prov = art.provenance or {}
    if prov:
        level = 1
        rev = str(prov.get("git_revision", "unknown"))
        ev.append(f"code revision {rev[:12]}{' (modified working tree)' if rev.endswith('+dirty') else ''}, "
                  f"package versions and seeds in provenance.json")
        if rev != "unknown" and not rev.endswith("+dirty"):
            level = 2
    if art.stages:
        ev.append(f"{len(art.stages)} pipeline stage(s) keyed by input hashes in stages.json")
        if level == 2:
            level = 3
            if prov.get("study_hash") and art.study_yaml:
                level = 4
                ev.append("the study file as run is stored with its hash")
    if not ev:
        ev.append("no provenance record")
    return {"factor": "M&S management", "level": level, "evidence": ev,
            "criteria": "1 provenance recorded; 2 from a committed code revision; 3 and every stage keyed by its "
                        "inputs; 4 and the study as run stored with its hash"}


def assess(art: Artefacts, study: dict, sbc: dict | None) -> dict:
    """Credibility factors of a run.

    Parameters
    ----------
    art : the run's artefacts (`risk.report.artefacts.load_artefacts`).
    study : the study as a plain dict.
    sbc : the applicable simulation-based-calibration record (`risk.report.artefacts.sbc_record`) or None.

    Returns
    -------
    ``{"reference", "factors": [{"factor", "level", "words", "evidence", "criteria"}], "weakest": factor}``
    """
    factors = [_verification(art, sbc), _validation(art), _input_pedigree(art, study), _uncertainty(art),
               _robustness(art), _use_history(study), _management(art)]
    for f in factors:
        f["words"] = LEVEL_WORDS[f["level"]]
    weakest = min(factors, key=lambda f: f["level"])
    return {"reference": REFERENCE, "factors": factors, "weakest": weakest["factor"]}
