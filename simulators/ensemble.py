"""Ensembles: space-filling designs over the priors, run on Dask, persisted sample by sample to Zarr.

Design
    `design(priors, conditions, n, kind, seed)` draws a scrambled Sobol or Latin-hypercube sample of
    the unit cube (scipy.stats.qmc) and maps it through each prior's quantile function; conditions
    given as ``(low, high)`` ranges are sampled uniformly in the same design, fixed ones are constant.
    The design is a pure function of its arguments, so sample ``i`` is the same on every rerun.
    `design_sets(...)` splits the samples between condition sets (e.g. heater- and nail-triggered tests),
    each its own design with some conditions overridden.

Runner
    `run_ensemble(...)` submits every not-yet-finished sample to a Dask cluster (a `LocalCluster` by
    default, or an existing scheduler address) and appends finished simulations to the store as they
    arrive, batched into one append per ``commit_interval`` seconds (single writer: the client). Failures (exceptions, NaN outcomes, time-outs) are lines
    in ``failures.jsonl`` with parameters, error, traceback and time, and the run carries on. With
    ``batch_size > 1`` a worker task runs a chunk of samples through the simulator's `run_batch` (`run_chunk`:
    one vectorised call where the simulator has one; a chunk that fails is rerun sample by sample).

Crash safety
    After each append the store's ``n_committed`` attribute is updated (a kill loses at most the
    results of the last ``commit_interval`` seconds). A rerun first repairs the store
    (drops a partial append left by a kill: arrays longer than ``n_committed``), then skips every
    committed or failed sample. See docs/contracts.md, "Ensemble store".
"""
from __future__ import annotations

import json
import os
import shutil
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr
from scipy.stats import qmc

from simulators.priors import Prior
from simulators.registry import load

SAMPLE_CHUNK = 64


# ------------------------------------------------------------------------------------------- design
@dataclass(frozen=True)
class Design:
    """A design: ``theta`` (n, p) and ``condition`` (n, q) in SI, with their names."""

    theta: np.ndarray
    parameter_names: tuple[str, ...]
    condition: np.ndarray
    condition_names: tuple[str, ...]

    def __len__(self) -> int:
        return self.theta.shape[0]

    def sample(self, i: int) -> tuple[dict[str, float], dict[str, float]]:
        return (dict(zip(self.parameter_names, map(float, self.theta[i]))),
                dict(zip(self.condition_names, map(float, self.condition[i]))))


def design(priors: Mapping[str, Prior], conditions: Mapping[str, float | tuple[float, float]],
           n: int, kind: str = "sobol", seed: int = 0) -> Design:
    """Space-filling design over the priors (and condition ranges).

    Parameters
    ----------
    priors : θ name → `Prior` (SI).
    conditions : condition name → fixed SI value or ``(low, high)`` range sampled uniformly.
    n : number of samples.
    kind : ``"sobol"`` (scrambled, Owen) or ``"lhs"``.
    seed : seeds the scrambling / permutation.
    """
    ranged = [k for k, v in conditions.items() if isinstance(v, tuple)]
    d = len(priors) + len(ranged)
    if kind == "sobol":
        engine = qmc.Sobol(d, scramble=True, rng=np.random.default_rng(seed))
        m = int(np.ceil(np.log2(max(n, 2))))
        u = engine.random_base2(m)[:n]  # balanced power-of-two block, truncated
    elif kind == "lhs":
        u = qmc.LatinHypercube(d, rng=np.random.default_rng(seed)).random(n)
    else:
        raise ValueError(f"unknown design {kind!r}; expected 'sobol' or 'lhs'")
    u = np.clip(u, 1e-12, 1 - 1e-12)
    names = list(priors)
    theta = np.column_stack([priors[k].ppf(u[:, j]) for j, k in enumerate(names)]) if names else np.zeros((n, 0))
    cols = []
    for k, v in conditions.items():
        if isinstance(v, tuple):
            j = len(names) + ranged.index(k)
            cols.append(v[0] + (v[1] - v[0]) * u[:, j])
        else:
            cols.append(np.full(n, float(v)))
    cond = np.column_stack(cols) if cols else np.zeros((n, 0))
    return Design(theta, tuple(names), cond, tuple(conditions))


def design_sets(priors: Mapping[str, Prior], conditions: Mapping[str, float | tuple[float, float]],
                sets: Sequence[tuple[float, Mapping[str, float | tuple[float, float]]]], n: int,
                kind: str = "sobol", seed: int = 0) -> Design:
    """A design split between condition sets, e.g. tests triggered by a heater and by a nail.

    sets : ``(share, overrides)`` pairs; set k gets round(share·n) samples (largest remainder, shares sum
    to 1) drawn by `design` over ``priors`` and ``conditions`` updated by its ``overrides`` (every
    overridden name must be one of ``conditions``, which keep one column order), with seed ``seed + k``.
    Without sets this is `design`. Samples are ordered set by set.
    """
    if not sets:
        return design(priors, conditions, n, kind, seed)
    shares = np.array([float(s) for s, _ in sets])
    if np.any(shares <= 0) or not np.isclose(shares.sum(), 1.0):
        raise ValueError(f"condition set shares must be positive and sum to 1, got {shares.tolist()}")
    exact = shares * n
    counts = np.floor(exact).astype(int)
    counts[np.argsort(counts - exact)[: n - counts.sum()]] += 1
    blocks = []
    for k, ((_, over), m) in enumerate(zip(sets, counts)):
        unknown = set(over) - set(conditions)
        if unknown:
            raise ValueError(f"condition set {k} overrides {sorted(unknown)}, not among the conditions {list(conditions)}")
        if m:
            blocks.append(design(priors, {**conditions, **over}, int(m), kind, seed + k))
    return Design(np.concatenate([b.theta for b in blocks]), blocks[0].parameter_names,
                  np.concatenate([b.condition for b in blocks]), blocks[0].condition_names)


# ------------------------------------------------------------------------------------------- worker
class SimulationTimeout(RuntimeError):
    pass


def run_one(simulator: str, options: dict, theta: dict, condition: dict, timeout: float, mpi_ranks: int = 1) -> dict:
    """Run one simulation (on a worker). Never raises: returns ``{"ok": bool, ...}``.

    The simulation runs in a helper thread joined with ``timeout`` seconds; on time-out the result is
    discarded and the sample recorded as failed (the thread cannot be killed and finishes on its own).
    With ``mpi_ranks > 1`` it runs under ``mpiexec -n mpi_ranks`` (`simulators.mpi`), killed on time-out.
    """
    t0 = time.perf_counter()
    box: dict = {}

    def target():
        try:
            if mpi_ranks > 1:
                from simulators.mpi import run_under_mpi

                box["ds"] = run_under_mpi(simulator, options, theta, condition, mpi_ranks, timeout)
            else:
                box["ds"] = load(simulator)(**options).run(theta, condition).load()
        except BaseException as err:  # noqa: BLE001 — every failure is recorded, none is fatal
            box["err"], box["tb"] = err, traceback.format_exc()

    th = threading.Thread(target=target, daemon=True)
    th.start()
    th.join(timeout)
    wall = time.perf_counter() - t0
    if th.is_alive():
        return {"ok": False, "error": f"SimulationTimeout: no result after {timeout:g} s", "traceback": "",
                "wall_time": wall}
    if "err" in box:
        err = box["err"]
        return {"ok": False, "error": f"{type(err).__name__}: {err}", "traceback": box["tb"], "wall_time": wall}
    ds = box["ds"]
    bad = _invalid_outputs(ds)
    if bad:
        return {"ok": False, "error": f"NaN output: {', '.join(bad)}", "traceback": "", "wall_time": wall}
    return {"ok": True, "dataset": ds, "wall_time": wall}


def run_chunk(simulator: str, options: dict, samples: list[tuple[int, dict, dict]], timeout: float,
              mpi_ranks: int = 1) -> list[tuple[int, dict]]:
    """Run the samples ``[(index, theta, condition), ...]`` on a worker with the simulator's `run_batch` (one
    vectorised call where the simulator has one) and return ``[(index, result of run_one's form), ...]``.

    Time-out: ``timeout`` × the number of samples for the whole chunk, every sample recorded as failed when it
    passes. A chunk that raises is rerun sample by sample with `run_one`, so the failing sample is recorded alone
    and the others are kept. Each sample's ``wall_time`` is its share of the chunk's. One sample or MPI: `run_one`.
    """
    if len(samples) == 1 or mpi_ranks > 1:
        return [(i, run_one(simulator, options, theta, cond, timeout, mpi_ranks)) for i, theta, cond in samples]
    t0 = time.perf_counter()
    box: dict = {}

    def target():
        try:
            out = load(simulator)(**options).run_batch([s[1] for s in samples], [s[2] for s in samples])
            box["ds"] = [ds.load() for ds in out]
        except BaseException as err:  # noqa: BLE001 — rerun one by one below
            box["err"] = err

    th = threading.Thread(target=target, daemon=True)
    th.start()
    th.join(timeout * len(samples))
    wall = (time.perf_counter() - t0) / len(samples)
    if th.is_alive():
        return [(i, {"ok": False, "error": f"SimulationTimeout: no result after {timeout * len(samples):g} s for a "
                                          f"batch of {len(samples)}", "traceback": "", "wall_time": wall})
                for i, _, _ in samples]
    if "err" in box:
        return [(i, run_one(simulator, options, theta, cond, timeout)) for i, theta, cond in samples]
    results = []
    for (i, _, _), ds in zip(samples, box["ds"]):
        bad = _invalid_outputs(ds)
        results.append((i, {"ok": False, "error": f"NaN output: {', '.join(bad)}", "traceback": "", "wall_time": wall}
                        if bad else {"ok": True, "dataset": ds, "wall_time": wall}))
    return results


REQUIRED_FINITE = ("temperature_peak", "heat_released_total")


def _invalid_outputs(ds: xr.Dataset) -> list[str]:
    """Variables that make a result unusable: non-finite required outcomes, infinities, all-NaN curves.

    Scalars other than the required outcomes may be NaN by contract ("did not happen", e.g.
    ``time_to_runaway``)."""
    bad = [k for k in REQUIRED_FINITE if k in ds and not np.all(np.isfinite(ds[k].values))]
    for k, v in ds.data_vars.items():
        if v.dtype.kind != "f" or k in bad:
            continue
        vals = v.values
        if np.isinf(vals).any() or (v.ndim > 0 and np.isnan(vals).all()):
            bad.append(k)
    return bad


# -------------------------------------------------------------------------------------------- store
def _committed(path: Path) -> int:
    import zarr

    try:
        return int(zarr.open_group(str(path), mode="r").attrs.get("n_committed", 0))
    except Exception:  # noqa: BLE001 — no or unreadable store: nothing committed
        return 0


def repair_store(path: str | Path) -> int:
    """Drop a partial append: shrink every ``sample`` array to ``n_committed``. Returns that count.

    Works on the raw Zarr arrays (xarray refuses to open a store whose variables disagree in length).
    Idempotent, so a kill during the repair is repaired by the next call.
    """
    import zarr

    path = Path(path)
    if not path.exists():
        return 0
    n = _committed(path)
    if n == 0:
        shutil.rmtree(path)
        return 0
    group = zarr.open_group(str(path), mode="r+")
    for _, arr in group.arrays():
        dims = arr.metadata.dimension_names or arr.attrs.get("_ARRAY_DIMENSIONS") or ()
        if dims and dims[0] == "sample" and arr.shape[0] != n:
            arr.resize((n, *arr.shape[1:]))
    return n


def _write(ds: xr.Dataset, path: Path, mode: str):
    if mode == "a":
        ds.to_zarr(path, append_dim="sample", consolidated=False)
    else:
        enc = {k: {"chunks": tuple(SAMPLE_CHUNK if d == "sample" else max(s, 1) for d, s in v.sizes.items())}
               for k, v in ds.variables.items() if "sample" in v.dims}
        ds.to_zarr(path, mode=mode, consolidated=False, encoding=enc)


def _set_committed(path: Path, n: int):
    import zarr

    zarr.open_group(str(path), mode="r+").attrs["n_committed"] = int(n)


def open_ensemble(path: str | Path) -> xr.Dataset:
    """Open a finished (or partial) ensemble store, committed samples only, in design order.

    The store holds samples in the order they finished (which varies from run to run); sorting by
    the design index makes everything downstream (training batches, fits) reproducible."""
    path = Path(path)
    n = _committed(path)
    ds = xr.open_zarr(path, consolidated=False)
    return ds.isel(sample=slice(0, n)).sortby("sample")


def _as_sample(ds: xr.Dataset, i: int, theta: dict, cond: dict, wall: float, par_units: dict,
               cond_units: dict) -> xr.Dataset:
    out = ds.expand_dims(sample=[i])
    out["theta"] = xr.DataArray(np.array([[theta[k] for k in par_units]]), dims=("sample", "parameter"),
                                coords={"parameter": list(par_units)},
                                attrs={"units": "SI (see parameter_units)", "long_name": "simulator parameters θ"})
    out["condition"] = xr.DataArray(np.array([[cond[k] for k in cond_units]]).reshape(1, len(cond_units)),
                                    dims=("sample", "condition_name"), coords={"condition_name": list(cond_units)},
                                    attrs={"units": "SI (see condition_units)", "long_name": "test conditions c"})
    out["wall_time"] = xr.DataArray([wall], dims="sample", attrs={"units": "s", "long_name": "wall time of the simulation"})
    for k, v in out.variables.items():
        if v.dtype.kind == "U" and "sample" not in v.dims:
            continue
        if v.dtype == object:
            out[k] = v.astype(str)
    return out


# ------------------------------------------------------------------------------------------- runner
class DesignMismatch(ValueError):
    """An existing store holds samples of another design: resuming into it would mix designs."""


def _store_matches_plan(store: Path, n: int, plan: Design, simulator: str, options: dict) -> bool:
    """Same simulator and options, and do the first ``n`` stored samples carry the θ and conditions that
    ``plan`` gives their sample index?"""
    ds = xr.open_zarr(store, consolidated=False).isel(sample=slice(0, n))
    if ds.attrs.get("simulator", simulator) != simulator or json.loads(ds.attrs.get("options", "null") or "null") not in (
            None, json.loads(json.dumps(options, sort_keys=True, default=str))):
        return False
    idx = ds["sample"].values.astype(int)
    if idx.max(initial=-1) >= len(plan) or list(ds["parameter"].values) != list(plan.parameter_names):
        return False
    ok = np.allclose(ds["theta"].values, plan.theta[idx], rtol=1e-12, atol=0)
    if plan.condition_names:
        ok = ok and list(ds["condition_name"].values) == list(plan.condition_names) and np.allclose(
            ds["condition"].values, plan.condition[idx], rtol=1e-12, atol=0)
    return bool(ok)


@dataclass
class EnsembleResult:
    path: Path
    n_total: int
    n_done_before: int
    computed: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    wall_time: float = 0.0


def _failed_samples(failures: Path) -> set[int]:
    if not failures.exists():
        return set()
    out = set()
    for line in failures.read_text().splitlines():
        try:
            out.add(int(json.loads(line)["sample"]))
        except (ValueError, KeyError):
            continue  # a line cut by a kill: ignore it (the sample is redone)
    return out


# Dask settings for workers that run long simulations (see `local_cluster`; recommended for external
# clusters too: put them in the workers' dask config, e.g. ~/.config/dask/distributed.yaml)
WORKER_CONFIG = {"distributed.worker.profile.enabled": False,
                 "distributed.admin.system-monitor.gil.enabled": False,
                 "distributed.admin.system-monitor.interval": "2s",
                 "distributed.admin.tick.interval": "1s",
                 "distributed.worker.memory.monitor-interval": "1s"}


def local_cluster(workers: int = 2, threads_per_worker: int = 1):
    """A `distributed.LocalCluster` of ``workers`` processes set up for simulations.

    Dask's defaults suit many short tasks, not a few long Python-heavy ones, which ran up to ~1.3×
    slower in a default worker than in a plain loop (benchmarks/ensemble_runner.py):

    - the statistical profiler samples every thread's stack each 10 ms and the GIL monitor, tick
      and memory monitors wake the event loop many times a second: each wake takes the GIL from the
      simulation. Off, or once a second; memory limits are still enforced, a second later at most.
    - BLAS/OpenMP pools pinned to 1 thread, and glibc's malloc trim threshold fixed (which also
      freezes its mmap threshold): here each worker gets its share of the cores and glibc's adaptive
      defaults (``None`` unsets the variable).
    """
    import dask
    from distributed import LocalCluster

    blas = str(max(1, (os.cpu_count() or 1) // (workers * threads_per_worker)))
    environ = {"OMP_NUM_THREADS": blas, "MKL_NUM_THREADS": blas, "OPENBLAS_NUM_THREADS": blas,
               "MALLOC_TRIM_THRESHOLD_": None}
    # the nanny prefers this process's environment to its pre-spawn config and writes the config into
    # it ("poisons" it): set the variables here for the spawn, and restore them afterwards
    config = {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in environ.items()}
    saved = {k: os.environ.get(k) for k in environ}
    try:
        _set_environ(environ)
        with dask.config.set({**config, **WORKER_CONFIG}):
            return LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker, processes=True,
                                dashboard_address=None)
    finally:
        _set_environ(saved)


def _set_environ(values: Mapping[str, str | None]) -> None:
    """Set environment variables; None unsets one."""
    for k, v in values.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def run_ensemble(simulator: str, options: dict, plan: Design, store: str | Path, *,
                 cluster: str = "local", workers: int = 2, threads_per_worker: int = 1,
                 timeout: float = 600.0, mpi_ranks: int = 1, retry_failed: bool = False, attrs: dict | None = None,
                 progress: Callable[[int, int], None] | None = None, client=None,
                 commit_interval: float = 2.0, batch_size: int = 1) -> EnsembleResult:
    """Run every unfinished sample of ``plan`` and append each result to ``store`` as it finishes.

    Parameters
    ----------
    simulator, options : registered simulator name and its options.
    plan : the `Design` (sample i ↔ row i).
    store : path of the Zarr store; ``failures.jsonl`` lives beside it.
    cluster : ``"local"`` (a `dask.distributed.LocalCluster` of ``workers`` processes) or a scheduler address.
    timeout : seconds per simulation before it is recorded as failed.
    mpi_ranks : MPI processes per simulation (``mpiexec -n``; keep workers × mpi_ranks ≤ cores).
    retry_failed : rerun samples recorded in failures.jsonl (the old file is kept as failures-<time>.jsonl).
    progress : called as ``progress(done, total)`` after each finished sample.
    client : an existing `distributed.Client` to use (overrides ``cluster``).
    commit_interval : seconds between store commits; results that arrive in between are appended
        together (one Zarr append costs ~0.2 s, so per-sample commits of sub-second simulations
        would keep a core busy). A SIGKILL loses at most this much finished work; Ctrl-C and
        errors lose nothing. 0 commits every sample.
    batch_size : samples per worker task (`run_chunk`: the simulator's vectorised `run_batch`); 1 submits them one
        by one. Results are the same; a chunk's samples are committed when the chunk finishes.
    """
    from distributed import Client, as_completed

    store = Path(store)
    store.parent.mkdir(parents=True, exist_ok=True)
    failures = store.with_name("failures.jsonl")
    t0 = time.perf_counter()
    n_before = repair_store(store)
    done: set[int] = set()
    if n_before and not _store_matches_plan(store, n_before, plan, simulator, options):
        if not retry_failed:
            raise DesignMismatch(f"{store}: its stored samples were made with a different design (priors, "
                                 "conditions, size or seed changed); rerun with --force to start a new store, "
                                 "or write to another --out")
        store.rename(store.with_name(f"{store.stem}-{time.strftime('%Y%m%dT%H%M%S')}.zarr"))  # keep, never lose
        n_before = 0
    if n_before:
        done = set(int(s) for s in xr.open_zarr(store, consolidated=False)["sample"].values[:n_before])
    if retry_failed and failures.exists():  # keep the old record, retry its samples
        failures.rename(failures.with_name(f"failures-{time.strftime('%Y%m%dT%H%M%S')}.jsonl"))
    failed_before = _failed_samples(failures)
    todo = [i for i in range(len(plan)) if i not in done and i not in failed_before]
    result = EnsembleResult(store, len(plan), len(done))
    if progress:
        progress(len(done) + len(failed_before), len(plan))
    if not todo:
        return result

    sim_cls = load(simulator)
    par_units = {p.name: p.unit for p in sim_cls.parameters if p.name in plan.parameter_names}
    par_units = {k: par_units.get(k, "") for k in plan.parameter_names}
    cond_decl = {c.name: c.unit for c in sim_cls.conditions}
    cond_units = {k: cond_decl.get(k, "") for k in plan.condition_names}
    base_attrs = {"simulator": simulator, "options": json.dumps(options, sort_keys=True, default=str),
                  "parameter_units": json.dumps(par_units), "condition_units": json.dumps(cond_units),
                  **(attrs or {})}

    own, own_client = None, client is None
    if client is None:  # never the global default client: later dask work in this process stays local
        if cluster == "local":
            own = local_cluster(workers, threads_per_worker)
            client = Client(own, set_as_default=False)
        else:
            client = Client(cluster, timeout="30s", set_as_default=False)
    n_committed = n_before
    buffer: list[xr.Dataset] = []
    last_commit = time.perf_counter()

    def commit():  # one append + count update for everything buffered (xarray rewrites attrs on append)
        nonlocal n_committed, last_commit
        if buffer:
            ds = xr.concat(buffer, dim="sample") if len(buffer) > 1 else buffer[0]
            ds.attrs.update(base_attrs, n_committed=n_committed)  # the old count stays until the data are in
            _write(ds, store, mode="a" if n_committed else "w-")
            n_committed += len(buffer)
            _set_committed(store, n_committed)
            buffer.clear()
        last_commit = time.perf_counter()

    try:
        size = max(int(batch_size), 1)
        chunks = [todo[a:a + size] for a in range(0, len(todo), size)]
        futures = {client.submit(run_chunk, simulator, options, [(i, *plan.sample(i)) for i in chunk], timeout,
                                 mpi_ranks, key=f"sim-{simulator}-{chunk[0]}-{len(chunk)}-{uuid.uuid4().hex[:8]}",
                                 pure=False, retries=2): chunk
                   for chunk in chunks}
        with failures.open("a") as flog:
            for fut in as_completed(futures, loop=client.loop):
                chunk = futures.pop(fut)
                try:
                    outs = fut.result()
                except Exception as err:  # noqa: BLE001 — e.g. a worker lost more often than retries allow
                    outs = [(i, {"ok": False, "error": f"{type(err).__name__}: {err}",
                                 "traceback": traceback.format_exc(), "wall_time": float("nan")}) for i in chunk]
                fut.release()
                for i, out in outs:
                    theta, cond = plan.sample(i)
                    if out["ok"]:
                        buffer.append(_as_sample(out["dataset"], i, theta, cond, out["wall_time"], par_units,
                                                 cond_units))
                        result.computed.append(i)
                        if time.perf_counter() - last_commit >= commit_interval or len(buffer) >= SAMPLE_CHUNK:
                            commit()
                    else:
                        flog.write(json.dumps({"sample": i, "theta": theta, "condition": cond, "error": out["error"],
                                               "traceback": out["traceback"], "wall_time": out["wall_time"],
                                               "time": time.strftime("%Y-%m-%dT%H:%M:%S")}) + "\n")
                        flog.flush()
                        result.failed.append(i)
                    if progress:
                        progress(len(done) + len(result.computed) + len(result.failed) + len(failed_before),
                                 len(plan))
    finally:
        commit()  # also on Ctrl-C or an error: finished samples are kept
        if own_client:
            client.close()
        if own is not None:
            own.close()
    result.wall_time = time.perf_counter() - t0
    return result
