"""Insurer exports: schema, agreement with the predictions, exceedance Monte Carlo."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import xarray as xr

from risk.errors import StudyError
from risk.export import read_export, write_exports
from risk.export_schema import (EXCEEDANCE_TABLE, RISK_TABLE, SCHEMA_VERSION, ExportSchemaError,
                                schema_markdown, validate_frame)

DOCS = Path(__file__).parents[3] / "docs" / "exports.md"


@pytest.fixture
def exported(run_copy):
    run, study = run_copy
    return run, study, write_exports(run, study)


def test_files_reload_and_validate(exported):
    run, study, paths = exported
    assert set(paths) == {"risk.parquet", "risk.csv", "risk.json", "exceedance.parquet",
                          "exceedance.csv"}
    frames = {p: read_export(paths[p]) for p in ("risk.parquet", "risk.csv", "risk.json")}
    for df in frames.values():
        pd.testing.assert_frame_equal(df.reset_index(drop=True),
                                      frames["risk.parquet"].reset_index(drop=True),
                                      check_dtype=False)
    pd.testing.assert_frame_equal(read_export(paths["exceedance.csv"]),
                                  read_export(paths["exceedance.parquet"]), check_dtype=False)
    assert read_export(paths["risk.json"], table="exceedance").shape[0] > 0
    md = pq.read_schema(paths["risk.parquet"]).metadata
    assert md[b"trisk.schema_version"].decode() == SCHEMA_VERSION
    assert json.loads(paths["risk.json"].read_text())["schema_version"] == SCHEMA_VERSION


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
    rate = exp["abuse_events_per_cell_year"]
    np.testing.assert_allclose(df["events_per_million_cell_years"], rate * 1e6 * draws.mean(1))
    cost = np.array([exp["cost_per_event_by_severity"][str(s)] for s in pred["severity"].values])
    loss = exp["fleet_size"] * rate * cost[:, None] * draws
    np.testing.assert_allclose(df["annual_expected_loss"], loss.mean(1))
    np.testing.assert_allclose(df["annual_expected_loss_q05"], np.quantile(loss, 0.05, axis=1))
    np.testing.assert_allclose(df["annual_expected_loss_q95"], np.quantile(loss, 0.95, axis=1))
    assert (df["n_draws"] == draws.shape[1]).all()


def test_exceedance_curve_is_seeded_monotone_and_consistent(exported):
    run, study, paths = exported
    curve = read_export(paths["exceedance.parquet"])
    again = write_exports(run, study)
    pd.testing.assert_frame_equal(read_export(again["exceedance.parquet"]), curve)
    names = {s["name"] for s in study["scenarios"]}
    assert set(curve["scenario"]) == names | ({"all"} if study["export"]["exposure"].get("scenario_weights") else set())
    # a fleet mix over the scenarios adds the portfolio curve "all", which lies between its scenarios' curves
    mix = {**study["export"]["exposure"], "scenario_weights": {n: 1 / len(names) for n in names}}
    weighted = read_export(write_exports(run, {**study, "export": {"exposure": mix}})["exceedance.parquet"])
    assert set(weighted["scenario"]) == names | {"all"}
    at = weighted[weighted.exceedance_probability == 0.5].set_index("scenario")["annual_loss"]
    assert at.drop("all").min() <= at["all"] <= at.drop("all").max()
    for _, part in curve.groupby("scenario"):
        part = part.sort_values("exceedance_probability", ascending=False)
        assert np.all(np.diff(part["annual_loss"].to_numpy()) >= 0)
    # Mean of a Poisson-mixture loss = expected loss: check the curve against it. For the riskiest
    # scenario, P(loss > 0) = E[1 - exp(-λ p)] — compare the median with that analytic value.
    risk = read_export(paths["risk.parquet"])
    pred = xr.open_dataset(run / "predictions.nc")
    exp = study["export"]["exposure"]
    lam = exp["fleet_size"] * exp["abuse_events_per_cell_year"]
    top = risk.sort_values("p_tr_mean").iloc[-1]["scenario"]
    cost = exp["cost_per_event_by_severity"][str(pred["severity"].sel(scenario=top).values)]
    d = pred["p_tr_draws"].sel(scenario=top).values
    p_any = np.mean(1 - np.exp(-lam * d))
    row = curve[(curve.scenario == top) & (curve.exceedance_probability == 0.5)].iloc[0]
    assert (row["annual_loss"] > 0) == (p_any > 0.5)
    mean_events = lam * d.mean()
    p50 = row["annual_loss"] / cost
    assert abs(p50 - mean_events) < 4 * np.sqrt(mean_events + lam ** 2 * d.var()) + 1


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
    doc["schema_version"] = "2.0.0"
    (tmp_path / "risk.json").write_text(json.dumps(doc))
    with pytest.raises(ExportSchemaError, match="2.0.0"):
        read_export(tmp_path / "risk.json")


def test_without_exposure_only_probabilities(run_copy):
    run, study = run_copy
    study = {**study, "export": {}}
    paths = write_exports(run, study)
    assert "exceedance.parquet" not in paths
    df = read_export(paths["risk.parquet"])
    assert "annual_expected_loss" not in df.columns
    assert json.loads(paths["risk.json"].read_text())["exceedance"] is None


def test_missing_cost_is_a_study_error(run_copy):
    run, study = run_copy
    exp = {**study["export"]["exposure"], "cost_per_event_by_severity": {"7": 1.0}}
    with pytest.raises(StudyError, match="cost_per_event_by_severity"):
        write_exports(run, {**study, "export": {"exposure": exp}})


def test_docs_match_schema():
    text = DOCS.read_text()
    assert schema_markdown() in text, "docs/exports.md is out of date: paste schema_markdown()"
    for table in (RISK_TABLE, EXCEEDANCE_TABLE):
        for col in table.columns:
            assert f"`{col.name}`" in text
