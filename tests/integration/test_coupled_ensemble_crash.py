"""Issue-4 acceptance: a 200-member ensemble of the coupled lumped simulator through `risk simulate` on a
local Dask cluster, killed with SIGKILL mid-run, then rerun: it finishes without redoing finished members."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

from simulators.ensemble import _committed, open_ensemble, repair_store

STUDY = """
study: {name: coupled-crash, seed: 11}
cell: {chemistry: LCO, format: "18650", capacity: 2.6 A h}
simulator: {name: coupled_short_lumped, options: {n_time: 31}}
conditions:
  soc: {low: 0.3, high: 1.0}
ensemble: {size: 200, design: sobol, workers: 2, timeout: 120}
"""


def test_sigkill_and_resume_200_member_coupled_ensemble(tmp_path, repo):
    study = tmp_path / "coupled.yaml"
    study.write_text(STUDY)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "risk.cli", "simulate", str(study), "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=repo, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    store = out / "ensemble.zarr"
    deadline = time.time() + 300
    while time.time() < deadline and _committed(store) < 40:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 40 <= _committed(store) < 200, "the kill must land mid-ensemble"
    n_before = repair_store(store)
    failed_before = len((out / "failures.jsonl").read_text().splitlines()) if (out / "failures.jsonl").exists() else 0

    res = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((out / "stages.json").read_text())["simulate"]["summary"]
    assert summary["computed_now"] + summary["failed"] == 200 - n_before - failed_before
    ens = open_ensemble(store)
    samples = ens["sample"].values.tolist()
    assert len(samples) == len(set(samples)) and len(samples) + summary["failed"] + failed_before == 200
    tr = ens["thermal_runaway"].values.astype(bool)
    assert 0 < tr.sum() < len(tr), "the design spans runaway and no-runaway members"
    # physics sanity on the stored members: runaway members are hotter and faster shorts run away more
    assert ens["temperature_peak"].values[tr].min() > np.median(ens["temperature_peak"].values[~tr])
    r = ens["theta"].sel(parameter="short_resistance").values
    assert np.median(r[tr]) < np.median(r[~tr])
