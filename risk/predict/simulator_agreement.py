"""Does the full simulator agree with its decoder where each scenario's calibrated cells live?

The scenarios' P(TR) is computed through the decoder (a neural emulator of the simulator trained on an
ensemble spread over the prior). Calibration moves the cells to where the decoder explains the real tests,
which may be where the decoder is least accurate (an emulator is exploited by the inference that uses it:
Kennedy & O'Hagan, JRSS B 63 (2001) 425, §4; the motivation of sequential rounds, Greenberg, Nonnenmacher &
Macke, ICML 2019). This check re-runs the study's full simulator at ``n`` new cells of every scenario — one
per retained posterior draw, drawn as `risk.bayes.physics` `_new_cells` draws the cells behind P(TR) — and
sets the fraction that runs away (Wilson 95 % interval) beside the decoder's own P(runaway) at the same
cells (no sim-to-real link: it models the simulator). When the decoder's mean lies outside the interval,
the decoder misrepresents its simulator at that scenario, and the study's ``sim2real.rounds`` (simulations
at the posterior, `risk.rounds`) is the remedy the report names.
"""
from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import xarray as xr

from risk.predict.rare_events import RunResult, _run_job, _TimedBatch, _TimedRun, chunked, run_jobs, wilson_interval


def scenario_cells(tree: xr.DataTree, scenarios: Sequence, n: int, *, seed: int) -> list[np.ndarray]:
    """``n`` new cells ``(n, n_param)`` [u] per scenario: one per posterior draw, draws evenly spaced over the
    stacked chains (`risk.bayes.physics._new_cells`, the cells behind the scenarios' P(TR))."""
    from risk.bayes.physics import _new_cells

    rng = np.random.default_rng(seed)
    out = []
    for sc in scenarios:
        u, _, _ = _new_cells(tree, [sc.cell_family], np.asarray(sc.conditions, float)[None], rng=rng, n_cells=1,
                             max_draws=n)
        out.append(u[:, 0, 0, :])
    return out


class ScenarioCheck:
    """The full-simulator runs of `check_scenarios`, started at construction in ``workers`` spawned processes (or
    run here with ``workers ≤ 1``) so that the caller can compute meanwhile; `result` waits and tabulates."""

    def __init__(self, cells: Sequence[np.ndarray], decoder_p: Sequence[np.ndarray],
                 simulators: Sequence[Callable[[np.ndarray], bool]], *, workers: int = 1, note: str = "",
                 batch_simulators: Sequence[Callable[[np.ndarray], list[RunResult]]] | None = None,
                 batch_size: int = 16):
        import time

        self.note = note
        self.cells, self.decoder_p = [np.asarray(c, float) for c in cells], list(decoder_p)
        if batch_simulators is not None:  # chunks of a scenario's cells through the simulator's vectorised path
            jobs = [(_TimedBatch(bsim), c) for bsim, us in zip(batch_simulators, self.cells) if len(us)
                    for c in chunked(us, batch_size, 1)]
        else:
            jobs = [(_TimedRun(sim), u) for sim, us in zip(simulators, self.cells) for u in us]
        self._t0 = time.perf_counter()
        self._pool = None
        if workers > 1 and len(jobs) > 1:
            self._pool = ProcessPoolExecutor(min(workers, len(jobs)), mp_context=multiprocessing.get_context("spawn"))
            self._futures = [self._pool.submit(_run_job, run, u) for run, u in jobs]
        else:
            self._jobs = jobs

    def result(self) -> xr.Dataset:
        """The comparison (see `check_scenarios`)."""
        import time

        if self._pool is not None:
            try:
                results = [r for f in self._futures for r in f.result()]
            finally:
                self._pool.shutdown()
        else:
            results = run_jobs(self._jobs)
        ds = _tabulate(self.cells, self.decoder_p, results, time.perf_counter() - self._t0)
        if self.note:
            ds.attrs["simulator_check"] = self.note
        return ds


def check_scenarios(cells: Sequence[np.ndarray], decoder_p: Sequence[np.ndarray],
                    simulators: Sequence[Callable[[np.ndarray], bool]], *, workers: int = 1,
                    batch_simulators: Sequence[Callable[[np.ndarray], list[RunResult]]] | None = None,
                    batch_size: int = 16) -> xr.Dataset:
    """Run the full simulator at every scenario's cells and compare with the decoder.

    Parameters
    ----------
    cells : per scenario ``(n_k, n_param)`` cells [u].
    decoder_p : per scenario ``(n_k,)`` the decoder's P(runaway) at those cells [1].
    simulators : per scenario ``u (n_param,) → runaway?`` with the full simulator under the scenario's
        conditions; an exception is a failed run, recorded in ``simulator_runs_failed`` and left out (never fatal).
        Picklable (a module-level function or `functools.partial` of one) when ``workers > 1``.
    workers : simulations at once (spawned processes).
    batch_simulators : optional, per scenario ``us (k, n_param) → k`` `risk.predict.rare_events.RunResult`s: the
        same simulations as one batch (the simulator's vectorised `run_batch`), a scenario's cells in chunks of at
        most ``batch_size``; ``simulators`` are then unused.

    Returns
    -------
    Dataset over ``scenario`` (positional, as given): ``simulator_runs``, ``simulator_runs_failed``,
    ``simulator_runaway_fraction`` with ``simulator_runaway_wilson_lo``/``_hi`` (95 %), ``decoder_runaway_p``
    (mean over the completed runs' cells), ``decoder_within_wilson`` (1/0), ``seconds_total`` (attr).
    """
    return ScenarioCheck(cells, decoder_p, simulators, workers=workers, batch_simulators=batch_simulators,
                         batch_size=batch_size).result()


def _tabulate(cells, decoder_p, results, seconds: float) -> xr.Dataset:
    rows, start = [], 0
    for us, p in zip(cells, decoder_p):
        res = results[start:start + len(us)]
        start += len(us)
        done = np.array([o is not None for o, _, _ in res], bool)
        k, n = int(sum(bool(o) for o, _, _ in res if o is not None)), int(done.sum())
        lo, hi = wilson_interval(k, n)
        p_dec = float(np.mean(np.asarray(p, float)[done])) if n else float("nan")
        rows.append((n, int((~done).sum()), k / n if n else float("nan"), lo, hi, p_dec,
                     float(lo <= p_dec <= hi) if n else float("nan")))
    cols = np.array(rows, float).T if rows else np.zeros((7, 0))
    spec = [("simulator_runs", "1", "full-simulator runs completed at new cells of the scenario"),
            ("simulator_runs_failed", "1", "full-simulator runs that failed (recorded, left out)"),
            ("simulator_runaway_fraction", "1", "fraction of those runs that ran away (the simulator's P(runaway))"),
            ("simulator_runaway_wilson_lo", "1", "Wilson 95 % interval of the runaway fraction, lower end"),
            ("simulator_runaway_wilson_hi", "1", "Wilson 95 % interval of the runaway fraction, upper end"),
            ("decoder_runaway_p", "1", "the decoder's P(runaway) at the same cells (no sim-to-real link)"),
            ("decoder_within_wilson", "1", "1 if the decoder's P(runaway) lies in the simulator's Wilson 95 % interval")]
    ds = xr.Dataset({name: ("scenario", col, {"units": unit, "long_name": long})
                     for (name, unit, long), col in zip(spec, cols)})
    ds.attrs["simulator_check_seconds"] = seconds
    return ds
