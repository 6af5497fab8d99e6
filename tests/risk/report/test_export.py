"""Insurer exports on a real quick run: schema, agreement with the predictions and the frequency model,
scenario rows that partition the fleet's events, exceedance Monte Carlo."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import xarray as xr

from risk.errors import StudyError
from risk.export import read_export, write_exports
from risk.export_schema import (EXCEEDANCE_TABLE, PORTFOLIO_EXCEEDANCE_TABLE, PORTFOLIO_TABLE, RISK_TABLE,
                                SCHEMA_VERSION, ExportSchemaError, schema_markdown, validate_frame)

Z95 = 1.6448536269514722   # standard-normal 95th percentile (lognormal error factor = q95/q50)

DOCS = Path(__file__).parents[3] / "docs" / "exports.md"


@pytest.fixture
def exported(run_copy):
    run, study = run_copy
    return run, study, write_exports(run, study)


def test_files_reload_and_validate(exported):
    run, study, paths = exported
    tables = ("risk", "exceedance", "portfolio", "portfolio_exceedance")
    assert set(paths) == {f"{t}.{x}" for t in tables for x in ("parquet", "csv")} | {"risk.json"}
    frames = {p: read_export(paths[p]) for p in ("risk.parquet", "risk.csv", "risk.json")}
    for df in frames.values():
        pd.testing.assert_frame_equal(df.reset_index(drop=True),
                                      frames["risk.parquet"].reset_index(drop=True),
                                      check_dtype=False)
    for t in tables[1:]:
        pd.testing.assert_frame_equal(read_export(paths[f"{t}.csv"]), read_export(paths[f"{t}.parquet"]),
                                      check_dtype=False)
        assert read_export(paths["risk.json"], table=t).shape[0] > 0
    md = pq.read_schema(paths["risk.parquet"]).metadata
    assert md[b"trisk.schema_version"].decode() == SCHEMA_VERSION
    doc = json.loads(paths["risk.json"].read_text())
    assert doc["schema_version"] == SCHEMA_VERSION
    # every rate in the file says where it comes from
    for ev in doc["frequency"]["events"]:
        assert ev["rate"]["source"] or ev["rate"]["assumption"]
        assert ev["severities"]["source"] or ev["severities"]["assumption"]


def _fleet_shares(study: dict, pred: xr.Dataset) -> np.ndarray:
    """π_s from the study's portfolio, computed here independently of risk.frequency."""
    out = []
    for fam, soc in zip(pred["cell_family"].values, pred["soc"].values):
        share = 0.0
        for e in study["export"]["portfolio"]["entries"]:
            dist = e["soc"] if isinstance(e["soc"], dict) else {str(e["soc"]): 1.0}
            if e["cell_family"] == str(fam):
                share += e["weight"] * sum(p for s, p in dist.items() if abs(float(s) - float(soc)) < 1e-9)
        out.append(share)
    return np.array(out)


def _mapped_rates(study: dict, pred: xr.Dataset) -> np.ndarray:
    """Σ_k E[λ_k] m_kσ per scenario, from the study's numbers (lognormal / Jeffreys gamma means)."""
    out = np.zeros(pred.sizes["scenario"])
    for ev in study["export"]["frequency"]["events"].values():
        r = ev["rate"]
        mean = (r["median"] * np.exp(0.5 * (np.log(r["error_factor"]) / Z95) ** 2)
                if r["distribution"] == "lognormal" else (r["events"] + 0.5) / r["cell_years"])
        out += mean * np.array([ev["severities"]["shares"].get(str(s), 0.0) for s in pred["severity"].values])
    return out


def test_exports_agree_with_predictions(exported):
    run, study, paths = exported
    df = read_export(paths["risk.parquet"])
    pred = xr.open_dataset(run / "predictions.nc")
    draws = pred["p_tr_draws"].values
    assert list(df["scenario"]) == [str(s) for s in pred["scenario"].values]
    np.testing.assert_allclose(df["p_tr_mean"], draws.mean(1), rtol=1e-12)
    for q, col in ((0.05, "p_tr_q05"), (0.5, "p_tr_q50"), (0.95, "p_tr_q95")):
        np.testing.assert_allclose(df[col], np.quantile(draws, q, axis=1), rtol=1e-12)
    np.testing.assert_allclose(df["p_tr_sd_epistemic"], draws.std(1), rtol=1e-9)
    exp = study["export"]["exposure"]
    share, rate = _fleet_shares(study, pred), _mapped_rates(study, pred)
    np.testing.assert_allclose(df["fleet_share"], share, rtol=1e-12)
    np.testing.assert_allclose(df["abuse_events_per_cell_year"], share * rate, rtol=1e-9)
    per_million = share * rate * 1e6 * draws.mean(1)
    np.testing.assert_allclose(df["events_per_million_cell_years"], per_million, rtol=1e-9)
    cost = np.array([exp["cost_per_event_by_severity"][str(s)] for s in pred["severity"].values])
    np.testing.assert_allclose(df["annual_expected_loss"], exp["fleet_size"] * per_million / 1e6 * cost, rtol=1e-9)
    # the bounds are quantiles over joint draws of P(TR) and the rates; they hold the expected rate wherever the mean
    # P(TR) lies within its own 90 % interval (a heavily skewed posterior, e.g. the never-shorted Soteria SCC cells at
    # P(TR) ~ 1e-6 with a tail above, puts its mean beyond the 95th percentile)
    live = share > 0
    lo, hi = df["events_per_million_cell_years_q05"], df["events_per_million_cell_years_q95"]
    assert (lo[live] <= hi[live]).all()
    q05, q95 = np.quantile(draws, [0.05, 0.95], axis=1)
    central = live & (q05 < draws.mean(1)) & (draws.mean(1) < q95)
    assert central.sum() >= 2
    assert (lo[central] < per_million[central]).all() and (per_million[central] < hi[central]).all()
    assert (df.loc[~live, "events_per_million_cell_years"] == 0).all()
    assert (df["n_draws"] == draws.shape[1]).all()


def test_scenario_rows_partition_the_portfolio(exported):
    """Summing the scenario rows gives the fleet's total: no event is counted twice."""
    run, study, paths = exported
    risk = read_export(paths["risk.parquet"])
    pf = read_export(paths["portfolio.parquet"]).set_index("entry")
    assert risk["fleet_share"].groupby([risk["severity"]]).sum().max() == pytest.approx(1.0)
    total = pf.loc["total"]
    assert risk["events_per_million_cell_years"].sum() == pytest.approx(total["tr_per_million_cell_years"], rel=1e-9)
    assert risk["annual_expected_loss"].sum() == pytest.approx(total["annual_loss_mean"], rel=1e-9)
    entries = pf.drop("total")
    assert entries["annual_events_mean"].sum() == pytest.approx(total["annual_events_mean"], rel=1e-9)
    assert entries["weight"].sum() == pytest.approx(1.0)


def test_exceedance_curve_is_seeded_monotone_and_consistent(exported):
    run, study, paths = exported
    curve = read_export(paths["exceedance.parquet"])
    again = write_exports(run, study)
    pd.testing.assert_frame_equal(read_export(again["exceedance.parquet"]), curve)
    pd.testing.assert_frame_equal(read_export(again["portfolio_exceedance.parquet"]),
                                  read_export(paths["portfolio_exceedance.parquet"]))
    names = {s["name"] for s in study["scenarios"]}
    assert set(curve["scenario"]) == names | {"all"}
    # the fleet's loss is the sum of the scenarios' in every simulated year: its curve lies above each of theirs
    wide = curve.pivot(index="exceedance_probability", columns="scenario", values="annual_loss")
    assert (wide["all"].to_numpy()[:, None] >= wide.drop(columns="all").to_numpy()).all()
    for _, part in curve.groupby("scenario"):
        part = part.sort_values("exceedance_probability", ascending=False)
        assert np.all(np.diff(part["annual_loss"].to_numpy()) >= 0)
    # P(fleet loss > 0) = E[1 - exp(-Λ)], Λ = fleet_size Σ_s π_s R_s P_s: compare with the median row
    pred = xr.open_dataset(run / "predictions.nc")
    lam = study["export"]["exposure"]["fleet_size"] * (_fleet_shares(study, pred) * _mapped_rates(study, pred)) @ \
        pred["p_tr_draws"].values
    p_any = np.mean(1 - np.exp(-lam))
    row = curve[(curve.scenario == "all") & (curve.exceedance_probability == 0.5)].iloc[0]
    if abs(p_any - 0.5) > 0.02:
        assert (row["annual_loss"] > 0) == (p_any > 0.5)


def test_schema_rejects_wrong_files(exported, tmp_path):
    run, study, paths = exported
    df = read_export(paths["risk.csv"])
    bad = df.copy()
    bad.loc[0, "p_tr_q95"] = 1.5
    with pytest.raises(ExportSchemaError, match="row 0 \\[p_tr_q95\\]"):
        validate_frame(bad, RISK_TABLE)
    with pytest.raises(ExportSchemaError, match="missing required"):
        validate_frame(df.drop(columns="p_tr_mean"), RISK_TABLE)
    old = df.assign(schema_version="0.9.0")
    with pytest.raises(ExportSchemaError, match="schema_version"):
        validate_frame(old, RISK_TABLE)
    doc = json.loads(paths["risk.json"].read_text())
    doc["schema_version"] = "3.0.0"
    (tmp_path / "risk.json").write_text(json.dumps(doc))
    with pytest.raises(ExportSchemaError, match="3.0.0"):
        read_export(tmp_path / "risk.json")


def test_without_exposure_only_probabilities(run_copy):
    run, study = run_copy
    study = {**study, "export": {}}
    paths = write_exports(run, study)
    assert set(paths) == {"risk.parquet", "risk.csv", "risk.json"}
    df = read_export(paths["risk.parquet"])
    assert "annual_expected_loss" not in df.columns
    doc = json.loads(paths["risk.json"].read_text())
    assert doc["exceedance"] is None and doc["portfolio"] is None and doc["frequency"] is None


def test_missing_cost_is_a_study_error(run_copy):
    run, study = run_copy
    exp = {**study["export"]["exposure"], "cost_per_event_by_severity": {"7": 1.0}}
    with pytest.raises(StudyError, match="cost_per_event_by_severity"):
        write_exports(run, {**study, "export": {**study["export"], "exposure": exp}})
    assert not (run / "exports").exists(), "nothing is written before the export section is valid"


def test_docs_match_schema():
    text = DOCS.read_text()
    assert schema_markdown() in text, "docs/exports.md is out of date: paste schema_markdown()"
    for table in (RISK_TABLE, EXCEEDANCE_TABLE, PORTFOLIO_TABLE, PORTFOLIO_EXCEEDANCE_TABLE):
        for col in table.columns:
            assert f"`{col.name}`" in text
