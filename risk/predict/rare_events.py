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
"""
from __future__ import annotations

from collections.abc import Callable
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
    algo.setMaximumOuterSampling(int(n_per_level))
    algo.setBlockSize(1)
    algo.setConditionalProbability(p0)
    algo.setKeepSample(True)
    algo.run()
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
                      batch: int = 10**5) -> RareEventResult:
    """Plain Monte Carlo (the reference for p ≥ 1e-4); ``cov = sqrt((1-p)/(n p))``."""
    rng = np.random.default_rng(seed)
    hits, done = 0, 0
    while done < n_samples:
        m = min(batch, n_samples - done)
        hits += int(np.sum(np.asarray(g(rng.standard_normal((m, dim)))) <= 0))
        done += m
    p = hits / n_samples
    cov = float(np.sqrt((1 - p) / (n_samples * p))) if hits else float("inf")
    return RareEventResult("crude_monte_carlo", p, cov, n_samples)


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


def check_failure_samples(xi: np.ndarray, mu: np.ndarray, chol: np.ndarray,
                          surrogate_p: Callable[[np.ndarray], np.ndarray],
                          simulate: Callable[[np.ndarray], bool | None], *, n: int, seed: int) -> dict:
    """Re-run failure-region samples with the full simulator and compare with the surrogate.

    Parameters
    ----------
    xi : ``(m, 1 + n_param)`` failure samples of `tr_limit_state` (ξ_0 is the logistic noise).
    mu, chol : as in `tr_limit_state`; the cell is ``u = μ + L ξ_{1:}``.
    surrogate_p : ``u (k, n_param) → P(TR)`` of the surrogate.
    simulate : ``u (n_param,) → runaway?`` with the full simulator (None when the run failed).
    n : samples to re-run (drawn without replacement).

    Returns ``{"n_runs", "n_failed_runs", "simulator_runaway_fraction", "surrogate_p_mean", "agreement"}``:
    the surrogate's mean P(TR) at those cells against the fraction of them the simulator runs away
    (equal in expectation when the surrogate is right in the failure region).
    """
    xi = np.asarray(xi, dtype=float)
    if xi.ndim != 2 or not len(xi) or n <= 0:
        return {"n_runs": 0, "note": "no failure-region samples to check"}
    rng = np.random.default_rng(seed)
    pick = xi[rng.choice(len(xi), size=min(n, len(xi)), replace=False)]
    u = np.asarray(mu, float) + pick[:, 1:] @ np.asarray(chol, float).T
    outcomes = [simulate(ui) for ui in u]
    ok = np.array([o is not None for o in outcomes])
    sim_frac = float(np.mean([bool(o) for o in outcomes if o is not None])) if ok.any() else float("nan")
    sur = float(np.mean(surrogate_p(u[ok]))) if ok.any() else float("nan")
    return {"n_runs": int(len(u)), "n_failed_runs": int((~ok).sum()), "simulator_runaway_fraction": sim_frac,
            "surrogate_p_mean": sur, "agreement": float(1.0 - abs(sim_frac - sur)) if ok.any() else float("nan")}
