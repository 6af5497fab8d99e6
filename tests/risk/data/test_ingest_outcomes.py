"""The ingest stage on the shipped calorimetry study: the runaway outcome of a trigger the simulator does not
model is not used (NaN in real.nc, listed in the stage summary), its observables are kept."""
from pathlib import Path

import numpy as np
import xarray as xr

from risk import stages
from risk.pipeline import RunContext
from risk.study import load_study

REPO = Path(__file__).resolve().parents[3]


def test_calorimetry_ingest_uses_the_runaway_of_heater_tests_only(tmp_path, shared_data):
    study = load_study(REPO / "studies" / "calorimetry_18650.yaml", quick=True)
    summary = stages.ingest(RunContext(study=study, out=tmp_path, quick=True))
    real = xr.open_dataset(tmp_path / "real.nc")
    heater = real["trigger"].isin(study.data.runaway_triggers).values
    tr = real["thermal_runaway"].values
    assert summary["tests"] == real.sizes["test"] == 90 and heater.sum() == 44
    assert (tr[heater] == 1).all()  # every heater test of these 18650 families ran away
    assert np.isnan(tr[~heater]).all() and np.isfinite(real["heat_released_total"].values[~heater]).all()
    assert sorted(summary["outcome_not_used"]["tests"]) == sorted(map(str, real["test"].values[~heater]))
    assert "observables kept" in summary["outcome_not_used"]["reason"]
