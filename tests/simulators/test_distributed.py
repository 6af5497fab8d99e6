"""Ensembles on an existing Dask cluster: real `dask scheduler` + `dask worker` processes on loopback."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from simulators import Prior
from simulators.ensemble import design, open_ensemble, run_ensemble

SIM = "tests.helpers_sims:NewtonCooling"
DASK = str(Path(sys.executable).with_name("dask"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cluster(tmp_path):
    """A scheduler and two single-thread workers as separate OS processes; yields (address, workers)."""
    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    log = open(tmp_path / "dask.log", "w")
    procs = [subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                              stdout=log, stderr=log, start_new_session=True)]
    # the workers only once the scheduler listens: started together, a worker's own server could take the
    # free port first (seen: the scheduler then failed to start and the client hung on the worker's socket)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if procs[0].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dask scheduler did not start on port {port}: see {tmp_path / 'dask.log'}")
            time.sleep(0.2)
    workers = [subprocess.Popen([DASK, "worker", addr, "--nthreads", "1", "--no-dashboard", "--no-nanny",
                                 "--name", f"w{i}"], stdout=log, stderr=log, start_new_session=True)
               for i in range(2)]
    procs += workers
    from distributed import Client

    with Client(addr, timeout="60s") as c:
        c.wait_for_workers(2, timeout=120)
    yield addr, workers
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    log.close()


def _plan(n):
    return design({"h": Prior("uniform", low=5.0, high=30.0), "heat_capacity": Prior("uniform", low=20.0, high=80.0)},
                  {"power": 5.0}, n, "sobol", seed=2)


def test_ensemble_runs_through_an_external_scheduler(cluster, tmp_path):
    addr, _ = cluster
    res = run_ensemble(SIM, {}, _plan(16), tmp_path / "e.zarr", cluster=addr)
    assert sorted(res.computed) == list(range(16)) and not res.failed
    ens = open_ensemble(tmp_path / "e.zarr")
    assert ens.sizes["sample"] == 16 and np.isfinite(ens["temperature"].values).all()


def test_worker_killed_mid_run_has_its_tasks_retried_elsewhere(cluster, tmp_path):
    addr, workers = cluster
    store = tmp_path / "e.zarr"
    seen = []

    def kill_one_worker_after_a_few():
        while len(seen) < 3:
            time.sleep(0.05)
        os.killpg(workers[0].pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_one_worker_after_a_few)
    killer.start()
    res = run_ensemble(SIM, {"sleep": 0.3}, _plan(16), store, cluster=addr,
                       progress=lambda done, total: seen.append(done))
    killer.join()
    assert workers[0].poll() is not None, "the worker was killed"
    assert sorted(res.computed) == list(range(16)) and not res.failed
    assert sorted(open_ensemble(store)["sample"].values.tolist()) == list(range(16))
