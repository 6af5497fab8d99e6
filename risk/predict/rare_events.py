"""Small thermal-runaway probabilities (down to ~1e-7) by subset simulation and importance sampling.

Everything is posed in standard normal space ξ ∈ R^d with a vectorised *limit state*
``g(ξ) (n, d) → (n,)``; the failure event is ``g(ξ) ≤ 0`` and ``p = P(g(ξ) ≤ 0)``.

`tr_limit_state` turns the surrogate's outcome head into such a limit state: a new cell is
``u = μ + L ξ_{1:}`` and its runaway is the latent event ``logit_runaway(u, c) + ε > 0`` with logistic
noise ``ε = logit Φ(ξ_0)``, so that ``P(g ≤ 0) = E_cell[sigmoid(logit_runaway)]`` exactly.

Estimators (OpenTURNS 1.27 implementations):
- `subset_simulation`: ``ot.SubsetSampling`` (Au & Beck 2001), conditional probability ``p0``;
- `importance_sampling`: FORM design point (``ot.FORM`` with Cobyla) then
  ``ot.ProbabilitySimulationAlgorithm`` with ``ot.ImportanceSamplingExperiment`` centred on it;
- `crude_monte_carlo`: plain MC, the cross-check for p ≥ 1e-4.
Every result counts the limit-state evaluations actually made (``calls``).

Epistemic uncertainty (`posterior_rare_event`): the probability of a new cell depends on the posterior
draw s of the population (location μ^s, cell-to-cell factor L^s, sim-to-real link), so each of a thinned
set of draws gets its own limit state ``g_s`` (`new_cell_limit_states`: the new cell of
`risk.predict.scenarios.new_cell_p_tr`) and its own subset simulation; the median and the 5 / 95 %
quantiles of the per-draw ``p_s`` are the point value and the 90 % credible interval (the plug-in value
at posterior-mean parameters is not a posterior quantity: for a convex tail it sits below the mean).
`check_failure_samples` re-runs failure-region cells with the full simulator and reports the confirmed
fraction with its Wilson 95 % interval (Wilson 1927; Brown, Cai & DasGupta 2001, Stat. Sci. 16, 101).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import openturns as ot
from scipy import stats

LimitState = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class RareEventResult:
    """Estimate ``p`` [1] with its coefficient of variation ``cov`` [1] and ``calls`` of g."""

    method: str
    p: float
    cov: float
    calls: int
    failure_samples: np.ndarray | None = field(default=None, repr=False, compare=False)
    """``(n, dim)`` samples ξ in the failure region (subset simulation's last level), if kept."""

    def as_dict(self) -> dict:
        return {"method": self.method, "p": self.p, "cov": self.cov, "calls": self.calls}


class _Counted:
    """Vectorised limit state wrapped for OpenTURNS, counting evaluations."""

    def __init__(self, g: LimitState, dim: int):
        self.g, self.dim, self.calls = g, dim, 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(np.asarray(x, dtype=float))
        self.calls += x.shape[0]
        return np.asarray(self.g(x), dtype=float).reshape(-1, 1)

    def event(self) -> ot.ThresholdEvent:
        f = ot.PythonFunction(self.dim, 1, func_sample=self)
        y = ot.CompositeRandomVector(f, ot.RandomVector(ot.Normal(self.dim)))
        return ot.ThresholdEvent(y, ot.LessOrEqual(), 0.0)


def subset_simulation(g: LimitState, dim: int, *, seed: int, n_per_level: int = 2000, p0: float = 0.1
                      ) -> RareEventResult:
    """Subset simulation of ``P(g(ξ) ≤ 0)``, ξ ~ N(0, I_dim).

    Parameters
    ----------
    g : vectorised limit state ``(n, dim) → (n,)``.
    dim : dimension of ξ.
    seed : OpenTURNS RNG seed.
    n_per_level : samples per subset level; cost ≈ ``n_per_level · (levels)``, levels ≈
        ``log(p)/log(p0) + 1``.
    p0 : conditional probability of each level.
    """
    ot.RandomGenerator.SetSeed(int(seed))
    fn = _Counted(g, dim)
    algo = ot.SubsetSampling(fn.event())
    # n_per_level points per level in 10 blocks: g is called on blocks (batched decoder calls) instead of once
    # per point. Measured with OpenTURNS 1.27: any outer × block split with outer > 1 returns exactly the
    # estimate of block size 1 (same seed); outer = 1 changes the algorithm (biased low by ~0.6 at p = 1e-6)
    outer = 10 if n_per_level % 10 == 0 and n_per_level >= 20 else int(n_per_level)
    algo.setMaximumOuterSampling(outer)
    algo.setBlockSize(int(n_per_level) // outer)
    algo.setConditionalProbability(p0)
    algo.setKeepSample(True)
    try:
        algo.run()
    except (TypeError, RuntimeError) as err:  # OpenTURNS InvalidArgumentException (seen: "The variance estimate
        # must be >= 0" on a limit state that is flat over a level, e.g. cells clipped to the design box)
        return crude_monte_carlo(g, dim, seed=seed, n_samples=10 * int(n_per_level), batch=1000,
                                 why=f"subset simulation failed: {str(err).splitlines()[0][:120]}")
    r = algo.getResult()
    last = algo.getStepsNumber() - 1
    failures = np.asarray(algo.getInputSample(last, ot.SubsetSampling.EVENT1)) if last >= 0 else None
    return RareEventResult("subset_simulation", float(r.getProbabilityEstimate()),
                           float(r.getCoefficientOfVariation()), fn.calls, failures)


def importance_sampling(g: LimitState, dim: int, *, seed: int, n_samples: int = 4000,
                        max_form_evaluations: int = 2000) -> RareEventResult:
    """FORM design point, then importance sampling from ``N(ξ*, I)``.

    Parameters
    ----------
    g, dim, seed : as in `subset_simulation`.
    n_samples : importance samples after FORM.
    max_form_evaluations : budget of the Cobyla design-point search.
    """
    ot.RandomGenerator.SetSeed(int(seed))
    fn = _Counted(g, dim)
    event = fn.event()
    solver = ot.Cobyla()
    solver.setMaximumCallsNumber(int(max_form_evaluations))
    solver.setStartingPoint(ot.Point(dim, 0.0))
    form = ot.FORM(solver, event)
    form.run()
    xstar = form.getResult().getStandardSpaceDesignPoint()
    experiment = ot.ImportanceSamplingExperiment(ot.Normal(xstar, ot.CovarianceMatrix(dim)))
    algo = ot.ProbabilitySimulationAlgorithm(event, experiment)
    algo.setMaximumOuterSampling(1)
    algo.setBlockSize(int(n_samples))
    algo.setMaximumCoefficientOfVariation(-1.0)
    algo.run()
    r = algo.getResult()
    return RareEventResult("importance_sampling", float(r.getProbabilityEstimate()),
                           float(r.getCoefficientOfVariation()), fn.calls)


def crude_monte_carlo(g: LimitState, dim: int, *, seed: int, n_samples: int = 10**6,
                      batch: int = 10**5, why: str = "") -> RareEventResult:
    """Plain Monte Carlo (the reference for p ≥ 1e-4, and the fallback where subset simulation fails: ``why``
    goes into the method name); ``cov = sqrt((1-p)/(n p))``; keeps up to ``batch`` failure samples ξ."""
    rng = np.random.default_rng(seed)
    hits, done, failures = 0, 0, []
    while done < n_samples:
        m = min(batch, n_samples - done)
        xi = rng.standard_normal((m, dim))
        fail = np.asarray(g(xi), dtype=float).reshape(-1) <= 0
        hits += int(fail.sum())
        if sum(len(f) for f in failures) < batch:
            failures.append(xi[fail])
        done += m
    p = hits / n_samples
    cov = float(np.sqrt((1 - p) / (n_samples * p))) if hits else float("inf")
    return RareEventResult("crude_monte_carlo" + (f" ({why})" if why else ""), p, cov, n_samples,
                           np.concatenate(failures)[:batch] if hits else None)


def tr_limit_state(logit_fn: Callable[[np.ndarray], np.ndarray], mu: np.ndarray, chol: np.ndarray) -> LimitState:
    """Limit state of thermal runaway of a new cell (see module doc); dimension ``1 + n_param``.

    Parameters
    ----------
    logit_fn : ``u (n, n_param) → logit_runaway (n,)`` at fixed conditions (e.g. the decoder's
        ``jax_apply`` with ``c`` bound, or a posterior-mean surrogate).
    mu : ``(n_param,)`` family location in ``u`` space; chol : ``(n_param, n_param)`` cell-to-cell
        Cholesky factor.
    """
    mu, chol = np.asarray(mu, dtype=float), np.asarray(chol, dtype=float)

    def g(xi: np.ndarray) -> np.ndarray:
        eps = stats.norm.logcdf(xi[:, 0]) - stats.norm.logcdf(-xi[:, 0])  # logit Φ(ξ0), stable in the tails
        u = mu + xi[:, 1:] @ chol.T
        return -(np.asarray(logit_fn(u), dtype=float) + eps)

    return g


def posterior_rare_event(limit_states: Sequence[tuple[LimitState, int]], *, seed: int, n_per_level: int = 1000,
                         p0: float = 0.1, interval: float = 0.90) -> dict:
    """Rare-event probability over posterior draws: one subset simulation per draw.

    Parameters
    ----------
    limit_states : per posterior draw s, ``(g_s, dim_s)`` (e.g. `tr_limit_state` at the draw's location,
        cell-to-cell factor and link); a thinned, evenly spaced set of draws (20–50 suffices for a 90 %
        interval: its quantiles are order statistics of that many draws).
    seed : draw s uses ``seed + s``.
    n_per_level, p0 : as in `subset_simulation`.
    interval : central credible mass reported (0.90 → ``p_q05``, ``p_q95``).

    Returns
    -------
    ``{"method", "n_draws", "p_median", "p_mean", "p_q05", "p_q95", "calls", "per_draw": {"p", "cov"},
    "failure_samples"}``: ``p_*`` [1] over the draws' estimates (``p_mean`` estimates the posterior
    predictive probability E_post[p_s]); ``failure_samples`` is a list of each draw's last-level failure
    samples ξ (not JSON; pop it before writing). The per-draw estimator noise (``per_draw.cov``) widens the
    interval slightly; it is reported so a reader can see it is small against the spread over draws.
    """
    if not limit_states:
        raise ValueError("posterior_rare_event needs at least one posterior draw's limit state")
    results = [subset_simulation(g, dim, seed=seed + s, n_per_level=n_per_level, p0=p0)
               for s, (g, dim) in enumerate(limit_states)]
    p = np.array([r.p for r in results])
    lo, hi = (1 - interval) / 2, 1 - (1 - interval) / 2
    return {"method": f"subset simulation per posterior draw (OpenTURNS SubsetSampling, p0={p0}, "
                      f"{n_per_level} samples per level)",
            "n_draws": int(len(p)), "p_median": float(np.median(p)), "p_mean": float(p.mean()),
            f"p_q{round(lo * 100):02d}": float(np.quantile(p, lo)),
            f"p_q{round(hi * 100):02d}": float(np.quantile(p, hi)),
            "calls": int(sum(r.calls for r in results)),
            "per_draw": {"p": p.tolist(), "cov": [r.cov for r in results], "method": [r.method for r in results]},
            "failure_samples": [r.failure_samples for r in results]}


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``k / n`` (Wilson 1927, JASA 22, 209; recommended
    over the Wald interval for small n and k near 0 or n by Brown, Cai & DasGupta 2001, Stat. Sci. 16, 101).

    Uses `scipy.stats.binomtest(k, n).proportion_ci(method="wilson")`; ``(nan, nan)`` for ``n = 0``.

    >>> [round(x, 4) for x in wilson_interval(0, 50)]
    [0.0, 0.0713]
    """
    if n <= 0:
        return float("nan"), float("nan")
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


@dataclass(frozen=True)
class _TimedRun:
    """``simulate(u)`` → ``(outcome or None, error or None, seconds)``; picklable when ``simulate`` is, so that
    worker processes can run it."""

    simulate: Callable[[np.ndarray], bool]

    def __call__(self, u: np.ndarray) -> tuple[bool | None, str | None, float]:
        t0 = time.perf_counter()
        try:
            return bool(self.simulate(u)), None, time.perf_counter() - t0
        except Exception as err:  # noqa: BLE001 — a failed simulation is recorded, not fatal
            return None, f"{type(err).__name__}: {err}"[:500], time.perf_counter() - t0


#: one cell's run: ``(outcome or None, error or None, seconds)``
RunResult = tuple[bool | None, str | None, float]


@dataclass(frozen=True)
class _TimedBatch:
    """``simulate_batch(us (k, n_param))`` → ``k`` `RunResult`s (a batched simulator run that records its own failed
    cells, e.g. through `simulators.ensemble.run_chunk`); a batch that raises is recorded as failed for every cell.
    Picklable when ``simulate_batch`` is."""

    simulate_batch: Callable[[np.ndarray], list[RunResult]]

    def __call__(self, us: np.ndarray) -> list[RunResult]:
        t0 = time.perf_counter()
        try:
            out = list(self.simulate_batch(us))
            if len(out) != len(us):
                raise RuntimeError(f"{len(out)} results for a batch of {len(us)} cells")
            return out
        except Exception as err:  # noqa: BLE001 — a failed simulation is recorded, not fatal
            share = (time.perf_counter() - t0) / max(len(us), 1)
            return [(None, f"{type(err).__name__}: {err}"[:500], share)] * len(us)


def run_jobs(jobs: Sequence[tuple[Callable, np.ndarray]]) -> list[RunResult]:
    """Run ``[(runner, cells), ...]`` here, one after another; a `_TimedRun` takes one cell ``(n_param,)``, a
    `_TimedBatch` a chunk ``(k, n_param)``; the results flattened in job order."""
    return [r for run, us in jobs for r in _run_job(run, us)]


def _run_job(run, us) -> list[RunResult]:
    return run(us) if isinstance(run, _TimedBatch) else [run(us)]


def chunked(cells: np.ndarray, batch_size: int, workers: int) -> list[np.ndarray]:
    """``cells`` ``(m, n_param)`` split into contiguous chunks of at most ``batch_size``, their number a multiple of
    ``workers`` where that keeps every chunk non-empty (equal shares for the workers)."""
    cells = np.asarray(cells, float)
    n_chunks = int(np.ceil(len(cells) / max(batch_size, 1)))
    n_chunks = min(len(cells), int(np.ceil(n_chunks / max(workers, 1))) * max(workers, 1))
    return [c for c in np.array_split(cells, max(n_chunks, 1)) if len(c)]


def check_failure_samples(u: np.ndarray, surrogate_p: Callable[[np.ndarray], np.ndarray],
                          simulate: Callable[[np.ndarray], bool], *, n: int, seed: int, workers: int = 1,
                          simulate_batch: Callable[[np.ndarray], list[RunResult]] | None = None,
                          batch_size: int = 16) -> dict:
    """Re-run failure-region cells with the full simulator: the fraction it confirms, with a Wilson 95 %
    interval, against what the surrogate expects at the same cells.

    Parameters
    ----------
    u : ``(m, n_param)`` cells (``u`` space) of the failure region, e.g. the last subset-simulation level
        mapped through ``u = μ + L ξ_{1:}``.
    surrogate_p : ``u (k, n_param) → P(TR)`` of the surrogate (the decoder's own head, no sim-to-real
        link: it models the simulator).
    simulate : ``u (n_param,) → runaway?`` with the full simulator; an exception is a failed run,
        recorded and left out of the fraction (never fatal).
    n : cells to re-run (drawn without replacement; all of them if fewer).
    workers : runs at once in spawned processes (``simulate`` must then be picklable: a module-level function or
        a `functools.partial` of one); 1 runs them here, one after another.
    simulate_batch : optional ``us (k, n_param) → k`` `RunResult`s, the same simulations run as one batch (a
        simulator's vectorised `run_batch`, the same results; `risk.stages._simulated_runaways`); the cells then
        run in chunks of at most ``batch_size`` (`chunked`).

    Returns
    -------
    ``{"n", "n_completed", "n_failed_runs", "confirmed", "fraction", "wilson95": [lo, hi],
    "surrogate_p_mean", "surrogate_expected_confirmed", "surrogate_z", "surrogate_within_wilson95",
    "seconds_per_run_median", "seconds_total", "failed_runs": [{"u", "error"}]}``.
    A cell is in the failure region through its parameters *and* the logistic noise ξ_0, so the simulator
    is not expected to run away at every one: if the surrogate is right there, the number confirmed is
    Poisson-binomial with mean ``Σ p_i`` (``surrogate_expected_confirmed``) and the standardised
    difference ``surrogate_z = (confirmed − Σ p_i) / sqrt(Σ p_i (1 − p_i))`` is ~N(0, 1); |z| > 3 says
    the surrogate is wrong in the failure region.
    """
    u = np.asarray(u, dtype=float)
    if u.ndim != 2 or not len(u) or n <= 0:
        return {"n": 0, "note": "no failure-region samples to check"}
    rng = np.random.default_rng(seed)
    pick = u[rng.choice(len(u), size=min(n, len(u)), replace=False)]
    if simulate_batch is not None:
        jobs = [(_TimedBatch(simulate_batch), c) for c in chunked(pick, batch_size, workers)]
    else:
        jobs = [(_TimedRun(simulate), ui) for ui in pick]
    if workers > 1 and len(jobs) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=multiprocessing.get_context("spawn")) as pool:
            results = [r for rs in pool.map(_run_job, *zip(*jobs)) for r in rs]
    else:
        results = run_jobs(jobs)
    outcomes = [o for o, _, _ in results]
    seconds = [t for _, _, t in results]
    failed = [{"u": ui.tolist(), "error": e} for ui, (_, e, _) in zip(pick, results) if e is not None]
    ok = np.array([o is not None for o in outcomes])
    n_ok, confirmed = int(ok.sum()), int(sum(bool(o) for o in outcomes if o is not None))
    lo, hi = wilson_interval(confirmed, n_ok)
    out = {"n": int(len(pick)), "n_completed": n_ok, "n_failed_runs": int((~ok).sum()), "confirmed": confirmed,
           "fraction": confirmed / n_ok if n_ok else float("nan"), "wilson95": [lo, hi],
           "seconds_per_run_median": float(np.median(seconds)), "seconds_total": float(np.sum(seconds)),
           "failed_runs": failed}
    if n_ok:
        p = np.clip(np.asarray(surrogate_p(pick[ok]), dtype=float).ravel(), 0.0, 1.0)
        sd = float(np.sqrt(np.sum(p * (1 - p))))
        out.update(surrogate_p_mean=float(p.mean()), surrogate_expected_confirmed=float(p.sum()),
                   surrogate_z=float((confirmed - p.sum()) / sd) if sd > 0 else (0.0 if confirmed == p.sum() else
                                                                                 float("inf")),
                   surrogate_within_wilson95=bool(lo <= p.mean() <= hi))
    return out


@dataclass(frozen=True)
class DrawLimitState:
    """The new-cell limit state of one posterior draw: ``u = location + factor · ξ_{1:}``, runaway iff
    ``shift + scale · logit_runaway(u, c) + logit Φ(ξ_0) > 0``."""

    draw: int
    location: np.ndarray
    factor: np.ndarray
    shift: float
    scale: float
    g: LimitState = field(repr=False, compare=False)

    @property
    def dim(self) -> int:
        return 1 + self.factor.shape[1]

    def cells(self, xi: np.ndarray) -> np.ndarray:
        """``u (m, n_param)`` of failure samples ``ξ (m, dim)``."""
        return self.location + np.asarray(xi, float)[:, 1:] @ self.factor.T


def new_cell_limit_states(tree, logit_fn: Callable[[np.ndarray, np.ndarray], np.ndarray], scenario, *,
                          n_draws: int, seed: int) -> list[DrawLimitState]:
    """Per posterior draw (``n_draws`` evenly spaced), the limit state of a new cell of ``scenario``.

    The same new cell as `risk.predict.scenarios.new_cell_p_tr`, so ``P(g_s ≤ 0)`` is that draw's
    ``p_tr_draws`` value: a calibrated family sits at ``mu_family^s``; an unseen family at
    ``mu_pop^s + slope^s x`` with its family-to-family spread as extra standard normal coordinates
    (factor ``[family_chol^s, cell_chol^s]``); the directions the data do not inform stay at the subspace's
    anchor, as in the fit; the draw's sim-to-real link acts on the logit.

    Parameters
    ----------
    tree : physics posterior (`risk.bayes.physics`).
    logit_fn : ``(u (..., n_param), c (..., n_cond)) → logit_runaway (...)`` of the decoder.
    scenario : `risk.predict.scenarios.Scenario`.
    n_draws : posterior draws kept (evenly spaced over the stacked chains).
    seed : seed of an unseen family's draws (its runaway-logit offset and scale).
    """
    from risk.bayes.physics import family_logit_offsets, link_scales, reference_shift
    from risk.bayes.sampling import stack_draws
    from risk.predict.scenarios import (clip_to_design, family_slope_draws, link_draws,
                                        population_shift)

    mu_f, mu_pop, chol = stack_draws(tree, "mu_family"), stack_draws(tree, "mu_pop"), stack_draws(tree, "cell_chol")
    fam_chol = (stack_draws(tree, "family_chol") if "family_chol" in tree["posterior"]
                else np.einsum("pq,sq->spq", np.eye(mu_pop.shape[1]), stack_draws(tree, "tau_family")))
    shift, _ = link_draws(tree)
    c = np.asarray(scenario.conditions, dtype=float)
    families = [str(f) for f in tree["posterior"]["family"].values]
    keep = np.linspace(0, len(mu_pop) - 1, min(int(n_draws), len(mu_pop))).astype(int)
    rng = np.random.default_rng(seed)
    # the runaway logit's family discrepancy (a known family's, else one draw per posterior draw): part of the shift
    shift = shift[keep] + family_logit_offsets(tree, keep, [scenario.cell_family], c[None], rng)[:, 0]
    scale = link_scales(tree, keep, [scenario.cell_family], rng)[:, 0]  # the family's sim-to-real scale
    if scenario.cell_family in families:
        loc = mu_f[keep, families.index(scenario.cell_family)]
        factor = chol[keep]
    else:
        loc = mu_pop[keep] + population_shift(tree, family_slope_draws(tree)[keep], c[None])[:, 0]
        factor = np.concatenate([fam_chol[keep], chol[keep]], axis=2)
    # per-family scales about the family's reference point (risk.bayes.physics.reference_shift); an unseen family's
    # own location is part of the limit state's coordinates, its reference point the population centre
    shift = shift + reference_shift(tree, keep, scale[:, None], clip_to_design(tree, loc)[:, None, :], c[None],
                                    logit_fn)[:, 0]
    out = []
    for j, s in enumerate(keep):
        a, b = float(shift[j]), float(scale[j])

        def logit(u, a=a, b=b):
            u = clip_to_design(tree, np.asarray(u, float))
            return a + b * np.asarray(logit_fn(u, np.broadcast_to(c, (len(u), len(c)))), dtype=float)

        location = loc[j]
        out.append(DrawLimitState(int(s), location, factor[j], a, b, tr_limit_state(logit, location, factor[j])))
    return out
