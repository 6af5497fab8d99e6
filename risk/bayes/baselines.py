"""Metadata baselines: models of the real-test outcomes from test metadata only (no simulator).

They are what the physics model must beat, and the fallback of ``risk predict`` for tests whose
chemistry or format the study's simulator does not cover (rows labelled ``model = metadata``).

`build_ordinal_model`
    The latent-severity ordinal likelihood of `risk.bayes.model` with a metadata regression in place of
    the decoder (family intercept and SOC slope, both partially pooled and predicted for unseen families
    from the log capacity). Fit on the real indentation summary table (``tests.csv``).

`build_heat_model`
    Calorimetry: log total heat per cell type × SOC × trigger (hierarchical over cell types, Student-t
    test-to-test noise) and bottom rupture (hierarchical logistic). Fit on the databank.

Fitted models are stored in the run directory as ``posterior_indentation.nc`` /
``posterior_calorimetry.nc`` (ArviZ DataTrees, attrs hold the family/type lists and centring
constants). Families (cell types) unseen in training fall back to the population over families:
their location is drawn per posterior draw from the family-level distribution (regressed on log
capacity / log energy), which widens the intervals honestly.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from scipy import special

from risk.bayes.model import N_LEVELS, TR_LEVEL, _outcome_likelihoods
from risk.bayes.sampling import sample, stack_draws


# ------------------------------------------------------------------------------------ ordinal model
def build_ordinal_model(family_index: np.ndarray, n_families: int, soc: np.ndarray, log_capacity_family: np.ndarray,
                        hazard_level: np.ndarray | None = None, runaway: np.ndarray | None = None,
                        weighted: bool = False) -> pm.Model:
    """Latent-severity ordinal model of hazard levels from test metadata (no decoder needed).

    ``η_i = a_f + b_f (soc_i − 0.5) + σ_cell ε_i`` with ``a_f ~ N(α0 + α1 log C_f, τ_a)``,
    ``b_f ~ N(β0, τ_b)`` (non-centred), ``ε_i ~ N(0, 1)`` the cell-to-cell (aleatory) variation;
    ``level_i ~ OrderedLogistic(η_i, c)`` with ``c_5 ≡ 0`` so ``P(TR) = P(level ≥ 6) = E sigmoid(η)``.

    Parameters
    ----------
    family_index : ``(n_tests,)`` int family of each test.
    n_families : number of families (rows of ``log_capacity_family``).
    soc : ``(n_tests,)`` state of charge [1], 0–1.
    log_capacity_family : ``(n_families,)`` log of nominal capacity in A h, centred by the caller.
    hazard_level : ``(n_tests,)`` observed level 1–7 (NaN where unknown).
    runaway : ``(n_tests,)`` 1/0 (used where no level).
    weighted : per-test likelihood weights ``test_weight (test)`` (a ``pm.Data`` of ones; `risk.bayes.weighted`:
        cross-validation folds as weights 0/1, one compilation for all).
    """
    coords = {"family": np.arange(n_families), "test": np.arange(len(soc))}
    with pm.Model(coords=coords) as model:
        w = pm.Data("test_weight", np.ones(len(soc)), dims="test") if weighted else None
        alpha = pm.Normal("alpha", 0.0, 2.0, shape=2)
        beta0 = pm.Normal("beta0", 0.0, 5.0)
        tau_a = pm.HalfNormal("tau_a", 2.0)
        tau_b = pm.HalfNormal("tau_b", 2.0)
        z_a = pm.Normal("z_a", 0.0, 1.0, dims="family")
        z_b = pm.Normal("z_b", 0.0, 1.0, dims="family")
        a = pm.Deterministic("a_family", alpha[0] + alpha[1] * log_capacity_family + tau_a * z_a, dims="family")
        b = pm.Deterministic("b_family", beta0 + tau_b * z_b, dims="family")
        sigma_cell = pm.HalfNormal("sigma_cell", 1.0)
        eps = pm.Normal("eps_test", 0.0, 1.0, dims="test")
        eta = a[family_index] + b[family_index] * (np.asarray(soc) - 0.5) + sigma_cell * eps
        pm.Deterministic("eta", eta, dims="test")
        _outcome_likelihoods(eta, hazard_level, runaway, weight=w)
    return model


# --------------------------------------------------------------------------------------- heat model
def build_heat_model(type_index: np.ndarray, n_types: int, soc: np.ndarray, trigger_index: np.ndarray,
                     n_triggers: int, log_energy_type: np.ndarray, heat_kj: np.ndarray | None,
                     bottom_rupture: np.ndarray | None, weighted: bool = False) -> pm.Model:
    """Hierarchical model of calorimetry outcomes per cell type × SOC × trigger.

    ``log Q_i ~ StudentT(ν, m_t + s_t (soc_i − 1) + γ_trig, σ_t)`` with
    ``m_t ~ N(μ0 + μ1 log E_t, τ_m)``, ``s_t ~ N(s0, τ_s)``, ``log σ_t ~ N(λ, τ_σ)`` (all non-centred);
    ``bottom_rupture_i ~ Bernoulli(logit⁻¹(r_t + ρ_trig))``, ``r_t ~ N(r0, τ_r)``.

    Parameters
    ----------
    type_index : ``(n_tests,)`` int cell type; ``n_types`` their number.
    soc : ``(n_tests,)`` [1].
    trigger_index : ``(n_tests,)`` int trigger mechanism; ``n_triggers`` their number.
    log_energy_type : ``(n_types,)`` log nominal energy [log Wh], centred by the caller (NaN → 0).
    heat_kj : ``(n_tests,)`` total heat [kJ] (NaN = missing), or None.
    bottom_rupture : ``(n_tests,)`` 1/0/NaN, or None.
    weighted : per-test likelihood weights ``test_weight`` (a ``pm.Data`` of ones; both likelihoods become weighted
        potentials; `risk.bayes.weighted`: cross-validation folds as weights 0/1, one compilation for all).
    """
    log_e = np.nan_to_num(np.asarray(log_energy_type, dtype=float))
    coords = {"cell_type": np.arange(n_types), "trigger": np.arange(n_triggers), "test": np.arange(len(soc))}
    with pm.Model(coords=coords) as model:
        w = pm.Data("test_weight", np.ones(len(soc)), dims="test") if weighted else None
        mu = pm.Normal("mu", [4.0, 1.0], [1.5, 1.0], shape=2)
        tau_m = pm.HalfNormal("tau_m", 0.5)
        m = pm.Deterministic("m_type", mu[0] + mu[1] * log_e + tau_m * pm.Normal("z_m", 0, 1, dims="cell_type"),
                             dims="cell_type")
        s0 = pm.Normal("s0", 1.0, 1.0)
        tau_s = pm.HalfNormal("tau_s", 0.5)
        s = pm.Deterministic("s_type", s0 + tau_s * pm.Normal("z_s", 0, 1, dims="cell_type"), dims="cell_type")
        g_raw = pm.Normal("gamma_raw", 0.0, 0.3, dims="trigger")
        gamma = pm.Deterministic("gamma_trigger", g_raw - g_raw.mean(), dims="trigger")
        lam = pm.Normal("lambda", -1.5, 1.0)
        tau_sig = pm.HalfNormal("tau_sigma", 0.5)
        sig = pm.Deterministic("sigma_type", pt.exp(lam + tau_sig * pm.Normal("z_sigma", 0, 1, dims="cell_type")),
                               dims="cell_type")
        nu = pm.Gamma("nu", alpha=2.0, beta=0.1)
        r0 = pm.Normal("r0", -2.0, 2.0)
        tau_r = pm.HalfNormal("tau_r", 1.5)
        r = pm.Deterministic("r_type", r0 + tau_r * pm.Normal("z_r", 0, 1, dims="cell_type"), dims="cell_type")
        rho_raw = pm.Normal("rho_raw", 0.0, 1.0, dims="trigger")
        rho = pm.Deterministic("rho_trigger", rho_raw - rho_raw.mean(), dims="trigger")
        if heat_kj is not None:
            q = np.asarray(heat_kj, dtype=float)
            ok = np.flatnonzero(np.isfinite(q) & (q > 0))
            loc = m[type_index[ok]] + s[type_index[ok]] * (np.asarray(soc)[ok] - 1.0) + gamma[trigger_index[ok]]
            if w is None:
                pm.StudentT("log_heat", nu=nu, mu=loc, sigma=sig[type_index[ok]], observed=np.log(q[ok]))
            else:
                pm.Potential("log_heat", (w[ok] * pm.logp(pm.StudentT.dist(nu=nu, mu=loc, sigma=sig[type_index[ok]]),
                                                          np.log(q[ok]))).sum())
        if bottom_rupture is not None:
            br = np.asarray(bottom_rupture, dtype=float)
            ok = np.flatnonzero(np.isfinite(br))
            logit = r[type_index[ok]] + rho[trigger_index[ok]]
            if w is None:
                pm.Bernoulli("bottom_rupture", logit_p=logit, observed=br[ok].astype(int))
            else:
                pm.Potential("bottom_rupture", (w[ok] * pm.logp(pm.Bernoulli.dist(logit_p=logit),
                                                                br[ok].astype("int64"))).sum())
    return model


# ------------------------------------------------------------------------------------- indentation
#: the metadata regression's global variables (its diagnostics; the per-family and per-test ones are theirs to drive)
ORDINAL_GLOBALS = ["alpha", "beta0", "tau_a", "tau_b", "sigma_cell", "cutpoints_gaps"]


def _ordinal_inputs(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str], float, tuple]:
    """Rows with a level, the family list, the log-capacity centre and `build_ordinal_model`'s positional inputs."""
    df = df[df["level"].notna()]
    families = sorted(df["family"].unique())
    cap = df.groupby("family")["capacity_ah"].median().reindex(families)
    logcap = np.log(cap.fillna(cap.median()).to_numpy())
    centre = float(logcap.mean())
    fam_idx = df["family"].map({f: k for k, f in enumerate(families)}).to_numpy()
    return df, families, centre, (fam_idx, len(families), df["soc"].to_numpy(), logcap - centre)


def _ordinal_attrs(families: list[str], centre: float, diags: list) -> dict:
    """The fitted tree's attrs; ``diagnostics``: of the fit, or the worst over folds (`fit_indentation_folds`)."""
    worst = {"ok": all(d.ok for d in diags), "rhat_max": max(d.rhat_max for d in diags),
             "ess_bulk_min": min(d.ess_bulk_min for d in diags), "ess_tail_min": min(d.ess_tail_min for d in diags),
             "divergences": sum(d.divergences for d in diags),
             "messages": [m for d in diags for m in d.messages]}
    return {"model_kind": "indentation_ordinal", "families": json.dumps(families), "log_capacity_centre": centre,
            "diagnostics": json.dumps(worst)}


def fit_indentation(df: pd.DataFrame, *, seed: int, draws: int = 500, tune: int = 500, **kw) -> xr.DataTree:
    """Fit `build_ordinal_model` on a `read_indentation_tests` table (rows with a level)."""
    df, families, centre, inputs = _ordinal_inputs(df)
    model = build_ordinal_model(*inputs, hazard_level=df["level"].to_numpy())
    kw.setdefault("var_names", ORDINAL_GLOBALS)
    tree, diag = sample(model, seed=seed, draws=draws, tune=tune, posterior_predictive=False, **kw)
    tree.attrs.update(_ordinal_attrs(families, centre, [diag]))
    return tree


#: compiled weighted ordinal models of this process by their inputs and sampler settings (`_weighted_ordinal`)
_WEIGHTED_ORDINAL: dict = {}


def _weighted_ordinal(inputs: tuple, level: np.ndarray, **settings):
    """The `WeightedFits` of `build_ordinal_model` on ``inputs`` and ``level``, compiled once per process: the
    cross-validation's three schemes fit the same table with different weights (each compilation ~12 s; measured).
    Keeps the two most recently used (the family-constant ablation alternates with the model)."""
    import hashlib

    from risk.bayes.weighted import WeightedFits

    digest = hashlib.sha256()
    for a in (*inputs, level):
        digest.update(np.ascontiguousarray(np.asarray(a, float)).tobytes())
    key = (digest.hexdigest(), tuple(sorted(settings.items())))
    fits = _WEIGHTED_ORDINAL.pop(key, None)  # reinserted last: the least recently used goes first
    if fits is None:
        while len(_WEIGHTED_ORDINAL) >= 2:
            _WEIGHTED_ORDINAL.pop(next(iter(_WEIGHTED_ORDINAL)))
        fits = WeightedFits(build_ordinal_model(*inputs, hazard_level=level, weighted=True), **settings)
    _WEIGHTED_ORDINAL[key] = fits
    return fits


def fit_indentation_folds(df: pd.DataFrame, train_sets: list[np.ndarray], *, seed: int, draws: int = 500,
                          tune: int = 500, chains: int = 4, target_accept: float = 0.9, **kw) -> list[xr.DataTree]:
    """Cross-validation fits: one tree per fold, fold k seeing the outcomes of ``train_sets[k]`` (positions among the
    rows with a level) only — weights 0/1 of one weighted model compiled once (`risk.bayes.weighted.WeightedFits`).

    Each tree is what `fit_indentation` on those rows would give (for `predict_indentation`), but the families are
    those of the whole table: a family absent from a fold's training rows keeps its prior, the same population draw
    a separate fit would make for an unseen family. Each tree's ``diagnostics`` attr is the worst over folds (their
    global variables; ``kw`` may hold ``var_names``, ``thresholds``). Replaced one NUTS run of all folds as batched copies
    (shared step size and tree depth: 160 s for the default study's 8 leave-family-out folds).
    """
    kw.pop("allow_bad_diagnostics", None)  # fold fits never raise; their diagnostics are reported
    df, families, centre, inputs = _ordinal_inputs(df)
    fits = _weighted_ordinal(inputs, df["level"].to_numpy(), draws=draws, tune=tune, chains=chains,
                             target_accept=target_accept)
    out, diags = [], []
    for k, rows in enumerate(train_sets):
        weight = np.zeros(len(df))
        weight[np.asarray(rows, int)] = 1.0
        tree, diag = fits.fit(weight, seed=seed + k, var_names=kw.get("var_names", ORDINAL_GLOBALS),
                              **({"thresholds": kw["thresholds"]} if "thresholds" in kw else {}))
        out.append(tree)
        diags.append(diag)
    for tree in out:
        tree.attrs.update(_ordinal_attrs(families, centre, diags))
    return out


def predict_indentation(tree: xr.DataTree, df: pd.DataFrame, *, seed: int = 0, n_cells: int = 20) -> pd.DataFrame:
    """Per-test predictions from metadata: ``p_tr, p_tr_q05, p_tr_q95, p_level_1..7`` (see module doc)."""
    rng = np.random.default_rng(seed)
    families = json.loads(tree.attrs["families"])
    a, b = stack_draws(tree, "a_family"), stack_draws(tree, "b_family")  # (S, F)
    alpha, beta0 = stack_draws(tree, "alpha"), stack_draws(tree, "beta0")
    tau_a, tau_b, sig = (stack_draws(tree, v) for v in ("tau_a", "tau_b", "sigma_cell"))
    cut = stack_draws(tree, "cutpoints")  # (S, 6)
    S = a.shape[0]
    rows = []
    for rec in df.itertuples(index=False):
        if rec.family in families:
            k = families.index(rec.family)
            af, bf = a[:, k], b[:, k]
        else:  # unseen family: population over families
            cap = rec.capacity_ah if np.isfinite(rec.capacity_ah) else np.exp(float(tree.attrs["log_capacity_centre"]))
            x = np.log(cap) - float(tree.attrs["log_capacity_centre"])
            af = alpha[:, 0] + alpha[:, 1] * x + tau_a * rng.standard_normal(S)
            bf = beta0 + tau_b * rng.standard_normal(S)
        eta = (af + bf * (rec.soc - 0.5))[:, None] + sig[:, None] * rng.standard_normal((S, n_cells))
        cdf = special.expit(cut[:, None, :] - eta[..., None])  # P(level ≤ k), k = 1..6
        cdf = np.concatenate([np.zeros((S, n_cells, 1)), cdf, np.ones((S, n_cells, 1))], axis=-1)
        p_level = np.diff(cdf, axis=-1).mean(axis=1)  # (S, 7)
        p_tr = p_level[:, TR_LEVEL - 1:].sum(axis=1)
        row = {"FileName": rec.FileName, "p_tr": p_tr.mean(), "p_tr_q05": np.quantile(p_tr, 0.05),
               "p_tr_q95": np.quantile(p_tr, 0.95)}
        row.update({f"p_level_{j + 1}": p_level[:, j].mean() for j in range(N_LEVELS)})
        rows.append(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------- calorimetry
#: the heat model's global variables (its diagnostics)
HEAT_GLOBALS = ["mu", "tau_m", "s0", "tau_s", "lambda", "tau_sigma", "nu", "r0", "tau_r", "gamma_raw", "rho_raw"]


def _heat_inputs(df: pd.DataFrame, weighted: bool = False) -> tuple[pm.Model, list[str], list[str], float]:
    """`build_heat_model` of a `read_calorimetry_tests` table, its cell types, triggers and log-energy centre."""
    types = sorted(df["cell_type"].unique())
    triggers = sorted(df["trigger"].unique())
    loge = np.log(df.groupby("cell_type")["energy_wh"].median().reindex(types).to_numpy())
    centre = float(np.nanmean(loge)) if np.isfinite(loge).any() else 0.0
    t_idx = df["cell_type"].map({t: k for k, t in enumerate(types)}).to_numpy()
    g_idx = df["trigger"].map({t: k for k, t in enumerate(triggers)}).to_numpy()
    model = build_heat_model(t_idx, len(types), df["soc"].to_numpy(), g_idx, len(triggers), loge - centre,
                             df["heat_kj"].to_numpy(), df["bottom_rupture"].to_numpy(), weighted=weighted)
    return model, types, triggers, centre


def fit_calorimetry(df: pd.DataFrame, *, seed: int, draws: int = 500, tune: int = 500, **kw) -> xr.DataTree:
    """Fit `build_heat_model` on a `read_calorimetry_tests` table."""
    model, types, triggers, centre = _heat_inputs(df)
    kw.setdefault("var_names", HEAT_GLOBALS)
    tree, _ = sample(model, seed=seed, draws=draws, tune=tune, posterior_predictive=False, **kw)
    tree.attrs.update(model_kind="calorimetry_heat", cell_types=json.dumps(types), triggers=json.dumps(triggers),
                      log_energy_centre=centre)
    return tree


def fit_calorimetry_folds(df: pd.DataFrame, train_sets: list[np.ndarray], *, seed: int, draws: int = 500,
                          tune: int = 500, chains: int = 4, target_accept: float = 0.9, **kw) -> list[xr.DataTree]:
    """Cross-validation fits of the heat model: fold k sees the tests at positions ``train_sets[k]`` of ``df`` only —
    weights 0/1 of one weighted model compiled once (`risk.bayes.weighted.WeightedFits`). Each tree keeps the cell
    types and triggers its tests have (`predict_calorimetry` treats the others as new, as a fit on those tests would);
    the log-energy centre and the triggers' sum-to-zero constraint are the whole table's. The ``diagnostics`` attr holds
    each fold's (global variables)."""
    from risk.bayes.weighted import WeightedFits

    model, types, triggers, centre = _heat_inputs(df, weighted=True)
    fits = WeightedFits(model, draws=draws, tune=tune, chains=chains, target_accept=target_accept)
    out = []
    for k, rows in enumerate(train_sets):
        rows = np.asarray(rows, int)
        weight = np.zeros(len(df))
        weight[rows] = 1.0
        seen_t = np.isin(types, df["cell_type"].to_numpy()[rows])
        seen_g = np.isin(triggers, df["trigger"].to_numpy()[rows])
        tree, diag = fits.fit(weight, seed=seed + k, keep={"cell_type": seen_t, "trigger": seen_g},
                              var_names=kw.get("var_names", HEAT_GLOBALS))
        tree.attrs.update(model_kind="calorimetry_heat", cell_types=json.dumps(list(np.asarray(types)[seen_t])),
                          triggers=json.dumps(list(np.asarray(triggers)[seen_g])), log_energy_centre=centre,
                          diagnostics=json.dumps({k: getattr(diag, k) for k in ("ok", "rhat_max", "ess_bulk_min",
                                                                                "ess_tail_min", "divergences")}))
        out.append(tree)
    return out


def predict_calorimetry(tree: xr.DataTree, df: pd.DataFrame, *, seed: int = 0) -> pd.DataFrame:
    """Per-test ``heat_q05/q50/q95`` [kJ] (posterior predictive of a new test) and ``p_bottom_rupture``."""
    rng = np.random.default_rng(seed)
    types, triggers = json.loads(tree.attrs["cell_types"]), json.loads(tree.attrs["triggers"])
    centre = float(tree.attrs["log_energy_centre"])
    d = {v: stack_draws(tree, v) for v in ("m_type", "s_type", "sigma_type", "r_type", "gamma_trigger",
                                           "rho_trigger", "mu", "tau_m", "s0", "tau_s", "lambda", "tau_sigma",
                                           "nu", "r0", "tau_r")}
    S = d["nu"].shape[0]
    rows = []
    for rec in df.itertuples(index=False):
        if rec.cell_type in types:
            k = types.index(rec.cell_type)
            m, s, sig, r = d["m_type"][:, k], d["s_type"][:, k], d["sigma_type"][:, k], d["r_type"][:, k]
        else:  # unseen cell type: population over types
            x = (np.log(rec.energy_wh) - centre) if np.isfinite(rec.energy_wh) else 0.0
            z = rng.standard_normal((4, S))
            m = d["mu"][:, 0] + d["mu"][:, 1] * x + d["tau_m"] * z[0]
            s = d["s0"] + d["tau_s"] * z[1]
            sig = np.exp(d["lambda"] + d["tau_sigma"] * z[2])
            r = d["r0"] + d["tau_r"] * z[3]
        j = triggers.index(rec.trigger) if rec.trigger in triggers else None
        gam = d["gamma_trigger"][:, j] if j is not None else 0.0
        rho = d["rho_trigger"][:, j] if j is not None else 0.0
        logq = m + s * (rec.soc - 1.0) + gam + sig * rng.standard_t(d["nu"])
        # a Student-t draw with few degrees of freedom can pass exp's range (1e308): clipped, the 5-95 % quantiles
        # are unchanged and no overflow is raised
        q05, q50, q95 = np.quantile(np.exp(np.minimum(logq, 700.0)), [0.05, 0.5, 0.95])
        rows.append({"Test-ID": rec[0], "heat_q05": q05, "heat_q50": q50, "heat_q95": q95,
                     "p_bottom_rupture": float(special.expit(r + rho).mean())})
    return pd.DataFrame(rows)


def calibrate_metadata(run_dir: str | Path, tests_file: str | Path, *, seed: int, draws: int = 500,
                       tune: int = 500, families: list[str] | None = None, **kw) -> Path:
    """Fit the metadata model matching ``tests_file`` and write ``run_dir/posterior_<kind>.nc``.

    ``families``: the study's data selection (cell families / cell types); None keeps every row.
    """
    from risk.predict.newtests import is_calorimetry, read_calorimetry_tests, read_indentation_tests

    run_dir, tests_file = Path(run_dir), Path(tests_file)
    kind = "calorimetry" if is_calorimetry(tests_file) else "indentation"
    out = run_dir / kind
    if kind == "calorimetry":
        df = read_calorimetry_tests(tests_file)
        df = df[df["cell_type"].isin(families)] if families else df
        tree = fit_calorimetry(df.reset_index(drop=True), seed=seed, draws=draws, tune=tune, out_dir=out, **kw)
    else:
        df = read_indentation_tests(tests_file)
        df = df[df["family"].isin(families)] if families else df
        tree = fit_indentation(df.reset_index(drop=True), seed=seed, draws=draws, tune=tune, out_dir=out, **kw)
    path = run_dir / f"posterior_{kind}.nc"
    tmp = path.with_suffix(".nc.tmp")
    tree.to_netcdf(tmp, engine="h5netcdf")
    tmp.replace(path)
    return path
