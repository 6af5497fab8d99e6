"""`predict_tests` on the real indentation table: metadata only, calibrated probabilities."""
import os

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("PYTENSOR_FLAGS", "blas__ldflags=")

from risk.errors import DataError  # noqa: E402
from risk.bayes.baselines import calibrate_metadata  # noqa: E402
from risk.predict.newtests import (family_from_filename, predict_tests, read_calorimetry_tests,  # noqa: E402
                                   read_indentation_tests, soc_from_filename)


def test_family_and_soc_parsing():
    assert family_from_filename("Sorteria-control-40SOC-cell2") == "Soteria control"  # the file's typo too
    assert family_from_filename("Soteria-SCC-4720mAh-40SOC") == "Soteria SCC"
    assert family_from_filename("OE-10AHr-NMC-40SOC-Cell4") == family_from_filename("OE-NMC10Ah-60SOC")
    assert family_from_filename("500mAh2-60S0C") == "LCO pouch 0.5 Ah"
    assert soc_from_filename("500mAh2-60S0C") == 0.6


def test_calorimetry_reader(shared_data):
    df = read_calorimetry_tests(shared_data / "bfd" / "BatteryFailureDatabankV2_train.xlsx")
    assert len(df) > 250 and df["soc"].between(0, 1).all()
    assert df["energy_wh"].notna().mean() > 0.95 and df["bottom_rupture"].sum() >= 5


def test_predict_tests_indentation(shared_data, tmp_path):
    csv = shared_data / "indentation" / "tests.csv"
    with pytest.raises(DataError):
        predict_tests(tmp_path, csv, model="metadata")
    with pytest.raises(DataError, match="physics posterior"):
        predict_tests(tmp_path, csv)  # the default model needs a calibrated run directory
    calibrate_metadata(tmp_path, csv, seed=3, draws=200, tune=300, allow_bad_diagnostics=True)
    # new tests: outcomes removed, one unseen family
    new = pd.read_csv(csv).drop(columns=["ObservedScore", "ObservedScoreText", "CalculatedScore"]).head(20)
    new.loc[0, "FileName"] = "Brandnew-3000mAh-100SOC"
    new.loc[0, "Capacity_mAh"] = 3000
    new.to_csv(tmp_path / "new.csv", index=False)
    out = predict_tests(tmp_path, tmp_path / "new.csv", model="metadata")
    cols = ["FileName", "p_tr", "p_tr_q05", "p_tr_q95"] + [f"p_level_{k}" for k in range(1, 8)] + ["model"]
    assert set(out["model"]) == {"metadata"}
    assert list(out.columns) == cols and len(out) == 20
    np.testing.assert_allclose(out[[f"p_level_{k}" for k in range(1, 8)]].sum(axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(out["p_tr"], out["p_level_6"] + out["p_level_7"], atol=1e-9)
    assert (out["p_tr_q05"] <= out["p_tr"]).all() and (out["p_tr"] <= out["p_tr_q95"]).all()
    # in-sample sanity: higher predicted P(TR) where TR (level ≥ 6) was observed
    truth = pd.read_csv(csv).head(20)["ObservedScore"] >= 6
    assert out.loc[truth.values, "p_tr"].mean() > out.loc[~truth.values, "p_tr"].mean() + 0.2
    # the unseen family is more uncertain than a seen one
    width = out["p_tr_q95"] - out["p_tr_q05"]
    assert width.iloc[0] > width.iloc[1:].median()


def test_chemistry_and_format_from_names_or_columns(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"FileName": ["500mAh1-20S0C", "OE-LFP10Ah-0SOC-cell9", "ChevyVolt-20SOC-6mm-cell2", "Odd-50SOC"],
                  "SOC_pct": [20, 0, 20, 50], "chemistry": ["", "", "", "LCO"], "format": ["", "", "", "pouch"]}
                 ).to_csv(path, index=False)
    df = read_indentation_tests(path)
    assert list(df["chemistry"]) == ["LCO", "LFP", "NMC-LMO", "LCO"]  # the column overrides the name
    assert list(df["format"]) == ["pouch"] * 4
    assert df.loc[2, "capacity_ah"] == 26.0  # the family's nominal capacity when the table has none


def test_conditions_outside_the_simulated_design_are_flagged(tmp_path):
    """A new test whose condition (here the nominal capacity) lies outside the range the run simulated is
    not answered by the decoder: `_outside_design` reads the run's recorded design bounds."""
    import json

    import xarray as xr

    from risk.predict.newtests import _outside_design

    ds = xr.Dataset({"capacity_nominal": ("test", [7200.0, 12960.0, 5400.0, np.nan, 12960.0 * (1 + 1e-9)]),
                     "soc": ("test", [1.0, 1.0, 1.0, 0.5, 1.0])})
    assert not _outside_design(tmp_path, ds).any()  # no record: nothing to check against
    (tmp_path / "misspecification.json").write_text(json.dumps({"design": {
        "capacity_nominal": {"design_min": 7200.0, "design_max": 12960.0, "n_outside": 0, "tests": []},
        "soc": {"design_min": 0.0, "design_max": 1.0, "n_outside": 0, "tests": []}}}))
    assert _outside_design(tmp_path, ds).tolist() == [False, False, True, False, False]
