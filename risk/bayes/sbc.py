"""Simulation-based calibration (SBC) of the whole hierarchical physics model.

SBC (Talts, Betancourt, Simpson, Vehtari, Gelman, "Validating Bayesian inference algorithms with
simulation-based calibration", arXiv:1804.06788, 2018; Cook, Gelman, Rubin, JCGS 15 (2006) 675) checks
a model *and* its sampler together: draw ``θ̃ ~ p(θ)`` and ``ỹ ~ p(y | θ̃)`` from the model itself, fit
``p(θ | ỹ)``, and count how many of ``L`` (roughly independent) posterior draws fall below ``θ̃``. If
inference is exact the rank is uniform on ``{0, …, L}`` for every scalar parameter; a bias shows as a
slope, over-confidence (too narrow posteriors) as a U, under-confidence as a hump.

Here the model is `risk.bayes.model.build_hierarchical_model` with any surrogate with the
``FrozenDecoder.pytensor_apply`` signature — a real frozen decoder in practice — so the run covers
the decoder as likelihood, the data-informed subspace ``u = anchor + basis · a``, the sim-to-real
``link_scale``, the ordinal hazard-level likelihood with its cutpoints, the Bernoulli runaway of tests
without a level, the Gamma discrepancy, and (optionally) censored observables.

Pipeline (`run_sbc`)
    1. `simulate_datasets`: ``pm.sample_prior_predictive`` of the model built on a *template*
       `CalibrationData` (its families, conditions, which entries are observed and which tests have a
       hazard level or only a runaway flag) gives ``R`` true parameter sets and datasets; the template's
       observed values are replaced by the draws. Optional Type-II censoring (`censor_top`, below).
    2. `fit_replicates`: ``batch_size`` replicates per NumPyro NUTS run (the joint posterior of
       independent replicates factorises, so one run samples all of them; batching trades JAX
       compilations against the step size that the hardest replicate of a batch imposes on all of them),
       either nested ``name=f"r{k}"`` in one PyMC model (the calibrate stage's code path; the JAX graph
       grows with the batch) or as the model's own batched copies (``train_mask``, one graph).
    3. `rank_statistics`: ``L`` draws evenly spaced over the stacked chains (thinning), rank of the
       truth among them, per scalar component of the ranked parameters.
    4. `uniformity_pvalues`: Pearson χ² of the ranks in ``bins`` equal bins against uniform (with
       ``(L + 1) % bins == 0`` every bin holds the same number of rank values); Bonferroni adjustment
       ``min(1, m p)`` over the ``m`` ranked scalars.

Censoring
    The model treats a censored entry as ``P(Y > value)``. `censor_above` records a drawn value above a
    fixed ceiling as the ceiling (Type-I censoring, a saturating thermocouple), whose likelihood is exactly
    that. It makes the number of exact entries differ between replicates, and nested PyMC models share
    their coordinates (``observed_entry`` would clash), so with ``batching="nested"`` use `censor_top`:
    per observable, the ``m`` largest values of a replicate are censored at the largest value left
    (Type-II censoring); the density of that event, ``∏_uncensored f_i(y_i) · ∏_censored P(Y_j > y_(n−m))``,
    is again exactly the model's censored likelihood.

Units: ``u``/``a`` in the decoder's z-scored units, observables normalised (`sim2real.bridge`),
logits in logit units; ranks are counts ``0…L``; p-values are probabilities.
"""
from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
from scipy import stats

from risk.bayes.model import CalibrationData, Surrogate, build_hierarchical_model

#: free variables ranked by default (every scalar component of each)
PARAMETERS = ("a_pop", "tau_family", "cell_sd", "link_scale", "discrepancy", "cutpoints_gaps")


# ------------------------------------------------------------------------------------------ results
@dataclass(frozen=True)
class SBCResult:
    """Ranks and uniformity tests of one SBC run.

    Attributes
    ----------
    names : ``(m,)`` labels of the ranked scalars, e.g. ``"a_pop[d1]"``, ``"discrepancy[voltage_drop]"``.
    ranks : ``(R, m)`` int, rank of the truth among ``n_draws`` thinned posterior draws (``0…n_draws``).
    truth : ``(R, m)`` the prior draws that generated each replicate [model units].
    n_draws : ``L``, thinned posterior draws per replicate.
    bins : number of equal rank bins of the χ² test.
    p_values, p_adjusted : ``(m,)`` χ² p-values and their Bonferroni adjustment ``min(1, m p)``.
    level : a parameter passes when ``p_adjusted ≥ level``.
    ess_bulk : ``(R, m)`` bulk ESS of each replicate's full posterior (before thinning).
    r_hat : ``(R, m)`` rank-normalised split R-hat (Vehtari et al. 2021).
    divergences : ``(R,)`` divergent transitions of the NUTS run that sampled the replicate (the run
        is shared by a batch, so every replicate of a batch reports the batch's count).
    wall_time_s : seconds for prior predictive + all NUTS runs + ranking.
    settings : the run's settings (JSON-able).
    batches : per NUTS run: ``batch``, ``replicates``, ``divergences``, ``n_steps_mean``, ``seconds``.
    """

    names: tuple[str, ...]
    ranks: np.ndarray
    truth: np.ndarray
    n_draws: int
    bins: int
    p_values: np.ndarray
    p_adjusted: np.ndarray
    level: float
    ess_bulk: np.ndarray
    r_hat: np.ndarray
    divergences: np.ndarray
    wall_time_s: float
    settings: dict = field(default_factory=dict)
    batches: tuple[dict, ...] = ()

    @property
    def passed(self) -> np.ndarray:
        """``(m,)`` bool: rank uniformity not rejected at the Bonferroni-adjusted ``level``."""
        return self.p_adjusted >= self.level

    @property
    def all_passed(self) -> bool:
        return bool(self.passed.all())

    def counts(self) -> np.ndarray:
        """``(m, bins)`` rank histogram per parameter."""
        return np.stack([_histogram(self.ranks[:, i], self.n_draws, self.bins) for i in range(len(self.names))])

    def table(self) -> list[dict]:
        """One row per ranked scalar: p-values, pass, rank histogram and sampler diagnostics."""
        counts = self.counts()
        return [{"parameter": n, "p_value": float(self.p_values[i]), "p_adjusted": float(self.p_adjusted[i]),
                 "pass": bool(self.passed[i]), "counts": counts[i].tolist(),
                 "ess_bulk_min": float(np.nanmin(self.ess_bulk[:, i])),
                 "r_hat_max": float(np.nanmax(self.r_hat[:, i]))} for i, n in enumerate(self.names)]

    def format_table(self) -> str:
        """Plain-text table (parameter, χ² p-value, adjusted p, pass)."""
        w = max(12, *(len(n) for n in self.names)) + 2
        lines = [f"{'parameter':<{w}}{'chi2 p':>10}{'adj. p':>10}{'pass':>6}   rank histogram ({self.bins} bins)"]
        for row in self.table():
            lines.append(f"{row['parameter']:<{w}}{row['p_value']:>10.3f}{row['p_adjusted']:>10.3f}"
                         f"{'yes' if row['pass'] else 'NO':>6}   {' '.join(f'{c:2d}' for c in row['counts'])}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"replicates": int(self.ranks.shape[0]), "n_draws": self.n_draws, "bins": self.bins,
                "level": self.level, "bonferroni_m": len(self.names), "all_passed": self.all_passed,
                "parameters": self.table(), "ranks": {n: self.ranks[:, i].tolist() for i, n in enumerate(self.names)},
                                "divergences_total": int(sum(b["divergences"] for b in self.batches)),
                "batches": list(self.batches),
                "r_hat_max": float(np.nanmax(self.r_hat)), "ess_bulk_min": float(np.nanmin(self.ess_bulk)),
                "wall_time_s": self.wall_time_s, "settings": self.settings}

    def to_json(self, **kw) -> str:
        return json.dumps(self.to_dict(), **kw)


# ------------------------------------------------------------------------------------ 1. simulate
def _outcome_rows(template: CalibrationData) -> tuple[np.ndarray, np.ndarray]:
    """Tests with an ordinal level, tests with only a runaway flag (the order `_outcome_likelihoods` uses)."""
    n = len(template.test)
    has_level = (np.isfinite(np.asarray(template.hazard_level, float)) if template.hazard_level is not None
                 else np.zeros(n, bool))
    has_tr = (np.isfinite(np.asarray(template.runaway, float)) & ~has_level if template.runaway is not None
              else np.zeros(n, bool))
    return np.flatnonzero(has_level), np.flatnonzero(has_tr)


def _type2_censor(obs: np.ndarray, censor_top: Mapping[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Censor the ``m`` largest finite values of column ``j`` at the largest value left (see module doc)."""
    obs = obs.copy()
    cens = np.zeros(obs.shape, bool)
    for j, m in censor_top.items():
        if m <= 0:
            continue
        rows = np.flatnonzero(np.isfinite(obs[:, j]))
        if m >= rows.size:
            raise ValueError(f"cannot censor {m} of {rows.size} observed values of observable {j}")
        order = rows[np.argsort(obs[rows, j])]
        top, threshold = order[-m:], obs[order[-m - 1], j]
        obs[top, j] = threshold
        cens[top, j] = True
    return obs, cens


def simulate_datasets(template: CalibrationData, surrogate: Surrogate, *, n_replicates: int, seed: int,
                      model_kw: Mapping, censor_above: Mapping[str | int, float] | None = None,
                      censor_top: Mapping[str | int, int] | None = None,
                      parameters: Sequence[str] = PARAMETERS) -> tuple[list[CalibrationData], dict[str, np.ndarray]]:
    """Draw ``R`` (truth, dataset) pairs from the model's own prior predictive.

    Parameters
    ----------
    template : families, conditions ``(n_tests, n_cond)``, observed pattern (finite entries of
        ``observables`` ``(n_tests, n_obs)``; the values are ignored), which tests have a hazard level
        (finite ``hazard_level``) or only a runaway flag (finite ``runaway``). Its ``censored`` is ignored.
    surrogate : ``surrogate(u, c) -> {mean, log_scale, logit_runaway}`` on PyTensor tensors.
    n_replicates : ``R``.
    seed : seed of ``pm.sample_prior_predictive``.
    model_kw : keyword arguments of `build_hierarchical_model` (``parameter_names``, ``prior_mean``,
        ``prior_sd``, ``basis``, ``anchor``, scales).
    censor_above : observable (name or column) → fixed ceiling [normalised units]: a drawn value above it
        is recorded as the ceiling, flagged censored (Type I, a saturating sensor).
    censor_top : observable (name or column) → number of its largest values censored per replicate
        (Type II, see the module doc).
    parameters : free variables whose true values are returned.

    Returns
    -------
    datasets : ``R`` `CalibrationData` (the template with drawn observables, levels / runaway flags,
        ``censored``).
    truth : variable → ``(R, *shape)`` true values (those of ``parameters`` present in the model).
    """
    base = replace(template, censored=None)
    with pytensor.config.change_flags(blas__ldflags=""):
        gen = build_hierarchical_model(base, surrogate, **model_kw)
        prior = pm.sample_prior_predictive(draws=n_replicates, model=gen, random_seed=seed)
    pri, pp = prior["prior"], prior["prior_predictive"]
    truth = {v: np.asarray(pri[v].values[0]) for v in parameters if v in pri}
    t_idx, j_idx = gen.observed_index
    lvl_rows, tr_rows = _outcome_rows(template)
    names = list(template.observable_names)
    col = lambda k: names.index(k) if isinstance(k, str) else int(k)  # noqa: E731
    top = {col(k): int(m) for k, m in (censor_top or {}).items()}
    above = {col(k): float(c) for k, c in (censor_above or {}).items()}
    out = []
    for r in range(n_replicates):
        obs = np.full(np.shape(template.observables), np.nan)
        if "observables" in pp:
            obs[t_idx, j_idx] = pp["observables"].values[0, r]
        cens = None
        if top or above:
            obs, cens = _type2_censor(obs, top)
            for j, ceiling in above.items():
                hit = np.isfinite(obs[:, j]) & (obs[:, j] > ceiling)
                obs[hit, j], cens[hit, j] = ceiling, True
        level = runaway = None
        if template.hazard_level is not None:
            level = np.full(len(template.test), np.nan)
            if lvl_rows.size:
                level[lvl_rows] = pp["hazard_level"].values[0, r] + 1.0  # OrderedLogistic draws 0…6
        if template.runaway is not None:
            runaway = np.full(len(template.test), np.nan)
            if tr_rows.size:
                runaway[tr_rows] = pp["runaway"].values[0, r]
        out.append(replace(template, observables=obs, hazard_level=level, runaway=runaway, censored=cens))
    return out, truth


# ----------------------------------------------------------------------------------------- 2. fit
def stack_replicates(datasets: Sequence[CalibrationData]) -> tuple[CalibrationData, np.ndarray]:
    """Concatenate ``R`` replicates of one template into one dataset and a ``train_mask``.

    Tests and families are relabelled ``"r{k}:{label}"``; ``train_mask`` ``(R, R·n_tests)`` lets copy k of
    `build_hierarchical_model` see only replicate k's tests. Each copy then has the replicate's model plus
    standard-normal latents (``z_test``, ``z_family``) of the other replicates' tests and families, which
    no likelihood term touches: the copy's posterior of every other variable is exactly the replicate's.
    """
    R, n = len(datasets), len(datasets[0].test)
    if any(len(d.test) != n for d in datasets):
        raise ValueError("replicates must share one template (same number of tests)")

    def outcome(attr):
        if all(getattr(d, attr) is None for d in datasets):
            return None
        return np.concatenate([np.full(n, np.nan) if getattr(d, attr) is None else np.asarray(getattr(d, attr), float)
                               for d in datasets])

    censored = None
    if any(d.censored is not None for d in datasets):
        censored = np.concatenate([np.zeros(np.shape(d.observables), bool) if d.censored is None
                                   else np.asarray(d.censored, bool) for d in datasets])
    stacked = replace(
        datasets[0], test=np.array([f"r{k}:{t}" for k, d in enumerate(datasets) for t in d.test]),
        family=np.array([f"r{k}:{f}" for k, d in enumerate(datasets) for f in d.family]),
        families=tuple(f"r{k}:{f}" for k, d in enumerate(datasets) for f in d.families),
        conditions=np.concatenate([np.asarray(d.conditions, float) for d in datasets]),
        observables=np.concatenate([np.asarray(d.observables, float) for d in datasets]),
        hazard_level=outcome("hazard_level"), runaway=outcome("runaway"), censored=censored)
    mask = np.kron(np.eye(R, dtype=bool), np.ones((1, n), dtype=bool))
    return stacked, mask


def diagonal_surrogate(surrogate: Surrogate, n_copies: int, n_tests: int, n_obs: int) -> Surrogate:
    """Wrap ``surrogate`` for `stack_replicates`: evaluate it only where copy k meets its own tests.

    The batched model calls the surrogate on ``u`` ``(R · R·n, n_param)`` (every copy × every test); only
    the ``R · n`` rows of copy k and replicate k's tests enter a likelihood, so the wrapper evaluates those
    and returns zeros on the others (cost linear, not quadratic, in ``R``).
    """
    R, n = n_copies, n_tests
    rows = (np.arange(R)[:, None] * (R * n) + np.arange(R)[:, None] * n + np.arange(n)[None, :]).ravel()

    def wrapped(u, c):
        out = surrogate(u[rows], c[rows])
        total = R * R * n
        return {"mean": pt.set_subtensor(pt.zeros((total, n_obs))[rows], out["mean"]),
                "log_scale": pt.set_subtensor(pt.zeros((total, n_obs))[rows], out["log_scale"]),
                "logit_runaway": pt.set_subtensor(pt.zeros((total,))[rows], out["logit_runaway"])}

    return wrapped


def _sample(model: pm.Model, keep: list[str], *, seed: int, draws: int, tune: int, chains: int,
            target_accept: float):
    with model:
        return pm.sample(draws=draws, tune=tune, chains=chains, nuts_sampler="numpyro", random_seed=seed,
                         target_accept=target_accept, progressbar=False, var_names=keep,
                         compute_convergence_checks=False, nuts={"chain_method": "vectorized"})


def fit_replicates(datasets: Sequence[CalibrationData], surrogate: Surrogate, *, model_kw: Mapping, seed: int,
                   batching: str = "folds", batch_size: int = 10, draws: int = 250, tune: int = 500,
                   chains: int = 4, target_accept: float = 0.9, parameters: Sequence[str] = PARAMETERS,
                   progress=None) -> list[tuple[dict[str, np.ndarray], dict]]:
    """Sample every replicate's posterior with NumPyro NUTS, ``batch_size`` replicates per run.

    Parameters
    ----------
    datasets : the replicates (`simulate_datasets`).
    surrogate, model_kw : as for `build_hierarchical_model` (``model_kw`` may differ from the one that
        generated the data: a deliberately wrong fit).
    seed : NUTS seed of the first batch (batch b uses ``seed + b``).
    batching : ``"nested"`` — one `build_hierarchical_model` per replicate (``name=f"r{k}"``) in one
        PyMC model: the calibrate stage's code path, but the JAX graph (tracing and XLA compilation,
        ≈ 25 s per replicate here) grows with the batch; ``"folds"`` — the model's own batched copies
        (`stack_replicates` + ``train_mask``, `diagonal_surrogate`): one graph whatever the batch size.
    batch_size : replicates per NUTS run.
    draws, tune, chains, target_accept : NUTS settings (``chains`` vectorised chains).
    parameters : free variables kept.
    progress : optional callable ``progress(done, total, seconds)`` called after each batch.

    Returns
    -------
    per replicate: (variable → draws ``(chain, draw, *shape)``, its batch's run: ``batch``, ``replicates``,
    ``divergences``, ``n_steps_mean`` (leapfrog steps per iteration), ``seconds``).
    """
    if batching not in ("nested", "folds"):
        raise ValueError(f"batching must be 'nested' or 'folds', got {batching!r}")
    out: list[tuple[dict[str, np.ndarray], dict]] = []
    t0 = time.perf_counter()
    nuts = dict(draws=draws, tune=tune, chains=chains, target_accept=target_accept)
    for b, start in enumerate(range(0, len(datasets), batch_size)):
        ks = list(range(start, min(start + batch_size, len(datasets))))
        t_batch = time.perf_counter()
        with pytensor.config.change_flags(blas__ldflags=""):
            if batching == "nested":
                with pm.Model() as joint:
                    for k in ks:
                        build_hierarchical_model(datasets[k], surrogate, name=f"r{k}", **model_kw)
                keep = [f"r{k}::{v}" for k in ks for v in parameters if f"r{k}::{v}" in joint.named_vars]
                tree = _sample(joint, keep, seed=seed + b, **nuts)
                post = tree["posterior"]
                draws_k = [{v: np.asarray(post[f"r{k}::{v}"].values) for v in parameters if f"r{k}::{v}" in post}
                           for k in ks]
            else:
                stacked, mask = stack_replicates([datasets[k] for k in ks])
                n, n_obs = len(datasets[0].test), np.shape(datasets[0].observables)[1]
                model = build_hierarchical_model(stacked, diagonal_surrogate(surrogate, len(ks), n, n_obs),
                                                 train_mask=mask, **model_kw)
                keep = [v for v in parameters if v in model.named_vars]
                tree = _sample(model, keep, seed=seed + b, **nuts)
                post = tree["posterior"]
                # every variable leads with the copy axis (named ``fold``, or unnamed for the cutpoint gaps)
                draws_k = [{v: np.asarray(post[v].values)[:, :, i] for v in keep} for i in range(len(ks))]
        st = tree["sample_stats"]
        info = {"batch": b, "replicates": len(ks), "batching": batching,
                "divergences": int(np.asarray(st["diverging"].values).sum()),
                "n_steps_mean": float(np.mean(st["n_steps"].values)) if "n_steps" in st else float("nan"),
                "seconds": time.perf_counter() - t_batch}
        out.extend((d, info) for d in draws_k)
        if progress is not None:
            progress(len(out), len(datasets), time.perf_counter() - t0)
    return out


# ---------------------------------------------------------------------------------------- 3. ranks
def _labels(var: str, shape: tuple[int, ...], coords: Mapping[str, Sequence[str]]) -> list[str]:
    if not shape:
        return [var]
    names = coords.get(var)
    if names is not None and len(shape) == 1 and len(names) == shape[0]:
        return [f"{var}[{n}]" for n in names]
    return [f"{var}[{','.join(map(str, i))}]" for i in np.ndindex(*shape)]


def thin_indices(n_total: int, n_draws: int) -> np.ndarray:
    """``n_draws`` indices evenly spaced over ``n_total`` stacked draws (thinning; Talts et al. §5)."""
    if n_draws > n_total:
        raise ValueError(f"asked for {n_draws} thinned draws of {n_total}")
    return np.round(np.linspace(0, n_total - 1, n_draws)).astype(int)


def rank_statistics(truth: Mapping[str, np.ndarray], posteriors: Sequence[Mapping[str, np.ndarray]], *,
                    n_draws: int = 99, coords: Mapping[str, Sequence[str]] | None = None,
                    parameters: Sequence[str] = PARAMETERS):
    """Ranks of the truths among thinned posterior draws, with ESS and R-hat per replicate.

    Parameters
    ----------
    truth : variable → ``(R, *shape)``.
    posteriors : R mappings variable → ``(chain, draw, *shape)``.
    n_draws : ``L``, thinned draws per replicate (chains stacked, evenly spaced).
    coords : variable → component labels for 1-d variables (table names).

    Returns
    -------
    names ``(m,)``, ranks ``(R, m)`` int in ``0…L``, truth ``(R, m)``, ess_bulk ``(R, m)``, r_hat ``(R, m)``.
    """
    import arviz as az

    names, ranks, tru, ess, rhat = [], [], [], [], []
    for v in parameters:
        if v not in truth:
            continue
        t = np.asarray(truth[v], float)
        shape = t.shape[1:]
        names += _labels(v, shape, coords or {})
        t = t.reshape(t.shape[0], -1)
        rk, es, rh = [], [], []
        for r, post in enumerate(posteriors):
            x = np.asarray(post[v], float)
            x = x.reshape(x.shape[0], x.shape[1], -1)  # (chain, draw, comp)
            flat = x.reshape(-1, x.shape[-1])
            thin = flat[thin_indices(flat.shape[0], n_draws)]
            rk.append((thin < t[r]).sum(axis=0))
            es.append([float(az.ess(x[..., i], method="bulk")) for i in range(x.shape[-1])])
            rh.append([float(az.rhat(x[..., i])) for i in range(x.shape[-1])])
        ranks.append(np.asarray(rk))
        tru.append(t)
        ess.append(np.asarray(es))
        rhat.append(np.asarray(rh))
    return (tuple(names), np.concatenate(ranks, axis=1), np.concatenate(tru, axis=1), np.concatenate(ess, axis=1),
            np.concatenate(rhat, axis=1))


# ------------------------------------------------------------------------------------ 4. uniformity
def _histogram(ranks: np.ndarray, n_draws: int, bins: int) -> np.ndarray:
    return np.histogram(np.asarray(ranks), bins=bins, range=(0, n_draws + 1))[0]


def chi2_uniformity(ranks: np.ndarray, n_draws: int, bins: int = 10, *, method: str = "auto",
                    n_monte_carlo: int = 100_000, seed: int = 0) -> float:
    """p-value of Pearson's χ² test of uniform ranks ``(R,)`` in ``0…n_draws`` over ``bins`` equal bins.

    ``method``: ``"asymptotic"`` (χ²_{bins−1}), ``"monte_carlo"`` (the statistic's exact null
    distribution under the uniform multinomial, by simulation: small ``R``), or ``"auto"`` (asymptotic
    when every expected count is ≥ 5, Cochran's rule).
    """
    if (n_draws + 1) % bins:
        raise ValueError(f"n_draws + 1 = {n_draws + 1} is not a multiple of bins = {bins}: bins would be unequal")
    counts = _histogram(ranks, n_draws, bins)
    R = counts.sum()
    expected = R / bins
    stat = float(((counts - expected) ** 2).sum() / expected)
    if method == "auto":
        method = "asymptotic" if expected >= 5 else "monte_carlo"
    if method == "asymptotic":
        return float(stats.chi2.sf(stat, bins - 1))
    if method == "monte_carlo":
        sim = np.random.default_rng(seed).multinomial(R, np.full(bins, 1.0 / bins), size=n_monte_carlo)
        null = ((sim - expected) ** 2).sum(axis=1) / expected
        return float((1 + np.sum(null >= stat - 1e-9)) / (1 + n_monte_carlo))
    raise ValueError(f"unknown method {method!r}")


def uniformity_pvalues(ranks: np.ndarray, n_draws: int, bins: int = 10, **kw) -> tuple[np.ndarray, np.ndarray]:
    """χ² p-values per column of ``ranks`` ``(R, m)`` and their Bonferroni adjustment ``min(1, m p)``."""
    p = np.array([chi2_uniformity(ranks[:, i], n_draws, bins, **kw) for i in range(ranks.shape[1])])
    return p, np.minimum(1.0, p * ranks.shape[1])


# ------------------------------------------------------------------------------------------- all
def run_sbc(template: CalibrationData, surrogate: Surrogate, *, n_replicates: int, seed: int, model_kw: Mapping,
            fit_kw: Mapping | None = None, censor_above: Mapping[str | int, float] | None = None,
            censor_top: Mapping[str | int, int] | None = None, parameters: Sequence[str] = PARAMETERS,
            batching: str = "folds", batch_size: int = 10, draws: int = 250, tune: int = 500,
            chains: int = 4, target_accept: float = 0.9, n_draws: int = 99, bins: int = 10, level: float = 0.01,
            progress=None) -> SBCResult:
    """Whole SBC run: prior predictive → batched NUTS fits → thinned ranks → χ² + Bonferroni.

    Parameters
    ----------
    template, surrogate, model_kw, censor_above, censor_top : see `simulate_datasets`.
    n_replicates : ``R`` (≥ ``5 · bins`` for the asymptotic χ²; fewer use a Monte-Carlo null).
    seed : seeds the prior predictive (``seed``) and NUTS (``seed + 1 + batch``).
    fit_kw : overrides of ``model_kw`` for the fits only (e.g. a shifted ``prior_mean``: a wrong posterior
        that SBC must flag).
    parameters : free variables to rank, every scalar component of each.
    batching, batch_size, draws, tune, chains, target_accept : see `fit_replicates`.
    n_draws : ``L`` thinned posterior draws per replicate; ``(L + 1) % bins == 0`` and
        ``L ≤ chains · draws``. Choose ``chains · draws / L`` ≳ the autocorrelation time, so that the
        thinned draws are roughly independent (check ``ess_bulk ≳ L`` in the result).
    bins, level : χ² bins; pass when the Bonferroni-adjusted p ≥ ``level``.
    progress : ``progress(done, total, seconds)`` after each NUTS batch.
    """
    t0 = time.perf_counter()
    if n_draws > chains * draws:
        raise ValueError(f"n_draws = {n_draws} > chains · draws = {chains * draws}")
    datasets, truth = simulate_datasets(template, surrogate, n_replicates=n_replicates, seed=seed, model_kw=model_kw,
                                        censor_above=censor_above, censor_top=censor_top, parameters=parameters)
    fits = fit_replicates(datasets, surrogate, model_kw={**model_kw, **(fit_kw or {})}, seed=seed + 1,
                          batching=batching, batch_size=batch_size, draws=draws, tune=tune, chains=chains, target_accept=target_accept,
                          parameters=parameters, progress=progress)
    k = np.asarray(model_kw.get("basis", np.eye(len(model_kw["parameter_names"])))).shape[1]
    obs_names = list(template.observable_names) or [f"obs_{j}" for j in range(np.shape(template.observables)[1])]
    coords = {"a_pop": [f"d{j + 1}" for j in range(k)], "tau_family": [f"d{j + 1}" for j in range(k)],
              "cell_sd": [f"d{j + 1}" for j in range(k)], "discrepancy": obs_names,
              "cutpoints_gaps": [f"g{j + 1}" for j in range(5)]}
    names, ranks, tru, ess, rhat = rank_statistics(truth, [f for f, _ in fits], n_draws=n_draws, coords=coords,
                                                   parameters=parameters)
    p, p_adj = uniformity_pvalues(ranks, n_draws, bins, seed=seed)
    settings = {"n_replicates": n_replicates, "seed": seed, "batching": batching, "batch_size": batch_size, "draws": draws, "tune": tune,
                "chains": chains, "target_accept": target_accept, "n_draws": n_draws, "bins": bins, "level": level,
                "censor_above": {str(a): float(b) for a, b in (censor_above or {}).items()},
                "censor_top": {str(a): int(b) for a, b in (censor_top or {}).items()},
                "n_tests": len(template.test), "families": list(template.families),
                "fit_overrides": sorted((fit_kw or {}).keys())}
    batches = tuple({i["batch"]: i for _, i in fits}.values())
    return SBCResult(names, ranks, tru, n_draws, bins, p, p_adj, level, ess, rhat,
                     np.array([i["divergences"] for _, i in fits]), time.perf_counter() - t0, settings, batches)
