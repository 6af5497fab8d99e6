"""Ensemble runner: designs, failure recording, and crash safety under SIGKILL (real Dask, real Zarr)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from simulators import Prior
from simulators.ensemble import _committed, design, design_sets, open_ensemble, repair_store, run_ensemble

SIM = "tests.helpers_sims:NewtonCooling"


def test_design_maps_unit_cube_through_priors_and_is_reproducible():
    priors = {"a": Prior("uniform", low=1.0, high=3.0), "b": Prior("loguniform", low=1e-3, high=1e3)}
    d1 = design(priors, {"soc": (0.2, 1.0), "t_amb": 298.15}, 256, "sobol", seed=3)
    d2 = design(priors, {"soc": (0.2, 1.0), "t_amb": 298.15}, 256, "sobol", seed=3)
    np.testing.assert_array_equal(d1.theta, d2.theta)
    assert d1.theta[:, 0].min() >= 1.0 and d1.theta[:, 0].max() <= 3.0
    # a scrambled Sobol design is much more uniform than iid: log10(b) fills each decade ~equally
    counts, _ = np.histogram(np.log10(d1.theta[:, 1]), bins=6, range=(-3, 3))
    assert counts.min() >= 38 and counts.max() <= 48, counts
    assert np.all(d1.condition[:, 1] == 298.15) and 0.2 <= d1.condition[:, 0].min()
    lhs = design(priors, {}, 50, "lhs", seed=1)
    # Latin hypercube: exactly one point per 1/50 stratum of each margin
    strata = np.floor(priors["a"].frozen.cdf(lhs.theta[:, 0]) * 50).astype(int)
    assert sorted(strata) == list(range(50))


def test_design_sets_split_the_samples_between_condition_blocks():
    priors = {"a": Prior("uniform", low=1.0, high=3.0)}
    base = {"soc": (0.0, 1.0), "heater_power": (300.0, 1200.0), "short_resistance": 1e6}
    nail = {"heater_power": 0.0, "short_resistance": (0.005, 0.1)}
    d = design_sets(priors, base, [(0.6, {}), (0.4, nail)], 101, "sobol", seed=2)
    assert len(d) == 101 and d.condition_names == ("soc", "heater_power", "short_resistance")
    heater, short = d.condition[:61], d.condition[61:]  # 0.6·101 = 60.6 → 61 (largest remainder)
    assert heater[:, 1].min() >= 300.0 and np.all(heater[:, 2] == 1e6)
    assert np.all(short[:, 1] == 0.0) and 0.005 <= short[:, 2].min() and short[:, 2].max() <= 0.1
    # each block is its own space-filling design: the prior is covered in both
    assert np.ptp(d.theta[:61, 0]) > 1.8 and np.ptp(d.theta[61:, 0]) > 1.8
    np.testing.assert_array_equal(design_sets(priors, base, [], 16, "sobol", seed=2).theta,
                                  design(priors, base, 16, "sobol", seed=2).theta)
    with pytest.raises(ValueError, match="sum to 1"):
        design_sets(priors, base, [(0.5, {}), (0.4, nail)], 10)
    with pytest.raises(ValueError, match="not among the conditions"):
        design_sets(priors, base, [(1.0, {"oven": 400.0})], 10)


@pytest.mark.parametrize("batch_size", [1, 5])
def test_failures_are_recorded_and_run_continues(tmp_path, batch_size):
    """Also in chunks of 5 (`run_chunk`): a chunk with a failing sample is rerun one by one, so exactly the failing
    samples are recorded and every other sample of the chunk is stored."""
    sim_priors = {"h": Prior("uniform", low=5.0, high=50.0), "heat_capacity": Prior("uniform", low=20.0, high=80.0)}
    plan = design(sim_priors, {"power": 5.0, "temperature_ambient": 298.15}, 12, "lhs", seed=0)
    res = run_ensemble(SIM, {"fail_above": 30.0}, plan, tmp_path / "ensemble.zarr", workers=1, batch_size=batch_size)
    n_fail = int((plan.theta[:, 0] > 30.0).sum())
    assert len(res.failed) == n_fail > 0 and len(res.computed) == 12 - n_fail
    lines = [json.loads(x) for x in (tmp_path / "failures.jsonl").read_text().splitlines()]
    assert {x["sample"] for x in lines} == set(res.failed)
    assert all("above fail_above" in x["error"] and x["theta"]["h"] > 30.0 for x in lines)
    ens = open_ensemble(tmp_path / "ensemble.zarr")
    # stored values equal the exact solution for the stored θ: nothing mixed up between samples
    for i in range(ens.sizes["sample"]):
        h, C = ens["theta"].values[i]
        t = ens["time"].values
        hA = h * 4.2e-3
        exact = 298.15 + 5.0 / hA * (1 - np.exp(-t * hA / C))
        np.testing.assert_allclose(ens["temperature"].values[i], exact, rtol=1e-12)
    # a second call redoes nothing (finished and failed samples are both kept)
    again = run_ensemble(SIM, {"fail_above": 30.0}, plan, tmp_path / "ensemble.zarr", workers=1)
    assert again.computed == [] and again.failed == []


def test_timeout_is_recorded_as_failure(tmp_path):
    plan = design({"h": Prior("uniform", low=5.0, high=6.0), "heat_capacity": Prior("uniform", low=20.0, high=21.0)},
                  {}, 2, "lhs", seed=0)
    res = run_ensemble(SIM, {"sleep": 3.0}, plan, tmp_path / "e.zarr", workers=1, timeout=0.5)
    assert sorted(res.failed) == [0, 1]
    assert "SimulationTimeout" in (tmp_path / "failures.jsonl").read_text()


def test_sigkill_mid_ensemble_then_rerun_redoes_no_finished_simulation(tmp_path, repo):
    study = tmp_path / "crash.yaml"
    study.write_text((repo / "tests" / "risk" / "studies" / "good.yaml").read_text()
                     .replace("options: {n_time: 11, t_end: 600.0}", "options: {n_time: 11, t_end: 600.0, sleep: 0.4}")
                     .replace("size: 8", "size: 24").replace("workers: 1", "workers: 2"))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "risk.cli", "simulate", str(study), "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=repo, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = out / "ensemble.zarr"
    deadline = time.time() + 180
    while time.time() < deadline and _committed(store) < 6:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = _committed(store)
    assert 6 <= killed_at < 24, "the kill must land mid-ensemble"
    n_before = repair_store(store)  # what a rerun sees: committed samples, partial append dropped
    done_before = set(open_ensemble(store)["sample"].values.tolist())
    assert len(done_before) == n_before >= killed_at - 1

    res = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads((out / "stages.json").read_text())["simulate"]["summary"]
    assert summary["computed_now"] == 24 - n_before  # no finished simulation redone
    ens = open_ensemble(store)
    assert sorted(ens["sample"].values.tolist()) == list(range(24))  # each exactly once, none corrupt
    assert np.isfinite(ens["temperature"].values).all()


def test_repair_drops_an_uncommitted_partial_append(tmp_path):
    """A kill after some arrays grew but before n_committed was updated leaves a readable store."""
    import zarr

    plan = design({"h": Prior("uniform", low=5.0, high=6.0), "heat_capacity": Prior("uniform", low=20.0, high=21.0)},
                  {}, 3, "lhs", seed=0)
    store = tmp_path / "e.zarr"
    run_ensemble(SIM, {}, plan, store, workers=1)
    g = zarr.open_group(str(store), mode="r+")
    g["temperature"].resize((4, g["temperature"].shape[1]))  # one variable appended, the others not
    assert repair_store(store) == 3
    ens = open_ensemble(store)
    assert ens.sizes["sample"] == 3 and ens["temperature"].shape == (3, 11)


def test_nan_rules_distinguish_did_not_happen_from_broken():
    import xarray as xr

    from simulators.ensemble import _invalid_outputs

    ok = xr.Dataset({"temperature_peak": 400.0, "heat_released_total": 1e4, "time_to_runaway": np.nan,
                     "time_separator_collapse": np.nan, "temperature": ("time", [300.0, np.nan, 310.0])})
    assert _invalid_outputs(ok) == []
    broken = ok.assign(temperature_peak=np.nan, temperature=("time", [np.nan] * 3), heat_rate=("time", [1.0, np.inf, 0]))
    assert sorted(_invalid_outputs(broken)) == ["heat_rate", "temperature", "temperature_peak"]


def test_resuming_into_a_store_of_another_design_is_refused_then_forced(tmp_path):
    priors = {"h": Prior("uniform", low=5.0, high=50.0), "heat_capacity": Prior("uniform", low=20.0, high=80.0)}
    store = tmp_path / "ensemble.zarr"
    run_ensemble(SIM, {}, design(priors, {"power": 5.0}, 6, "sobol", seed=0), store, workers=1)
    # growing a Sobol design keeps its first points: resuming computes only the new ones
    grown = run_ensemble(SIM, {}, design(priors, {"power": 5.0}, 8, "sobol", seed=0), store, workers=1)
    assert sorted(grown.computed) == [6, 7]
    other = design(priors | {"h": Prior("uniform", low=5.0, high=60.0)}, {"power": 5.0}, 8, "sobol", seed=0)
    from simulators.ensemble import DesignMismatch

    with pytest.raises(DesignMismatch, match="different design"):
        run_ensemble(SIM, {}, other, store, workers=1)
    with pytest.raises(DesignMismatch):
        run_ensemble(SIM, {"n_time": 5}, design(priors, {"power": 5.0}, 8, "sobol", seed=0), store, workers=1)
    forced = run_ensemble(SIM, {}, other, store, workers=1, retry_failed=True)
    assert sorted(forced.computed) == list(range(8))
    assert len(list(tmp_path.glob("ensemble-*.zarr"))) == 1  # the old store is kept, not deleted
    np.testing.assert_allclose(open_ensemble(store)["theta"].values, other.theta[open_ensemble(store)["sample"].values])


def test_local_cluster_workers_are_set_up_for_long_simulations(monkeypatch):
    """Workers get their share of BLAS threads, glibc's adaptive malloc, and no stack profiler."""
    from distributed import Client

    from simulators.ensemble import WORKER_CONFIG, local_cluster

    def worker_settings():
        import dask

        return (os.environ.get("OMP_NUM_THREADS"), os.environ.get("MALLOC_TRIM_THRESHOLD_"),
                {k: dask.config.get(k) for k in WORKER_CONFIG})

    monkeypatch.setenv("OMP_NUM_THREADS", "7")  # e.g. left by an earlier cluster's nanny: neither used nor lost
    with local_cluster(workers=2) as cluster, Client(cluster, set_as_default=False) as client:
        settings = list(client.run(worker_settings).values())
    assert os.environ["OMP_NUM_THREADS"] == "7"
    assert len(settings) == 2
    share = str(max(1, (os.cpu_count() or 1) // 2))
    for omp, trim, config in settings:
        assert omp == share and trim is None
        assert config == WORKER_CONFIG and config["distributed.worker.profile.enabled"] is False
