"""Credibility levels are computed from the run's artefacts: degrading the evidence lowers the level."""
import copy
import json

import pytest

from risk.report import credibility
from risk.report.artefacts import Artefacts, load_artefacts, sbc_record
from risk.report.build import render_html


def _cv(physics: float, metadata: float, family: float, quick: bool = False) -> dict:
    entry = {"physics": {"log_loss": physics, "brier": 0.1}, "metadata": {"log_loss": metadata, "brier": 0.1},
             "family_frequency": {"log_loss": family, "brier": 0.1}, "n_tests": 40, "n_folds": 8}
    return {"quick": quick, **{s: copy.deepcopy(entry) for s in credibility.CV_SCHEMES}}


def _factor(result: dict, name: str) -> dict:
    return next(f for f in result["factors"] if f["factor"] == name)


@pytest.mark.parametrize(("physics", "metadata", "family", "level"), [
    (0.30, 0.40, 0.50, 3),  # beats both on leave-family-out (4 needs predictive coverage, absent here)
    (0.45, 0.40, 0.50, 2),  # beats family frequency only
    (0.60, 0.40, 0.50, 1),  # beats neither: cross-validation recorded, nothing more
])
def test_validation_level_follows_the_leave_family_out_scores(tmp_path, physics, metadata, family, level):
    art = Artefacts(run_dir=tmp_path, crossval=_cv(physics, metadata, family))
    assert _factor(credibility.assess(art, {}, None), "Validation")["level"] == level
    assert _factor(credibility.assess(Artefacts(run_dir=tmp_path), {}, None), "Validation")["level"] == 0


def test_heat_intervals_need_calibrated_coverage_and_a_better_score(tmp_path):
    good = {"physics": {"coverage_90": 0.9, "interval_score_90": 80.0}, "group_normal": {"interval_score_90": 100.0}}
    bad = {"physics": {"coverage_90": 0.6, "interval_score_90": 80.0}, "group_normal": {"interval_score_90": 100.0}}
    levels = [_factor(credibility.assess(Artefacts(run_dir=tmp_path, crossval={"heat": heat}), {}, None),
                      "Validation")["level"]
              for heat in ({"a": good, "b": good}, {"a": good, "b": bad}, {"a": bad, "b": bad})]
    assert levels == [3, 2, 1]


def test_uncertainty_and_verification_levels(tmp_path):
    sbc = {"applies": True, "verdict": "pass", "source": "test", "replicates": 100, "m": 3, "min_p_bonferroni": 0.3}
    metrics = {"decoder": {"coverage90": {"force": 0.9}, "auc": 0.95}}
    art = Artefacts(run_dir=tmp_path, metrics=metrics, diagnostics={"ok": True})
    res = credibility.assess(art, {}, sbc)
    assert _factor(res, "Verification")["level"] == 3
    assert _factor(res, "Results uncertainty")["level"] == 2
    assert _factor(credibility.assess(art, {}, {**sbc, "verdict": "fail"}), "Verification")["level"] == 2
    # the full simulator at the scenarios' calibrated cells: a surrogate outside its interval there is not verified
    import xarray as xr

    checked = xr.Dataset({"simulator_runs": ("scenario", [12.0, 12.0, 0.0]),
                          "decoder_within_wilson": ("scenario", [1.0, 0.0, float("nan")])},
                         coords={"scenario": ["a", "b", "c"]})
    art.predictions = checked
    res = credibility.assess(art, {}, sbc)
    assert _factor(res, "Verification")["level"] == 1
    assert any("outside its Wilson 95 % interval for b" in e for e in _factor(res, "Verification")["evidence"])
    art.predictions = checked.assign(decoder_within_wilson=("scenario", [1.0, 1.0, float("nan")]))
    assert _factor(credibility.assess(art, {}, sbc), "Verification")["level"] == 3
    # level 4 needs the simulator's discretisation error shown negligible, not merely a record of it
    out = {"force_short_onset": {"ratio_to_input": 0.02}, "voltage_drop": {"ratio_to_input": 0.3}}
    art.mesh_convergence = {"simulator": "fe_indentation_coupled", "n_draws": 6, "runaway_changes": 0,
                            "converged": False, "outputs": out}
    res = credibility.assess(art, {}, sbc)
    assert _factor(res, "Verification")["level"] == 3
    assert any("0.3 of its output's spread" in e and "not shown converged" in e
               for e in _factor(res, "Verification")["evidence"])
    art.mesh_convergence = {**art.mesh_convergence, "converged": True,
                            "outputs": {**out, "voltage_drop": {"ratio_to_input": 0.05}}}
    assert _factor(credibility.assess(art, {}, sbc), "Verification")["level"] == 4
    art.mesh_convergence = None
    art.predictions = None
    art.metrics = {"decoder": {"coverage90": {"force": 0.5}, "auc": 0.95}}  # surrogate intervals too narrow
    assert _factor(credibility.assess(art, {}, sbc), "Verification")["level"] == 1
    art.diagnostics = {"ok": False}
    assert _factor(credibility.assess(art, {}, sbc), "Results uncertainty")["level"] == 1
    uses = {"report": {"use_history": ["2026 pack design review", "2026 shipping classification"]}}
    assert _factor(credibility.assess(art, uses, sbc), "Use history")["level"] == 2
    assert _factor(credibility.assess(art, {}, sbc), "Use history")["level"] == 0


def test_robustness_level_needs_scenario_p_tr_moved_more_by_the_data_than_by_the_priors(tmp_path):
    import xarray as xr

    def ps(prior_grad, lik_grad, diagnosis="potential prior-data conflict"):
        return {"rows": [{"quantity": "link_scale", "diagnosis": diagnosis},
                         {"quantity": "p_tr[a]", "diagnosis": diagnosis, "prior_mean_gradient": prior_grad,
                          "likelihood_mean_gradient": lik_grad, "prior_dominated": abs(prior_grad) > abs(lik_grad),
                          "shift_prior_halved": -prior_grad / 2}]}

    sens = xr.Dataset({"s": ("x", [1.0])})
    level = {}
    for name, sensitivity in (("data", ps(-0.03, 0.10)), ("prior", ps(-0.10, 0.03)), ("old", {"rows": [
            {"quantity": "p_tr[a]", "diagnosis": "potential prior-data conflict"}]})):
        res = credibility.assess(Artefacts(run_dir=tmp_path, sensitivity=sens, prior_sensitivity=sensitivity), {}, None)
        level[name] = _factor(res, "Results robustness")
    assert level["data"]["level"] == 3  # a flagged P(TR) whose mean the data move more than the priors
    assert any("halving the priors' weight moves a mean P(TR) by at most 0.015" in e for e in level["data"]["evidence"])
    assert level["prior"]["level"] == 2 and any("1 of 1 scenario P(TR) prior-dominated" in e
                                                 for e in level["prior"]["evidence"])
    assert level["old"]["level"] == 2  # no absolute gradients recorded: flagged counts as prior-dominated


def test_degraded_crossval_lowers_the_level_in_the_real_report(run_copy):
    """On the real quick run: the computed validation level and the SBC record as the report shows them; the
    level follows crossval.json — a physics model that beats its baselines raises it, one that loses to them
    drops it to 1 — whatever the quick run's own scores."""
    run, study = run_copy
    art = load_artefacts(run)
    sbc = sbc_record(art)
    assert sbc is not None and sbc["applies"] and sbc["verdict"] == "pass"
    level = _factor(credibility.assess(art, study, sbc), "Validation")["level"]
    html = render_html(run, study, write_exports_too=False)
    assert f'Validation</td><td class="level level-{level}">{level} ·' in html
    cv = json.loads((run / "crossval.json").read_text())

    def with_physics_log_loss(value: float) -> int:
        for entry in cv.values():
            if isinstance(entry, dict) and "physics" in entry:
                entry["physics"]["log_loss"] = value
        (run / "crossval.json").write_text(json.dumps(cv))
        return _factor(credibility.assess(load_artefacts(run), study, sbc), "Validation")["level"]

    before = with_physics_log_loss(1e-3)  # beats every baseline (a quick run cannot reach level 4)
    assert before >= 2
    assert f'Validation</td><td class="level level-{before}">{before} ·' in render_html(run, study, write_exports_too=False)
    after = with_physics_log_loss(10.0)
    assert after == 1 < before
    assert 'Validation</td><td class="level level-1">1 ·' in render_html(run, study, write_exports_too=False)
