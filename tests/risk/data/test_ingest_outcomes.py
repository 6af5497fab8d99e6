"""The ingest stage on the shipped calorimetry study: each test's trigger becomes the simulator conditions that
represent it (the nail as an internal short), so every test enters with its outcome and its observables."""
from pathlib import Path

import numpy as np
import xarray as xr

from risk import stages
from risk.pipeline import RunContext
from risk.study import load_study

REPO = Path(__file__).resolve().parents[3]


def test_calorimetry_ingest_sets_the_simulator_conditions_of_each_trigger(tmp_path, shared_data):
    study = load_study(REPO / "studies" / "calorimetry_18650.yaml", quick=True)
    summary = stages.ingest(RunContext(study=study, out=tmp_path, quick=True))
    real = xr.open_dataset(tmp_path / "real.nc")
    nail = (real["trigger"] == "Nail").values
    assert summary["tests"] == real.sizes["test"] == 90 and summary["trigger_conditions"] == {"Nail": int(nail.sum())} == {"Nail": 46}
    # the nail: no heater, a 20 mΩ internal short; the heater tests keep their heater and have no short
    assert (real["heater_power"].values[nail] == 0).all() and (real["heater_duration"].values[nail] == 0).all()
    np.testing.assert_allclose(real["short_resistance"].values[nail], 0.02)
    assert (real["short_resistance"].values[~nail] == 1e6).all() and (real["heater_power"].values[~nail] > 300).all()
    tr = real["thermal_runaway"].values
    assert np.isfinite(tr).all() and (tr[~nail] == 1).all()  # every heater test of these families ran away
    assert 0 < tr[nail].sum() < nail.sum()  # the nail tests: runaway above ~40 % SOC only
    assert tr[nail & (real["soc"].values <= 0.2)].sum() == 0
    assert "outcome_not_used" not in summary
