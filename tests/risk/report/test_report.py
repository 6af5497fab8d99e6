"""The HTML report: built from artefacts only, self-contained, honest about what is missing."""
import json
import re
import shutil

import numpy as np
import xarray as xr

from risk.report.build import NOT_COMPUTED, render_html
from risk.report.numbers import number, probability_words


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_full_report_is_self_contained_and_complete(run_copy):
    """The report of the real default quick run: self-contained, every section, and the numbers of this
    run's artefacts (predictions.nc, crossval.json, provenance.json, the study's priors and limitations)."""
    run, study = run_copy
    (run / "model" / "metrics.json").unlink()  # an absent artefact is named, not hidden
    html = render_html(run, study)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html)
    assert "http://" not in html and "https://" not in html
    imgs = re.findall(r'<img src="([^"]+)"', html)
    assert len(imgs) >= 6 and all(s.startswith("data:image/png;base64,") for s in imgs)
    text = _text(html)
    headings = ["Executive summary", "1. Credibility assessment", "2. Validation",
                "Simulation-based calibration of the inference", "3. Probabilities by scenario",
                "Aleatory vs epistemic", "Sensitivity ranking", "4. Prior sensitivity and what would change the conclusion",
                "Which test to run next", "5. Assumptions and priors", "6. Insurer view", "7. Inference diagnostics",
                "8. Limitations", "Appendix A. Data provenance and hashes"]
    positions = [text.find(h) for h in headings]
    assert -1 not in positions and positions == sorted(positions), dict(zip(headings, positions))
    pred = xr.open_dataset(run / "predictions.nc")
    for i in range(pred.sizes["scenario"]):
        words = probability_words(*(float(pred[v].values[i])
                                    for v in ("p_tr_mean", "p_tr_q05", "p_tr_q95")))
        assert words in text
    assert 'class="banner ok"' in html and "INVALID" not in html  # the quick run passed its gate
    prov = json.loads((run / "provenance.json").read_text())
    for digest in prov["data_hashes"].values():
        assert digest in html
    for name, spec in study["parameters"].items():  # every prior with its unit and source
        assert name in text and spec["reference"] in text
    for line in study["report"]["limitations"]:
        assert line.split(";")[0] in text
    # the hierarchy's priors at the scales the posterior was sampled with (the study's inference.family_scale)
    from risk.bayes.model import hyperpriors

    rows = hyperpriors(family_scale=study["inference"]["family_scale"])
    assert f"Gamma(2, 2 / {study['inference']['family_scale']:g}) [prior sd of u]" in text
    for row in rows:
        assert row["variable"] in text and row["prior"] in text, row
    assert "USD" in text
    # the cross-validation table is this run's crossval.json (the physics model's, beside its baselines)
    cv = json.loads((run / "crossval.json").read_text())["leave_family_out"]
    assert "Quick run: leave-family-out only" in text
    for metric in ("log_loss", "brier"):
        assert f"<td>leave_family_out</td><td>{metric}</td>\n<td class=\"num\">{number(cv['physics'][metric])}</td>" \
            f"<td class=\"num\">{number(cv['metadata'][metric])}</td>" in html
    for fam, rec in cv["physics"]["by_family"].items():  # every left-out family with its own scores
        assert f"<tr><td>{fam}</td><td class=\"num\">{rec['n']}</td><td class=\"num\">{number(rec['log_loss'])}</td>" in html
    assert text.count(NOT_COMPUTED) >= 1 and "model/metrics.json: " + NOT_COMPUTED in text
    assert (run / "exports" / "risk.parquet").exists()


def test_failed_diagnostics_show_a_red_banner(run_copy):
    run, study = run_copy
    diag = json.loads((run / "diagnostics.json").read_text())
    diag.update(ok=False, messages=["r_hat max 1.31 > 1.01"])
    (run / "diagnostics.json").write_text(json.dumps(diag))
    html = render_html(run, study)
    assert 'class="banner failed"' in html
    assert "INVALID" in html and "r_hat max 1.31" in html
    assert "MCMC diagnostics failed" in _text(html)


def test_absent_artefacts_are_visible(run_copy):
    run, study = run_copy
    for name in ("posterior.nc", "diagnostics.json", "sensitivity.nc", "crossval.json",
                 "mesh_convergence.json", "rare_events.json", "stages.json", "real.nc"):
        (run / name).unlink(missing_ok=True)  # the quick indentation run writes no mesh_convergence.json
    shutil.rmtree(run / "ensemble.zarr")
    (run / "predictions.nc").unlink()
    html = render_html(run, study)
    text = _text(html)
    assert 'class="banner unknown"' in html
    for name in ("posterior.nc", "sensitivity.nc", "crossval.json", "mesh_convergence.json",
                 "rare_events.json", "stages.json", "real.nc", "ensemble.zarr",
                 "predictions.nc"):
        assert f"{name}: {NOT_COMPUTED}" in text, name
    assert "<img" not in html


def test_corrupt_artefact_is_reported_not_hidden(run_copy):
    run, study = run_copy
    (run / "crossval.json").write_text("{not json")
    text = _text(render_html(run, study))
    assert "crossval.json could not be read: JSONDecodeError" in text


def test_report_rebuild_does_not_touch_inputs(run_copy):
    run, study = run_copy
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    render_html(run, study)
    after = {p: p.stat().st_mtime_ns for p in before}
    assert before == after
    # variance decomposition shown is the saved one
    pred = xr.open_dataset(run / "predictions.nc")
    assert np.all(pred["p_tr_var_epistemic"].values >= 0)


def test_posterior_table_lists_hierarchical_hyperparameters(tmp_path):
    """μ_pop, τ_family, cell sd (per physical parameter) and the discrepancy (per observable) get one
    row per entry; per-test, per-family and matrix-valued latents do not."""
    from risk.report.artefacts import Artefacts
    from risk.report.build import _posterior

    rng = np.random.default_rng(0)
    par, obs, tests = ["k_short", "r_short"], ["force_peak"], ["t1", "t2", "t3"]
    post = xr.Dataset({
        "link_scale": (("chain", "draw"), rng.lognormal(size=(4, 50))),
        "mu_pop": (("chain", "draw", "parameter"), rng.normal(size=(4, 50, 2))),
        "tau_family": (("chain", "draw", "parameter"), np.abs(rng.normal(size=(4, 50, 2)))),
        "discrepancy": (("chain", "draw", "observable"), rng.gamma(4.0, 0.05, size=(4, 50, 1))),
        "u_test": (("chain", "draw", "test", "parameter"), rng.normal(size=(4, 50, 3, 2))),
        "logit_runaway": (("chain", "draw", "test"), rng.normal(size=(4, 50, 3))),
        "cell_corr": (("chain", "draw", "parameter", "parameter_"), np.broadcast_to(np.eye(2), (4, 50, 2, 2))),
    }, coords={"parameter": par, "parameter_": par, "observable": obs, "test": tests})
    art = Artefacts(run_dir=tmp_path, posterior=xr.DataTree.from_dict({"posterior": post}))
    rows = {r["name"]: r for r in _posterior(art, {})["rows"]}
    assert set(rows) == {"link_scale", "mu_pop[k_short]", "mu_pop[r_short]", "tau_family[k_short]",
                         "tau_family[r_short]", "discrepancy[force_peak]"}
    assert rows["mu_pop[r_short]"]["unit"] == "1 (u space)"
    np.testing.assert_allclose(rows["tau_family[k_short]"]["mean"], post["tau_family"][..., 0].mean())


def test_insurer_section_shows_every_rate_source_and_the_portfolio_export(run_copy):
    """Every abuse-event rate and severity mapping is shown with its source or as a user assumption, and the
    portfolio table is exports/portfolio.parquet of this run (its total row included)."""
    from risk.export import read_export

    run, study = run_copy
    html = render_html(run, study)
    text = _text(html)
    section = text[text.find("6. Insurer view"):text.find("7. Inference diagnostics")]
    events = study["export"]["frequency"]["events"]
    assert events and "Abuse-event frequencies and their sources" in section
    for name, ev in events.items():
        assert name in section
        rate, sev = ev["rate"], ev["severities"]
        assert (_text(rate["source"]).strip() in section) if rate.get("source") else "user assumption" in section
        assert (_text(sev["source"]).strip() in section) if sev.get("source") else "user assumption" in section
    portfolio = read_export(run / "exports" / "portfolio.parquet")
    assert "Portfolio: annual runaway events and losses" in section
    for row in portfolio.to_dict(orient="records"):
        assert f"{row['entry']} {row['cell_family']} {number(row['cells'])} {number(row['soc_mean'])} " \
               f"{number(row['tr_per_million_cell_years'])} (" in section, row["entry"]
    assert "total" in set(portfolio["entry"])
