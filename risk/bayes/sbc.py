"""Simulation-based calibration (SBC) of the whole hierarchical physics model.

The model checked is the one `risk.bayes.physics.build_physics_model` samples — the frozen decoder as
surrogate, the data-informed subspace (basis, anchor), the prior moments in ``u``, the family covariate,
the link scale, the ordinal cutpoints and the model discrepancy — on a reduced design (a few families ×
a few tests, every observable and every hazard level observed, no censoring). Replicates of
(parameters, observables, hazard levels) are drawn from the model's own prior predictive; each
replicate's posterior is sampled with NumPyro NUTS, R replicates nested in one PyMC model
(``name=f"r{k}"``: the joint posterior factorises) and the replicates split into a few such batches.
If the sampler and the model's generative and inferential sides agree, the rank of each true value
among (thinned) posterior draws is uniform (Talts et al. 2018, arXiv:1804.06788); uniformity is
tested per parameter by a χ² test on binned ranks (Modrák et al. 2023, *Bayesian Analysis*,
arXiv:2211.02383), Bonferroni-adjusted over the parameters.

`sbc_ranks`
    Prior-predictive replicates, batched NUTS fits, ranks per scalar parameter.
`rank_uniformity`
    χ² p-values of binned ranks and the Bonferroni verdict.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from risk.bayes.model import N_LEVELS, CalibrationData, build_hierarchical_model, design_penalty
from risk.bayes.physics import COVARIATE_CONDITION, PhysicsSetup

#: the hyperparameters / population quantities whose ranks are checked (``cutpoints`` without the one
#: pinned at 0, which is not a parameter)
SBC_VARIABLES = ("a_pop", "tau_family", "cell_sd", "discrepancy", "family_discrepancy", "family_discrepancy_mean",
                 "link_scale", "cutpoints", "family_slope", "family_logit_sd", "family_logit_mean", "family_logit_slope",
                 "family_link_sd")
PINNED_CUTPOINT = 4  # index of c_5 ≡ 0 in the 6 cutpoints (`risk.bayes.model._cutpoints`)


@dataclass
class SBCResult:
    """Ranks of the true values and what the sampler did.

    Attributes
    ----------
    ranks : ``{parameter: (n_replicates,)}`` int ranks in ``0..n_draws`` (number of thinned posterior
        draws below the true value), one entry per scalar parameter (e.g. ``a_pop[d1]``).
    n_draws : number of thinned posterior draws per replicate (``L``; ranks take ``L + 1`` values).
    truth : ``{parameter: (n_replicates,)}`` the prior-predictive (true) values.
    design : the reduced design (families, tests per family, conditions, capacities, SOCs).
    batches : one dict per NUTS run: replicates, divergences (total and per chain), wall time [s],
        step size, minimum bulk ESS and maximum R-hat over its checked parameters.
    wall_time_s : total wall time [s].
    """

    ranks: dict[str, np.ndarray]
    n_draws: int
    truth: dict[str, np.ndarray]
    design: dict
    batches: list[dict] = field(default_factory=list)
    wall_time_s: float = 0.0

    @property
    def divergences(self) -> int:
        return int(sum(b["divergences"] for b in self.batches))


def reduced_design(data: CalibrationData, *, n_families: int = 3, tests_per_family: int = 5) -> CalibrationData:
    """A reduced calibration design in the conditions of ``data`` (values are placeholders).

    ``n_families`` families at capacities spread over the data's family capacities (quantiles of the
    family-mean capacity), ``tests_per_family`` tests each at SOCs evenly spread over the data's SOC
    range (``[0, 1]`` when the decoder has no ``soc`` condition); other conditions at the data's median.
    Every observable is observed (placeholder 0), every test has a hazard level (placeholder 1), nothing
    is censored.

    Returns
    -------
    CalibrationData with ``n_families · tests_per_family`` tests.
    """
    cond = np.asarray(data.conditions, float)
    names = list(data.condition_names)
    fam = data.family_index
    base = np.median(cond, axis=0)
    soc = (np.linspace(cond[:, names.index("soc")].min(), cond[:, names.index("soc")].max(), tests_per_family)
           if "soc" in names else np.linspace(0.0, 1.0, tests_per_family))
    if COVARIATE_CONDITION in names:
        j = names.index(COVARIATE_CONDITION)
        fam_cap = np.array([cond[fam == f, j].mean() for f in range(len(data.families))])
        caps = np.quantile(fam_cap, np.linspace(0.0, 1.0, n_families))
    else:
        j, caps = None, np.full(n_families, np.nan)
    rows = []
    for f in range(n_families):
        for s in soc:
            c = base.copy()
            if "soc" in names:
                c[names.index("soc")] = s
            if j is not None:
                c[j] = caps[f]
            rows.append(c)
    n, n_obs = len(rows), np.asarray(data.observables).shape[1]
    return CalibrationData(test=np.array([f"t{i}" for i in range(n)]),
                           family=np.repeat([f"f{f}" for f in range(n_families)], tests_per_family),
                           conditions=np.array(rows), observables=np.zeros((n, n_obs)),
                           hazard_level=np.ones(n), observable_names=tuple(data.observable_names),
                           condition_names=tuple(data.condition_names), censored=np.zeros((n, n_obs), bool))


def _model_kwargs(design: CalibrationData, decoder, setup: PhysicsSetup) -> dict:
    """The keyword arguments `risk.bayes.physics.build_physics_model` passes to `build_hierarchical_model`."""
    return dict(parameter_names=decoder.parameter_names, prior_mean=setup.prior_mean, prior_sd=setup.prior_sd,
                family_scale=setup.family_scale, basis=setup.subspace.basis, anchor=setup.subspace.anchor,
                family_covariate=setup.family_covariate(design),
                covariate_direction=(setup.covariate or {}).get("direction"),
                family_discrepancy_scale=setup.family_discrepancy, design_bounds=setup.design_bounds,
                centred_families=setup.centred, family_logit_scale=setup.family_logit,
                family_link_scale=setup.family_link)


def _stacked(design: CalibrationData, y: np.ndarray, levels: np.ndarray) -> tuple[CalibrationData, np.ndarray]:
    """B replicates of ``design`` stacked as one data set of ``B · n`` tests (families ``r{k}_{family}``) and
    the ``train_mask`` ``(B, B · n)`` under which copy k sees only replicate k's tests.

    ``y`` ``(B, n, n_obs)``, ``levels`` ``(B, n)``.
    """
    B, n = levels.shape
    width = len(str(B))
    tag = [f"r{k:0{width}d}_" for k in range(B)]
    stacked = CalibrationData(test=np.array([t + str(x) for t in tag for x in design.test]),
                              family=np.array([t + str(f) for t in tag for f in design.family]),
                              conditions=np.tile(design.conditions, (B, 1)), observables=y.reshape(B * n, -1),
                              hazard_level=levels.reshape(-1).astype(float), observable_names=design.observable_names,
                              condition_names=design.condition_names, censored=np.tile(design.censored, (B, 1)))
    return stacked, np.kron(np.eye(B, dtype=bool), np.ones((1, n), bool))


def _scalars(name: str, values: np.ndarray) -> dict[str, np.ndarray]:
    """Split ``values`` ``(..., *shape)`` of variable ``name`` into scalar parameters ``name[i]``."""
    values = np.asarray(values, float)
    if name == "cutpoints":
        return {f"cutpoints[{i + 1}]": values[..., i] for i in range(N_LEVELS - 1) if i != PINNED_CUTPOINT}
    if name in ("link_scale", "family_slope", "family_logit_sd", "family_logit_mean", "family_logit_slope",
                "family_link_sd"):
        return {name: values}
    return {f"{name}[{i}]": values[..., i] for i in range(values.shape[-1])}


def prior_replicates(design: CalibrationData, decoder, setup: PhysicsSetup, n_replicates: int, *, seed: int):
    """Draw ``n_replicates`` (parameters, observables, hazard levels) from the model's prior predictive.

    Returns
    -------
    truth : ``{variable: (R, ...)}`` for `SBC_VARIABLES` present in the model.
    observables : ``(R, n_tests, n_obs)`` normalised observables.
    levels : ``(R, n_tests)`` hazard levels 1–7.
    """
    import pymc as pm
    import pytensor

    kw = _model_kwargs(design, decoder, setup)
    # prior predictive draws ignore Potentials: the design-region wall (`design_penalty` ≤ 0) is applied by
    # rejection, accepting a draw with probability exp(penalty) — exact draws from the model's prior
    n_draw = n_replicates if setup.design_bounds is None else 4 * n_replicates + 16
    with pytensor.config.change_flags(blas__ldflags=""):
        gen = build_hierarchical_model(design, decoder.pytensor_apply, **kw)
        prior = pm.sample_prior_predictive(draws=n_draw, model=gen, random_seed=seed)
    keep = np.arange(n_draw)
    if setup.design_bounds is not None:
        log_accept = design_penalty(prior["prior"]["u_test"].values[0], setup.design_bounds).sum(axis=-1)
        accept = np.log(np.random.default_rng(seed).random(n_draw)) < log_accept
        if accept.sum() < n_replicates:
            raise RuntimeError(f"SBC: {accept.sum()} of {n_draw} prior draws inside the design region, "
                               f"{n_replicates} needed")
        keep = np.flatnonzero(accept)[:n_replicates]
    n, n_obs = np.asarray(design.observables).shape
    y = prior["prior_predictive"]["observables"].values[0][keep].reshape(n_replicates, n, n_obs)
    levels = prior["prior_predictive"]["hazard_level"].values[0][keep].reshape(n_replicates, n) + 1
    truth = {v: prior["prior"][v].values[0][keep] for v in SBC_VARIABLES if v in prior["prior"]}
    return truth, y, levels


def _release_compiled() -> None:
    """Drop JAX's compiled executables and collect the batch's model graphs: without it a process fitting batch after
    batch grew by 1–1.5 GB per 10-replicate batch (16 → 21 GB after four batches of the SBC benchmark)."""
    import gc

    import jax

    gc.collect()
    jax.clear_caches()


def sbc_ranks(decoder, data: CalibrationData, setup: PhysicsSetup, *, n_replicates: int, n_families: int = 3,
              tests_per_family: int = 5, seed: int = 0, batch_size: int = 25, draws: int = 500, tune: int = 500,
              chains: int = 4, thin: int = 10, target_accept: float = 0.9, advi_init: bool = True,
              method: str = "folds", log=None) -> SBCResult:
    """SBC ranks of every scalar hyperparameter of the physics model with the frozen decoder.

    Parameters
    ----------
    decoder : `sim2real.FrozenDecoder` (``pytensor_apply``, ``parameter_names``).
    data : the study's real tests; only their conditions shape the reduced design (`reduced_design`).
    setup : `risk.bayes.physics.PhysicsSetup` (prior moments, subspace, family covariate) of ``data``.
    n_replicates : R, number of SBC replicates.
    n_families, tests_per_family : size of the reduced design.
    seed : seeds the prior-predictive draws and NUTS (batch b uses ``seed + 1 + b``).
    batch_size : replicates nested in one PyMC model / one NUTS run.
    draws, tune, chains : NUTS draws and warm-up per chain, chains per run.
    thin : keep every ``thin``-th draw of each chain (reduces autocorrelation, Talts et al. 2018 §5).
    target_accept : NUTS target acceptance.
    advi_init : start chains from ADVI draws (`risk.bayes.sampling.advi_initial_points`), as
        `risk.bayes.physics.fit_physics` does.
    method : how R replicates share one NUTS run. ``"folds"``: one model with ``train_mask``
        (`build_hierarchical_model`'s batched copies: every variable leads with a ``fold`` dim, one
        decoder call on all rows, one JAX compilation; the data of all replicates are stacked and copy k
        sees only replicate k's tests — the unseen tests' latents stay at their N(0, 1) prior).
        ``"nested"``: R models ``name=f"r{k}"`` in one `pm.Model` (the unbatched code path that
        calibrate uses, but R decoder graphs: measured > 14 min for 25 replicates × 600 iterations
        under load, vs ≈ 90 s for 5).
    log : optional callable taking a progress message.

    Returns
    -------
    `SBCResult`: ranks ``{parameter: (R,)}`` with ``L = chains · ceil(draws / thin)`` thinned draws,
    truth, design and per-batch sampler records (divergences are recorded, not hidden).
    """
    import pymc as pm
    import pytensor

    from risk.bayes.sampling import advi_initial_points, default_chain_method

    t0 = time.perf_counter()
    design = reduced_design(data, n_families=n_families, tests_per_family=tests_per_family)
    kw = _model_kwargs(design, decoder, setup)
    truth, y, levels = prior_replicates(design, decoder, setup, n_replicates, seed=seed)
    truth_s = {}
    for v, x in truth.items():
        truth_s.update(_scalars(v, x))
    ranks = {p: np.zeros(n_replicates, dtype=int) for p in truth_s}
    names = [v for v in SBC_VARIABLES if v in truth]
    batches, n_draws = [], None
    for b, start in enumerate(range(0, n_replicates, batch_size)):
        reps = list(range(start, min(start + batch_size, n_replicates)))
        tb = time.perf_counter()
        with pytensor.config.change_flags(blas__ldflags=""):
            if method == "nested":
                with pm.Model() as joint:
                    for k in reps:
                        d = CalibrationData(test=design.test, family=design.family, conditions=design.conditions,
                                            observables=y[k], hazard_level=levels[k].astype(float),
                                            observable_names=design.observable_names,
                                            condition_names=design.condition_names, censored=design.censored)
                        build_hierarchical_model(d, decoder.pytensor_apply, name=f"r{k}", **kw)
                var_names = [f"r{k}::{v}" for k in reps for v in names]
            elif method == "folds":
                stacked, mask = _stacked(design, y[reps], levels[reps])
                joint = build_hierarchical_model(stacked, decoder.pytensor_apply, train_mask=mask,
                                                 **_model_kwargs(stacked, decoder, setup))
                var_names = list(names)
            else:
                raise ValueError(f"method must be 'nested' or 'folds', got {method!r}")
            init = advi_initial_points(joint, chains, seed=seed + 1 + b) if advi_init else None
            t_init = time.perf_counter() - tb
            with joint:
                tree = pm.sample(draws=draws, tune=tune, chains=chains, nuts_sampler="numpyro",
                                 random_seed=seed + 1 + b, initvals=init, target_accept=target_accept,
                                 progressbar=False, nuts={"chain_method": default_chain_method(chains)},
                                 var_names=var_names, idata_kwargs={"log_likelihood": False})
            t_nuts = time.perf_counter() - tb - t_init
        post = tree["posterior"].to_dataset()
        div = np.asarray(tree["sample_stats"]["diverging"].values)
        for i, k in enumerate(reps):
            for v in names:
                x = np.asarray(post[var_names[i * len(names) + names.index(v)] if method == "nested" else v].values)
                x = x[:, ::thin] if method == "nested" else x[:, ::thin, i]  # (chain, L_c, ...)
                for p, draws_p in _scalars(v, x.reshape(-1, *x.shape[2:])).items():
                    ranks[p][k] = int((draws_p < truth_s[p][k]).sum())
                    n_draws = draws_p.shape[0]
        import arviz as az

        sub = post[[n for n in var_names if not n.endswith("cutpoints")]]
        ess, rhat = az.ess(sub), az.rhat(sub)
        rec = {"batch": b, "replicates": [reps[0], reps[-1]], "divergences": int(div.sum()),
               "divergences_per_chain": div.sum(axis=1).astype(int).tolist(),
               "wall_time_s": round(time.perf_counter() - tb, 1), "setup_and_init_s": round(t_init, 1),
               "nuts_s": round(t_nuts, 1),
               "step_size": [float(s) for s in np.asarray(tree["sample_stats"]["step_size"].values)[:, -1]],
               "ess_bulk_min": float(min(float(ess[n].min()) for n in ess.data_vars)),
               "rhat_max": float(max(float(rhat[n].max()) for n in rhat.data_vars))}
        batches.append(rec)
        del joint, tree, post, sub
        _release_compiled()  # each batch is a new model: its compiled NUTS kernels are never reused
        if log is not None:
            log(f"batch {b}: replicates {reps[0]}–{reps[-1]}, {rec['divergences']} divergences, "
                f"ESS_bulk ≥ {rec['ess_bulk_min']:.0f}, R-hat ≤ {rec['rhat_max']:.3f}, {rec['wall_time_s']} s "
                f"(model + ADVI {rec['setup_and_init_s']} s, NUTS {rec['nuts_s']} s)")
    caps = design.conditions[::tests_per_family, list(design.condition_names).index(COVARIATE_CONDITION)] \
        if COVARIATE_CONDITION in design.condition_names else None
    info = {"n_families": n_families, "tests_per_family": tests_per_family, "n_tests": len(design.test),
            "observables": list(design.observable_names), "condition_names": list(design.condition_names),
            "soc": design.conditions[:tests_per_family, list(design.condition_names).index("soc")].tolist()
            if "soc" in design.condition_names else None,
            "capacity_nominal": None if caps is None else caps.tolist(),
            "subspace_dim": int(setup.subspace.basis.shape[1]), "family_covariate": setup.covariate is not None,
            "batch_size": batch_size, "draws": draws, "tune": tune, "chains": chains, "thin": thin,
            "target_accept": target_accept, "advi_init": advi_init, "method": method, "seed": seed}
    return SBCResult(ranks, int(n_draws), truth_s, info, batches, time.perf_counter() - t0)


def rank_uniformity(ranks: dict[str, np.ndarray] | np.ndarray, n_draws: int, bins: int = 10,
                    alpha: float = 0.01) -> dict:
    """χ² test of uniformity of SBC ranks per parameter, Bonferroni-adjusted over parameters.

    Ranks take the ``n_draws + 1`` values ``0..n_draws``; rank ``r`` falls in bin
    ``floor(r · bins / (n_draws + 1))`` and the expected count of each bin is proportional to the number
    of rank values it holds (equal when ``bins`` divides ``n_draws + 1``). Under calibration each
    histogram is multinomial-uniform (Talts et al. 2018; χ² on binned ranks as in Modrák et al. 2023).

    Parameters
    ----------
    ranks : ``{parameter: (R,)}`` integer ranks, or one array ``(R,)``.
    n_draws : number of posterior draws ``L`` each rank was computed among.
    bins : number of bins (R / bins ≳ 5 for the χ² approximation).
    alpha : family-wise level: pass when every Bonferroni-adjusted p-value ``min(1, p · m) ≥ alpha``.

    Returns
    -------
    dict with ``parameters`` ``{name: {"p_value", "p_bonferroni", "pass", "counts" (bins,)}}``,
    ``m`` (number of parameters), ``min_p_bonferroni``, ``alpha`` and ``pass`` (the verdict).
    """
    if not isinstance(ranks, dict):
        ranks = {"rank": np.asarray(ranks)}
    values = np.arange(n_draws + 1)
    expected = np.bincount(values * bins // (n_draws + 1), minlength=bins) / (n_draws + 1)
    m = len(ranks)
    out = {}
    for name, r in ranks.items():
        r = np.asarray(r, dtype=int)
        if r.min() < 0 or r.max() > n_draws:
            raise ValueError(f"ranks of {name} outside 0..{n_draws}")
        counts = np.bincount(r * bins // (n_draws + 1), minlength=bins)
        p = float(stats.chisquare(counts, expected * r.size).pvalue)
        adj = min(1.0, p * m)
        out[name] = {"p_value": p, "p_bonferroni": adj, "pass": bool(adj >= alpha), "counts": counts.tolist()}
    min_adj = min(v["p_bonferroni"] for v in out.values())
    return {"parameters": out, "m": m, "min_p_bonferroni": min_adj, "alpha": alpha, "pass": bool(min_adj >= alpha)}


def format_table(uniformity: dict) -> str:
    """Plain-text table: parameter, χ² p-value, Bonferroni-adjusted p, pass, rank histogram."""
    rows = [f"{'parameter':<18} {'chi2 p':>9} {'Bonf. p':>9}  pass  histogram"]
    for name, v in uniformity["parameters"].items():
        rows.append(f"{name:<18} {v['p_value']:9.4f} {v['p_bonferroni']:9.4f}  {'yes' if v['pass'] else 'NO ':<4}  "
                    f"{' '.join(f'{c:3d}' for c in v['counts'])}")
    rows.append(f"verdict (Bonferroni over m = {uniformity['m']}, level {uniformity['alpha']}): "
                f"{'PASS' if uniformity['pass'] else 'FAIL'} (min adjusted p = {uniformity['min_p_bonferroni']:.4f})")
    return "\n".join(rows)


__all__: Sequence[str] = ("SBCResult", "SBC_VARIABLES", "format_table", "prior_replicates", "rank_uniformity",
                          "reduced_design", "sbc_ranks")
