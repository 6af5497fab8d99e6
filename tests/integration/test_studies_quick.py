"""Every study in studies/ runs end to end in --quick mode through the real CLI (issue 8)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from risk.predict.realcv import QUICK_FAMILY_FOLDS
from risk.stages import STAGES
from risk.study import load_study
from tests.quick_runs import STUDIES as PREBUILT
from tests.quick_runs import quick_run

REPO = Path(__file__).resolve().parents[2]
# the studies `make test` builds in the background (tests/quick_runs.py) run last, in build order: the others'
# tests overlap the builds instead of waiting for them
STUDIES = sorted((REPO / "studies").glob("*.yaml"),
                 key=lambda p: (p.stem in PREBUILT, PREBUILT.index(p.stem) if p.stem in PREBUILT else 0, p.stem))


def test_every_study_validates():
    res = subprocess.run([sys.executable, "-m", "risk.cli", "validate", *map(str, STUDIES)], capture_output=True,
                         text=True, cwd=REPO)
    assert res.returncode == 0, res.stderr
    assert len(STUDIES) >= 4


def test_no_shipped_study_overrides_the_convergence_gate():
    """Full and --quick: a shipped study's numbers come from a posterior that passed its diagnostics."""
    import yaml

    for path in STUDIES:
        study = yaml.safe_load(path.read_text())
        for section in (study.get("inference", {}), study.get("quick", {}).get("inference", {})):
            assert not section.get("allow_bad_diagnostics", False), path.name


@pytest.mark.timeout(3600)  # the build's own hang guard (2700 s) + the cached rerun, not the 1800 s default
@pytest.mark.parametrize("study", STUDIES, ids=[p.stem for p in STUDIES])
def test_study_runs_end_to_end_in_quick_mode(study, tmp_path):
    # the real quick run of this source revision, shared with the report/export tests (tests/quick_runs.py)
    run = quick_run(study.stem)
    out, cmd = run.out, list(run.cmd)
    assert run.returncode == 0, run.stderr[-4000:]
    stages = json.loads((out / "stages.json").read_text())
    assert set(stages) == {st.name for st in STAGES} == {"simulate", "fidelity", "convergence", "ingest", "train",
                                                         "calibrate", "crossvalidate", "predict", "report", "export"}
    html = (out / "report.html").read_text()
    reference = load_study(study, quick=True).reference
    if reference is not None:  # the reduced simulator against the model it reduces, on fresh draws, in the report
        fid = json.loads((out / "fidelity.json").read_text())
        assert fid["reference"] == reference.simulator and fid["n_draws"] == reference.runs and not fid["failures"]
        assert fid["arms"][0] == "as_study" and set(fid[fid["arms"][0]]["observable_mae"]) == set(
            load_study(study, quick=True).sim2real.observables)
        for arm in fid["arms"]:
            rows = [r for r in fid["rows"] if r["reference"]["ok"] and r[arm]["ok"]]
            agree = np.mean([r[arm]["thermal_runaway"] == r["reference"]["thermal_runaway"] for r in rows])
            assert fid[arm]["n"] == len(rows) and fid[arm]["runaway_agreement"] == pytest.approx(agree)
        assert 'id="fidelity"' in html and f"<code>{reference.simulator}</code>" in html
    else:
        assert not (out / "fidelity.json").exists() and stages["fidelity"]["summary"]["note"]
    convergence = load_study(study, quick=True).convergence
    if convergence is not None:  # the simulator's own discretisation error, in the report's Verification evidence
        mc = json.loads((out / "mesh_convergence.json").read_text())
        assert mc["n_draws"] == convergence.runs and mc["levels"] == 3 and not mc["failures"]
        assert set(load_study(study, quick=True).sim2real.observables) <= set(mc["outputs"])
        for row in mc["rows"]:  # the study's level first, every level of a draw at the same inputs
            assert len(row["levels"]) == 3
        assert 'id="mesh-convergence"' in html and "grid convergence index" in html
    else:
        assert not (out / "mesh_convergence.json").exists() and stages["convergence"]["summary"]["note"]
    if (out / "diagnostics.json").exists():  # the gate holds in --quick mode too, and the report says valid
        diag = json.loads((out / "diagnostics.json").read_text())
        assert "scenario_p_tr" in diag  # the scenarios' P(TR) is diagnosed with the free variables
        assert diag["ok"], diag["messages"]
        assert diag["rhat_max"] <= 1.01 and min(diag["ess_bulk_min"], diag["ess_tail_min"]) >= 400
        assert "INVALID" not in html
        # the prior sensitivity of the reported numbers: every scenario's P(TR), in the report too
        sens = json.loads((out / "prior_sensitivity.json").read_text())
        quantities = {r["quantity"] for r in sens["rows"]}
        assert {f"p_tr[{sc['name']}]" for sc in _study_scenarios(study)} <= quantities
        assert "<h3>Prior sensitivity</h3>" in html and "prior_sensitivity.json" not in html
        # misspecification checks of the calibrated model, every observable and condition, shown with its verdict
        mis = json.loads((out / "misspecification.json").read_text())
        real = xr.open_dataset(out / "real.nc")
        observed = [n for n in mis["simulated_range"] if n in real and np.isfinite(real[n].values).sum() >= 2]
        assert observed and set(observed) <= set(mis["observables"]) and mis["design"]
        for r in mis["observables"].values():
            assert set(r["p_values"]) == {"mean", "sd", "min", "max"} and all(0 <= v <= 1 for v in r["p_values"].values())
        assert mis["flag"] == bool(mis["reasons"])
        assert ("<strong>Misspecification flagged</strong>" in html) == mis["flag"]
        assert all(f"<td>{name}</td>" in html for name in mis["observables"])
    if (out / "crossval.json").exists():  # the reported physics model is validated against its baselines
        cv = json.loads((out / "crossval.json").read_text())
        if "leave_family_out" in cv:
            entry = cv["leave_family_out"]
            assert {"physics", "metadata", "family_frequency"} <= set(entry) and entry["n_folds"] >= QUICK_FAMILY_FOLDS
            for model in ("physics", "metadata", "family_frequency"):
                assert 0 <= entry[model]["brier"] <= 1 and sum(b["n"] for b in entry[model]["reliability"]) == entry["n_tests"]
            # every calibrated observable of the held-out tests against the physics folds' predictive intervals
            # (a family the fold never saw) and the family × SOC normal baseline; bounds counted, not scored
            for name in load_study(study, quick=True).sim2real.observables:
                obs = cv["observables"][name]["leave_family_out"]
                n_bounds = (obs.get("bounds") or {}).get("n", 0)
                assert 0 < obs["n_tests"] + n_bounds <= entry["n_tests"]
                assert sum(r["n"] for r in obs["by_family"].values()) == obs["n_tests"]
                assert 0 <= obs["physics"]["coverage_90"] <= 1 and obs["physics"]["interval_score_90"] > 0
                assert "group_normal" in obs
            assert "Every calibrated observable out of sample, against a per-group normal interval" in html
        if "heat" in cv:  # calorimetry: the physics heat intervals on cell types the fold never saw
            entry = cv["heat"]["leave_family_out"]
            real = xr.open_dataset(out / "real.nc")
            # --quick deals the cell types into QUICK_FAMILY_FOLDS grouped folds (whole types left out)
            assert entry["n_folds"] == min(QUICK_FAMILY_FOLDS, len(set(real["cell_family"].values)))
            assert entry["n_tests"] == real.sizes["test"]
            assert entry["physics"]["interval_score_90"] < entry["group_normal"]["interval_score_90"]
            assert "Cross-validation of the heat predictive intervals" in html
            # the same folds' runaway probability for cell types the fold never saw (the nail tests' outcomes vary
            # with SOC): physics against the cell-type and SOC × trigger frequencies
            tr = cv["heat"]["runaway"]["leave_family_out"]
            assert tr["n_tests"] == real.sizes["test"] and tr["n_folds"] == entry["n_folds"]
            assert tr["physics"]["log_loss"] < tr["family_frequency"]["log_loss"]
            assert "Cross-validation of the runaway probability" in html
            # every calibrated observable (total heat and the ejecta's share of it), per cell type out of sample
            observables = load_study(study, quick=True).sim2real.observables
            if "breach_margin_log" in observables:  # observed by its sign: scored as the bottom-rupture probability
                br = cv["heat"]["bottom_rupture"]["leave_family_out"]
                assert br["n_tests"] == real.sizes["test"] and br["n_ruptures"] == int(real["bottom_rupture"].sum())
                assert {"physics", "family_frequency", "soc_trigger_frequency"} <= set(br)
                assert "Cross-validation of the bottom-rupture probability" in html
            for name in (n for n in observables if n != "breach_margin_log"):
                by = cv["heat"]["observables"][name]["leave_family_out"]["by_family"]
                observed = real[name].to_series().groupby(real["cell_family"].to_series()).count()
                assert {f: r["n"] for f, r in by.items()} == {f: int(n) for f, n in observed.items() if n}
                assert all(0 <= r["coverage_90"] <= 1 and r["median_abs_error"] >= 0 for r in by.values())
            assert "Every calibrated observable out of sample, per cell type" in html
    pred = xr.open_dataset(out / "predictions.nc")
    p = pred["p_tr_mean"].values
    assert ((0 <= p) & (p <= 1)).all() and (pred["p_tr_q05"].values <= pred["p_tr_q95"].values).all()
    # the report shows this run's numbers: every scenario's row carries its predictions.nc values
    from risk.report.numbers import number

    for k, name in enumerate(pred["scenario"].values):
        vals = [number(float(pred[v].values[k])) for v in ("p_tr_mean", "p_tr_q05", "p_tr_q50", "p_tr_q95")]
        row = (f'<td class="num">{vals[0]}</td><td class="num">{vals[1]}</td>\n'
               f'<td class="num">{vals[2]}</td><td class="num">{vals[3]}</td></tr>')
        assert f"<tr><td>{name}</td>" in html and row in html, (name, vals)
    if study.stem == "indentation_pouch":  # what the real tests say, through the calibrated physics
        by = dict(zip(map(str, pred["scenario"].values), p))
        assert by["LCO-2Ah-SOC20"] < by["LCO-2Ah-SOC100"]  # stored energy drives runaway
        assert by["LCO-2Ah-SOC100"] < by["LCO-6.4Ah-SOC100"]  # 2 A h pouches never ran away, 6.4 A h ones did
        _check_predict_new_tests(out, tmp_path)
        _check_predict_from_curves(out, tmp_path)
    if study.stem == "calorimetry_18650":
        # every one of the 44 heater-triggered tests of these families ran away (the databank's runaway outcome
        # in the likelihood): a heater scenario's P(TR) follows them; the nail tests ran away above ~40 % SOC only
        by = dict(zip(map(str, pred["scenario"].values), p))
        assert min(v for k, v in by.items() if "nail" not in k) > 0.9, by
        assert by["MJ1-nail-SOC30"] < by["MJ1-SOC100"], by
        _check_predict_new_calorimetry(out, tmp_path)
        _check_sample_synthetic_tests(out, tmp_path)
        # what a new test would measure, through the physics posterior: heat quantiles per scenario, in the report
        heat = {q: dict(zip(map(str, pred["scenario"].values), pred[f"heat_released_total_{q}"].values))
                for q in ("q05", "q50", "q95")}
        assert pred["heat_released_total_q50"].attrs["units"] == "J"
        assert all(heat["q05"][k] < heat["q50"][k] < heat["q95"][k] for k in heat["q50"])
        assert heat["q50"]["MJ1-SOC50"] < heat["q50"]["MJ1-SOC100"]  # less stored energy, less heat
        assert "heat_released_total 5 % [J]" in html
    # the rare-event estimate is for a new cell of the least likely scenario's own family when calibrated
    rare = json.loads((out / "rare_events.json").read_text())
    k = int(p.argmin())
    assert rare["scenario"] == str(pred["scenario"].values[k]) and 0 <= rare["subset_simulation"]["p"] <= 1
    if (out / "posterior.nc").exists():  # epistemic uncertainty of the rare-event probability: one subset
        post_p = rare["posterior"]       # simulation per posterior draw
        assert post_p["n_draws"] == len(post_p["per_draw"]["p"]) >= 20
        assert 0 <= post_p["p_q05"] <= post_p["p_median"] <= post_p["p_q95"] <= 1
    check = rare.get("full_simulator_check")
    if check is not None:  # failure-region samples re-run with the full simulator: 8 in --quick, labelled
        assert check["quick"] and check["n"] == 8 and check["n_completed"] + check["n_failed_runs"] == check["n"]
        lo, hi = check["wilson95"]
        assert 0 <= lo <= check["fraction"] <= hi <= 1 and check["fraction"] == check["confirmed"] / max(check["n_completed"], 1)
    if (out / "posterior.nc").exists():  # the full simulator at every scenario's calibrated cells vs its decoder
        runs = pred["simulator_runs"].values + pred["simulator_runs_failed"].values
        assert np.all(runs == 2) and "(quick)" in pred.attrs["simulator_check"]
        frac, lo, hi = (pred[f"simulator_runaway_{v}"].values for v in ("fraction", "wilson_lo", "wilson_hi"))
        done = pred["simulator_runs"].values > 0
        assert np.all((lo <= frac)[done] & (frac <= hi)[done]) and np.all((0 <= pred["decoder_runaway_p"].values[done])
                                                                         & (pred["decoder_runaway_p"].values[done] <= 1))
        assert "Does the simulator agree with its decoder" in html
    if (out / "posterior.nc").exists():
        from risk.bayes.physics import PhysicsSetup
        from risk.bayes.sampling import load_posterior

        post = load_posterior(out / "posterior.nc")
        # the study's prior scale of the family spread is the one sampled and the one prediction reads back
        assert PhysicsSetup.from_attrs(post.attrs).family_scale == load_study(study).inference.family_scale
        calibrated = str(pred["cell_family"].values[k]) in set(map(str, post["posterior"]["family"].values))
        assert rare["location"] == ("family" if calibrated else "population")
    for name in ("report.html", "report.pdf", "exports/risk.parquet", "exports/risk.csv", "exports/risk.json"):
        assert (out / name).stat().st_size > 0, name
    # a rerun is fully cached
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert again.returncode == 0 and again.stderr.count("unchanged, skipped") == len(STAGES), again.stderr[-2000:]


def _check_predict_new_tests(run: Path, tmp_path: Path) -> None:
    """``risk predict RUN --tests`` on the run's own artefacts: the physics posterior answers the calibrated rows
    and the pouch cells of a chemistry the design simulated (an unseen LCO family included), the metadata baseline
    the cells whose chemistry the simulator does not cover (NMC-LMO, LMO-LNO); outcome columns are ignored."""
    import pandas as pd

    tests = pd.read_csv(REPO.parent / "shared" / "data" / "indentation" / "tests.csv")
    new = pd.concat([tests, pd.DataFrame({"FileName": ["LCO-Pouch-3000mAh-100SOC-cell1", "LCO-Pouch-3000mAh-0SOC-cell1"],
                                          "Capacity_mAh": [3000, 3000], "SOC_pct": [100, 0]})], ignore_index=True)
    new.to_csv(tmp_path / "new.csv", index=False)
    res = subprocess.run([sys.executable, "-m", "risk.cli", "predict", str(run), "--tests", str(tmp_path / "new.csv"),
                          "--output", str(tmp_path / "pred.csv")], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    out = pd.read_csv(tmp_path / "pred.csv")
    assert len(out) == len(new) and set(out["model"]) == {"physics", "metadata"}
    model = dict(zip(out["FileName"], out["model"]))
    from risk.predict.newtests import family_from_filename

    fam = out["FileName"].map(family_from_filename)
    assert (out.loc[fam.isin(["Chevy Volt", "Nissan Leaf"]), "model"] == "metadata").all()
    assert (out.loc[fam.str.startswith("LCO") | fam.str.startswith("Soteria S") | (fam == "Soteria control")
                    | fam.isin(["LFP 10 Ah", "NMC 10 Ah"]), "model"] == "physics").all()
    p = dict(zip(out["FileName"], out["p_tr"]))
    assert model["LCO-Pouch-3000mAh-100SOC-cell1"] == "physics"
    assert p["LCO-Pouch-3000mAh-0SOC-cell1"] < p["LCO-Pouch-3000mAh-100SOC-cell1"]
    # p_tr is the posterior mean, which a heavily skewed posterior puts outside its own 90 % interval (the never-shorted
    # Soteria SCC cells: mean 3e-5 over draws of 3e-10 ... 3e-6 and a tail above), so the checks are the interval's
    # order and range and the mean's consistency with the level probabilities
    assert ((0 <= out["p_tr_q05"]) & (out["p_tr_q05"] <= out["p_tr_q95"]) & (out["p_tr_q95"] <= 1)).all()
    levels = out[[f"p_level_{k}" for k in range(1, 8)]]
    np.testing.assert_allclose(levels.sum(axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(out["p_tr"], out["p_level_6"] + out["p_level_7"], atol=1e-9)


def _check_predict_from_curves(run: Path, tmp_path: Path) -> None:
    """``risk predict RUN --tests F --raw DIR``: newly measured tests inferred from their workbooks — hazard level
    through the calibrated model updated by the curves, each cell's parameters by the run's encoder; the
    tests' own hazard levels never read; a test without a workbook names the file and line."""
    import pandas as pd

    data = REPO.parent / "shared" / "data" / "indentation"
    tests = pd.read_csv(data / "tests.csv")
    names = ["Sorteria-Control-100SOC-cell2", "Sorteria-control-20SOC-cell1", "OE-LCO-6470mAh-60SOC",
             "OE-LFP10Ah-100SOC-cell2", "ChevyVolt-20SOC-6mm-cell1"]
    new = tests.set_index("FileName").loc[names].reset_index()
    new.to_csv(tmp_path / "measured.csv", index=False)

    def predict(tests_csv: str, output: str):
        return subprocess.run([sys.executable, "-m", "risk.cli", "predict", str(run), "--tests", str(tmp_path / tests_csv),
                               "--raw", str(data), "--output", str(tmp_path / output)],
                              capture_output=True, text=True, cwd=REPO, timeout=600)

    res = predict("measured.csv", "curves.csv")
    assert res.returncode == 0, res.stderr[-3000:]
    out = pd.read_csv(tmp_path / "curves.csv").set_index("FileName").loc[names]
    physics = out["model"] == "physics"
    assert list(physics) == [True] * 4 + [False] and list(out["evidence"]) == ["curves"] * 4 + ["conditions"]
    levels = out[[f"p_level_{j}" for j in range(1, 8)]]
    np.testing.assert_allclose(levels.sum(axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(out["p_tr"], levels[["p_level_6", "p_level_7"]].sum(axis=1), atol=1e-9)
    assert ((0 <= out["p_tr_q05"]) & (out["p_tr_q05"] <= out["p_tr_q95"]) & (out["p_tr_q95"] <= 1)).all()
    post = out[physics]
    assert (post["likelihood_ess"] > 100).all() and (post["encoder_ess"] > 30).all()
    for name, lo, hi in (("short_resistance", 1e-3, 3.0), ("strain_critical", 0.1, 0.9)):  # the study's priors
        q = post[[f"{name}_q05", f"{name}_q50", f"{name}_q95"]].to_numpy()
        assert (lo <= q[:, 0]).all() and (q[:, 0] <= q[:, 1]).all() and (q[:, 1] <= q[:, 2]).all() and (q[:, 2] <= hi).all()
    assert out.loc[names[:4], "short_resistance_q50"].notna().all() and np.isnan(out.loc[names[4], "short_resistance_q50"])
    # outcomes in the tests file are not read: changing them changes nothing (in process: the CLI path ran above)
    from risk.errors import DataError
    from risk.predict.newtests import predict_tests

    new.assign(ObservedScore=1.0).to_csv(tmp_path / "relabelled.csv", index=False)
    again = predict_tests(run, tmp_path / "relabelled.csv", data).set_index("FileName").loc[names]
    pd.testing.assert_frame_equal(again, out, check_dtype=False)
    # a test without a workbook: an error naming the tests file, its line and the field (exit 2 in the CLI)
    pd.concat([new, pd.DataFrame({"FileName": ["LCO-Pouch-3000mAh-100SOC-cell9"], "Capacity_mAh": [3000],
                                  "SOC_pct": [100]})]).to_csv(tmp_path / "missing.csv", index=False)
    with pytest.raises(DataError) as err:
        predict_tests(run, tmp_path / "missing.csv", data)
    assert err.value.line == 7 and err.value.field == "FileName" and "LCO-Pouch-3000mAh-100SOC-cell9" in str(err.value)


def _check_predict_new_calorimetry(run: Path, tmp_path: Path) -> None:
    """``risk predict RUN --tests workbook`` on a calorimetry run: heat quantiles of heater-triggered 18650
    tests through the physics posterior (decoder + discrepancy), other formats and triggers by the metadata
    model, bottom rupture by the metadata model; the physics intervals are calibrated and sharper."""
    import numpy as np
    import pandas as pd

    from risk.predict.newtests import read_calorimetry_tests

    book = REPO.parent / "shared" / "data" / "bfd" / "BatteryFailureDatabankV2_train.xlsx"
    out = {}
    for model in ("physics", "metadata"):
        res = subprocess.run([sys.executable, "-m", "risk.cli", "predict", str(run), "--tests", str(book), "--model",
                              model, "--output", str(tmp_path / f"{model}.csv")], capture_output=True, text=True,
                             cwd=REPO, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        out[model] = pd.read_csv(tmp_path / f"{model}.csv")
    tests = read_calorimetry_tests(book)
    phys = out["physics"]
    assert len(phys) == len(tests) and set(phys["model"]) == {"physics", "metadata"}
    # bottom rupture through the physics (the sign of the simulated breach margin, calibrated on the ruptures)
    assert (phys["bottom_rupture_model"] == phys["model"]).all()
    p_rupture = phys.loc[phys["model"] == "physics", "p_bottom_rupture"]
    assert p_rupture.between(0, 1).all() and p_rupture.mean() < 0.5  # the databank's 18650 types: 7 % ruptured
    # the simulator represents the heater and, as an internal short, the nail (data.trigger_conditions)
    modelled = tests["trigger"].str.contains("heater", case=False) | (tests["trigger"] == "Nail")
    calibrated = tests["cell_type"].isin(_study_scenario_families(run)) & modelled
    # a test whose conditions lie outside the simulated design is answered by the metadata model (no extrapolation)
    design = json.loads((run / "misspecification.json").read_text())["design"]
    outside = tests["Test-ID"].isin({t for d in design.values() for t in d["tests"]})
    assert (phys.loc[calibrated & ~outside, "model"] == "physics").all()
    assert (phys.loc[outside, "model"] == "metadata").all()
    assert (phys.loc[~modelled | tests["cell_type"].str.contains("21700|D-Cell"), "model"] == "metadata").all()
    assert ((phys["heat_q05"] <= phys["heat_q50"]) & (phys["heat_q50"] <= phys["heat_q95"])).all()
    share = phys.loc[phys["model"] == "physics", ["ejecta_share_q05", "ejecta_share_q50", "ejecta_share_q95"]].to_numpy()
    assert (share > 0).all() and (share < 1).all() and (np.diff(share, axis=1) >= 0).all()  # a share, on the logit scale
    assert phys.loc[phys["model"] == "metadata", "ejecta_share_q50"].isna().all()
    rows = (phys["model"] == "physics") & tests["heat_kj"].notna()
    y = tests.loc[rows, "heat_kj"].to_numpy()

    def interval_score(df):  # Gneiting & Raftery (2007), 90 % central interval [kJ]
        lo, hi = df.loc[rows, "heat_q05"].to_numpy(), df.loc[rows, "heat_q95"].to_numpy()
        return np.mean(hi - lo + 20 * (lo - y) * (y < lo) + 20 * (y - hi) * (y > hi)), np.mean((lo <= y) & (y <= hi))

    score_phys, cover = interval_score(phys)
    assert 0.8 <= cover <= 1.0, cover
    assert score_phys < interval_score(out["metadata"])[0]


def _check_sample_synthetic_tests(run: Path, tmp_path: Path) -> None:
    """``risk sample``: the calibrated model as a stochastic simulator — nail tests of a known cell type at low
    and full charge; one posterior draw and one new cell per row, the outcome drawn with the observables."""
    import pandas as pd

    rows = {}
    for soc in (0.2, 1.0):
        csv = tmp_path / f"synthetic_{soc}.csv"
        res = subprocess.run([sys.executable, "-m", "risk.cli", "sample", str(run), "--family", "MOLiCEL 18650-P28A",
                              "--soc", str(soc), "-n", "300", "--condition", "heater_power=0 W", "--condition",
                              "heater_duration=0 s", "--condition", "short_resistance=20 mOhm", "--output", str(csv)],
                             capture_output=True, text=True, cwd=REPO, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        rows[soc] = pd.read_csv(csv)
    for soc, df in rows.items():
        assert len(df) == 300 and df["family_known"].all() and (df["soc [1]"] == soc).all()
        assert (df["heater_power [W]"] == 0).all() and set(df["thermal_runaway"]) <= {0, 1}
        assert df["posterior_draw"].nunique() > 250  # epistemic: (almost) every row its own posterior draw
    # the real nail tests: no runaway at 20 % SOC, all ran away at 100 %; so does the calibrated model, and a
    # fully charged cell releases more heat
    assert rows[0.2]["thermal_runaway"].mean() < 0.5 < rows[1.0]["thermal_runaway"].mean()
    assert rows[0.2]["heat_released_total [J]"].median() < rows[1.0]["heat_released_total [J]"].median()
    bad = subprocess.run([sys.executable, "-m", "risk.cli", "sample", str(run), "--family", "x", "--soc", "0.5",
                          "--condition", "oven=3"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert bad.returncode == 2 and "unknown condition" in bad.stdout + bad.stderr


def _study_scenario_families(run: Path) -> set[str]:
    import yaml

    return set(yaml.safe_load((run / "study.yaml").read_text())["data"]["families"])


def _study_scenarios(study: Path) -> list[dict]:
    import yaml

    return yaml.safe_load(study.read_text()).get("scenarios", [])
