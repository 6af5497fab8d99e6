"""Every study in studies/ runs end to end in --quick mode through the real CLI (issue 8)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import xarray as xr

REPO = Path(__file__).resolve().parents[2]
STUDIES = sorted((REPO / "studies").glob("*.yaml"))


def test_every_study_validates():
    res = subprocess.run([sys.executable, "-m", "risk.cli", "validate", *map(str, STUDIES)], capture_output=True,
                         text=True, cwd=REPO)
    assert res.returncode == 0, res.stderr
    assert len(STUDIES) >= 4


@pytest.mark.timeout(3600)  # the subprocess's own hang guard (2700 s) + the cached rerun, not the 1800 s default
@pytest.mark.parametrize("study", STUDIES, ids=[p.stem for p in STUDIES])
def test_study_runs_end_to_end_in_quick_mode(study, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "risk.cli", "run", str(study), "--quick", "--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=2700)  # a hang guard: the quick default study takes ~17 min on 2 cores
    assert res.returncode == 0, res.stderr[-4000:]
    stages = json.loads((out / "stages.json").read_text())
    assert set(stages) == {"simulate", "ingest", "train", "calibrate", "crossvalidate", "predict", "report", "export"}
    if (out / "diagnostics.json").exists():  # the report's validity verdict follows the diagnostics
        diag = json.loads((out / "diagnostics.json").read_text())
        assert "scenario_p_tr" in diag  # the scenarios' P(TR) is diagnosed with the free variables
        assert ("INVALID" in (out / "report.html").read_text()) == (not diag["ok"])
    if (out / "crossval.json").exists():  # the reported physics model is validated against its baselines
        cv = json.loads((out / "crossval.json").read_text())
        if "leave_family_out" in cv:
            entry = cv["leave_family_out"]
            assert {"physics", "metadata", "family_frequency"} <= set(entry) and entry["n_folds"] >= 3
            for model in ("physics", "metadata", "family_frequency"):
                assert 0 <= entry[model]["brier"] <= 1 and sum(b["n"] for b in entry[model]["reliability"]) == entry["n_tests"]
    pred = xr.open_dataset(out / "predictions.nc")
    p = pred["p_tr_mean"].values
    assert ((0 <= p) & (p <= 1)).all() and (pred["p_tr_q05"].values <= pred["p_tr_q95"].values).all()
    # the rare-event estimate is for a new cell of the least likely scenario's own family when calibrated
    rare = json.loads((out / "rare_events.json").read_text())
    k = int(p.argmin())
    assert rare["scenario"] == str(pred["scenario"].values[k]) and 0 <= rare["subset_simulation"]["p"] <= 1
    if (out / "posterior.nc").exists():
        from risk.bayes.sampling import load_posterior

        post = load_posterior(out / "posterior.nc")
        calibrated = str(pred["cell_family"].values[k]) in set(map(str, post["posterior"]["family"].values))
        assert rare["location"] == ("family" if calibrated else "population")
    for name in ("report.html", "report.pdf", "exports/risk.parquet", "exports/risk.csv", "exports/risk.json"):
        assert (out / name).stat().st_size > 0, name
    # a rerun is fully cached
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert again.returncode == 0 and again.stderr.count("unchanged, skipped") == 8, again.stderr[-2000:]
