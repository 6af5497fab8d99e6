"""Grouped cross-validation on the real tests (→ ``crossval.json``).

`crossvalidate_study` validates the model the study reports — the calibrated physics model — beside
the metadata regression and the family-frequency baseline, on the same labelled tests and folds
(leave replicates out, leave SOC bands out — ≤ 30 %, 30–70 %, > 70 % —, leave whole cell families out). In every fold each model
is refitted on the training rows only (one NUTS run per fold, each model's folds compiled once: per-test
likelihood weights, `risk.bayes.weighted`); held-out tests are predicted as
new cells of their family (of a new family under leave-family-out) at their conditions, without their
observables or outcome. TR ≡ observed hazard level ≥ 6. Layout::

    {scheme: {"physics" | "metadata" | "family_frequency" [| "ablation_family_constant"]:
                 {"log_loss", "brier", "ordinal_log_loss", "reliability": [{"p_mean", "freq", "n"}]},
              "n_tests", "n_folds", "fold_diagnostics": {model: {"ok", "rhat_max", ...}}},
     "link_scale": {"mean", "q05", "q95"} (the sim-to-real scale, from the full-data posterior),
     "observables": {name: {"units", scheme: {"physics" | "group_normal": {"coverage_90", "width_90",
                                                                          "interval_score_90"},
                                              "n_tests", "bounds": {"n", "within_90"},
                                              "by_family": {family: {"n", "coverage_90", "median_abs_error",
                                                                     "observed_mean", "predicted_median"}}}}},
     "quick": bool}

``observables`` scores the same folds' posterior predictive of every calibrated observable of the held-out tests
(`risk.bayes.physics.predict_observables`: force at short onset, 60-s voltage drop, log temperature-rise rate, in
the units of the decoder's channels) against the values the workbooks recorded, with the layout of
`risk.predict.heatcv` (whose per-group normal interval, here per family × SOC, is the baseline): under
``leave_family_out`` these are the simulator's errors on cell families the fit never saw. A censored value (a
saturated thermocouple, no short within the stroke) is not interval-scored; ``bounds`` counts those and the share
whose bound the 90 % interval reaches (for a lower bound: its 95 % quantile is above it).

The ablation replaces the SOC and capacity covariates of the metadata regression by constants, one latent
severity per family (leave-family-out of a full study only). ``--quick`` runs leave-family-out only, the
families dealt into `QUICK_FAMILY_FOLDS` grouped folds, at reduced draws.

`crossvalidate_real` is the older metadata-only CV of a real-data table (calorimetry).

The models behind ``risk predict --tests`` (`risk.predict.newtests`) are refitted with NumPyro NUTS on
each training fold (weights 0/1 of one compiled model, `risk.bayes.weighted`) and scored on the held-out tests, which they see only through their metadata:

- indentation (``tests.csv``): outcome TR = observed hazard level ≥ 6, scored with log loss and Brier;
- calorimetry (databank workbook): outcome bottom rupture/breach (log loss, Brier) and the coverage of
  the 90 % predictive interval of the total heat.

Folds leave out whole SOC levels, and whole replicates (fold r holds the r-th replicate of every
family × SOC cell). The baseline predicts each family's (cell type's) training frequency
(`risk.predict.crossval.frequency_baseline`). Result layout, read by the report::

    {scheme: {"model": {"log_loss", "brier"[, "coverage_90"]}, "baseline": {"log_loss", "brier"},
              "n_tests", "n_folds"}}
"""
from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from risk.bayes.model import FAMILY_SCALE, TR_LEVEL
from risk.bayes.baselines import fit_calorimetry_folds, fit_indentation_folds, predict_calorimetry, predict_indentation
from risk.predict.crossval import (brier, cross_validate, frequency_baseline, leave_groups_out, leave_replicates_out,
                                   log_loss)
from risk.predict.newtests import is_calorimetry, read_calorimetry_tests, read_indentation_tests


def _folds(df: pd.DataFrame, cell: list[str], seed: int, n_replicate_folds: int) -> dict:
    return {"leave_soc_out": lambda: leave_groups_out(df, "soc"),
            "leave_replicates_out": lambda: leave_replicates_out(df, cell, n_replicate_folds, seed)}


def crossvalidate_real(tests_file: str | Path, *, seed: int, draws: int = 300, tune: int = 300,
                       n_replicate_folds: int = 3, schemes: tuple[str, ...] = ("leave_soc_out", "leave_replicates_out")
                       ) -> dict:
    """Grouped CV of the metadata model for ``tests_file`` (indentation ``tests.csv`` or a databank
    workbook) against the family-frequency baseline; returns the ``crossval.json`` dict."""
    tests_file = Path(tests_file)
    fit_kw = {"seed": seed, "draws": draws, "tune": tune, "allow_bad_diagnostics": True}
    if is_calorimetry(tests_file):
        df = read_calorimetry_tests(tests_file)
        df = df[df["soc"].notna() & df["heat_kj"].notna()].reset_index(drop=True)
        outcome, interval, group, cell = "bottom_rupture", "heat_kj", "cell_type", ["cell_type", "soc", "trigger"]

        fit = None

        def fit_many(trains: list[pd.DataFrame]) -> list:  # every fold with one compiled weighted model
            rows = [df.index.get_indexer(train.index) for train in trains]
            return fit_calorimetry_folds(df, rows, seed=seed, draws=draws, tune=tune)

        def predict(tree, test):
            p = predict_calorimetry(tree, test, seed=seed)
            return pd.DataFrame({"p": p["p_bottom_rupture"].to_numpy(), "q05": p["heat_q05"].to_numpy(),
                                 "q95": p["heat_q95"].to_numpy()})
    else:
        df = read_indentation_tests(tests_file)
        df = df[df["level"].notna()].reset_index(drop=True)
        df["tr"] = (df["level"] >= TR_LEVEL).astype(float)
        outcome, interval, group, cell = "tr", None, "family", ["family", "soc"]

        fit = None

        def fit_many(trains: list[pd.DataFrame]) -> list:  # every fold in one NUTS run (one JAX compilation)
            rows = [df.index.get_indexer(train.index) for train in trains]
            return fit_indentation_folds(df.drop(columns=["tr"]), rows, **fit_kw)

        def predict(tree, test):
            return pd.DataFrame({"p": predict_indentation(tree, test, seed=seed)["p_tr"].to_numpy()})

    # the model must never see held-out outcomes: hide them (and the hazard level they derive from)
    hidden = [c for c in ("level",) if c in df]
    out = {}
    for scheme, folds in _folds(df, cell, seed, n_replicate_folds).items():
        if scheme not in schemes:
            continue
        model = cross_validate(df, folds(), fit, _hiding(predict, hidden), outcome=outcome, interval_target=interval,
                               fit_many=fit_many)
        base = cross_validate(df, folds(), *frequency_baseline(group, outcome), outcome=outcome)
        entry = {"model": {"log_loss": model.log_loss, "brier": model.brier},
                 "baseline": {"log_loss": base.log_loss, "brier": base.brier},
                 "n_tests": int(df[outcome].notna().sum()), "n_folds": int(model.predictions["fold"].nunique())}
        if model.coverage is not None:
            entry["model"]["coverage_90"] = model.coverage
        out[scheme] = entry
    return out


def _hiding(predict, columns: list[str]):
    def wrapped(state, test: pd.DataFrame) -> pd.DataFrame:
        return predict(state, test.assign(**{c: np.nan for c in columns}))
    return wrapped


def write_crossval(result: dict, path: str | Path) -> None:
    """Write ``crossval.json`` atomically."""
    path = Path(path)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(path)


# ------------------------------------------------------------------------------ the reported model
SCHEMES = ("leave_replicates_out", "leave_soc_out", "leave_family_out")
#: --quick leaves families out in this many grouped folds (whole families, half of them per fold) instead of
#: one fold per family: the physics folds are most of a quick run's cost, and two run at once on 2 cores
#: (labelled quick in crossval.json; a check of the pipeline, not the validation a full study reports)
QUICK_FAMILY_FOLDS = 2


def reliability(y: np.ndarray, p: np.ndarray, bins: int = 5) -> list[dict]:
    """Reliability curve: per equal-width bin of ``p`` (non-empty ones), mean ``p``, observed frequency, count."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    return [{"p_mean": float(p[which == b].mean()), "freq": float(y[which == b].mean()), "n": int((which == b).sum())}
            for b in range(bins) if (which == b).any()]


def _scores(res: pd.DataFrame) -> dict:
    """TR log loss, Brier score, reliability curve (and ordinal log loss) of one model's held-out predictions,
    overall and per cell family (``by_family``: n, TR log loss, Brier score)."""
    y, p = res["tr"].to_numpy(float), res["pred_p"].to_numpy(float)
    out = {"log_loss": log_loss(y, p), "brier": brier(y, p), "reliability": reliability(y, p)}
    if "pred_p_observed_level" in res:
        out["ordinal_log_loss"] = float(-np.mean(np.log(np.clip(res["pred_p_observed_level"].to_numpy(float), 1e-6, 1))))
    if "family" in res:
        out["by_family"] = {str(f): {"n": int(len(g)), "log_loss": log_loss(g["tr"].to_numpy(float), g["pred_p"].to_numpy(float)),
                                     "brier": brier(g["tr"].to_numpy(float), g["pred_p"].to_numpy(float))}
                            for f, g in res.groupby("family", sort=True)}
    return out


def _diag(d, tree=None) -> dict:
    """A fold's diagnostics for ``crossval.json``; with its ``tree``, the fold's wall time [s] (every attempt)."""
    keep = ("ok", "rhat_max", "ess_bulk_min", "ess_tail_min", "divergences", "messages")
    out = {k: v for k, v in asdict(d).items() if k in keep}
    if tree is not None and "fold_seconds" in tree.attrs:
        out["seconds"] = round(float(tree.attrs["fold_seconds"]), 1)
    return out


#: a fold fit whose R-hat exceeds this has chains that did not mix (the folds' reduced draws give 1.02-1.03 when they
#: do). It is refitted, up to `FOLD_ATTEMPTS` fits, and the best kept: first resumed from its own final draws with
#: their pooled variances as the mass matrix (`WeightedFits.fit(resume=True)`: a second warm-up that starts from the
#: ridge's real extent, not from mean-field ADVI's cross-section of it), then from new ADVI starting points at a new
#: seed (a chain in another mode). Measured on the default study (2026-12-05 ensemble), folds leaving out the LCO
#: pouch 2 A h / 1.5 A h cells: R-hat 1.53 / 1.40 (bulk ESS 7 / 9) from ADVI; resumed, 1.022 / 1.025 (ESS 562 / 271).
#: Two refits at new seeds had left both at 1.54. At the stage's own seeds two folds (LCO pouch 2 A h and 0.5 A h left
#: out) stayed in two modes whatever the refit, until the family spread's prior was widened (the study's
#: ``inference.family_scale`` 0.5 → 1.0): the ADVI start still puts a chain in the second mode (R-hat 1.53 / 1.46),
#: the resumed fit mixes (1.020 / 1.021).
FOLD_REFIT_RHAT = 1.05
FOLD_ATTEMPTS = 3


#: per process: the compiled weighted fold model of each `FoldFits` (its ``key``), reused by every fold a worker fits
_FITTERS: dict = {}


def _fitter(key: str, decoder_dir: str, data, setup, kw: dict):
    """``(WeightedFits, setup)`` of ``data``'s weighted physics model, built and compiled once per process.

    Without ``setup.centred`` the centring is decided once, by ADVI of the non-centred model on all of ``data``
    (`risk.bayes.physics.centred_families`): the geometry the sampler works in, never the posterior."""
    if key not in _FITTERS:
        from risk.bayes.physics import build_physics_model, centred_families
        from risk.bayes.sampling import advi_fit
        from risk.bayes.weighted import WeightedFits
        from sim2real import load_decoder

        decoder = load_decoder(decoder_dir)
        if setup.centred is None:
            fit = advi_fit(build_physics_model(data, decoder, setup), seed=0)
            setup = replace(setup, centred=centred_families(fit[1], data.families) or (0.0,) * setup.subspace.dim)
        _FITTERS.clear()  # one study's folds at a time
        _FITTERS[key] = (WeightedFits(build_physics_model(data, decoder, setup, weighted=True), **kw), setup)
    return _FITTERS[key]


def _fit_fold(key: str, decoder_dir: str, data, setup, rows: np.ndarray, seed: int, kw: dict):
    """One fold's physics fit on the tests ``rows`` of ``data`` (a worker process: the decoder is reloaded from
    ``decoder_dir`` and the weighted model compiled once per process, `_fitter`); refitted while its chains have not
    mixed (`FOLD_REFIT_RHAT`), each refit named in the diagnostics' messages. The tree keeps the fold's
    tests and the families they belong to (a family with no training test is a new family to prediction)."""
    t0 = time.perf_counter()
    fitter, setup = _fitter(key, decoder_dir, data, setup, kw)
    n = len(data.test)
    weight = np.zeros(n)
    weight[np.asarray(rows, int)] = 1.0
    family = np.asarray(data.family).astype(str)
    keep = {"test": weight > 0, "family": np.isin(np.asarray(data.families, str), family[weight > 0])}
    best, notes = None, []
    for attempt in range(FOLD_ATTEMPTS):
        # a fold is scored by its draws alone: diagnostics of the free variables (weighted fits store no log likelihood)
        tree, diag = fitter.fit(weight, seed=seed + 7919 * attempt, keep=keep, attrs=setup.attrs(),
                                resume=attempt == 1)
        if best is None or diag.rhat_max < best[1].rhat_max:
            best = (tree, diag)
        if diag.rhat_max <= FOLD_REFIT_RHAT or attempt == FOLD_ATTEMPTS - 1:
            break
        notes.append(f"resumed from its draws with their variances as mass matrix after R-hat {diag.rhat_max:.3f}"
                     if attempt == 0 else f"refitted at a new seed after R-hat {diag.rhat_max:.3f} (a chain in "
                                          "another mode)")
    tree, diag = best
    tree.attrs["fold_seconds"] = time.perf_counter() - t0  # (compilation,) ADVI and sampling of every attempt
    return tree, replace(diag, messages=notes + list(diag.messages)) if notes else diag


class FoldFits:
    """Physics fits of training sets of ``data`` submitted ahead and run ``workers`` at a time in spawned processes,
    so that the caller can fit other models meanwhile (a context manager; ``workers ≤ 1``: each fit runs in this
    process when its result is asked for). Each process compiles the weighted model once (`_fitter`) and fits
    every fold it is given with it. A fold's chains run in parallel threads (`risk.bayes.weighted`); a second process
    keeps the cores busy while the other compiles, runs ADVI or post-processes (single-threaded)."""

    def __init__(self, decoder_dir, data, setup, *, workers: int = 1, **kw):
        import uuid

        self.decoder_dir, self.data, self.setup, self.workers, self.kw = str(decoder_dir), data, setup, workers, kw
        self.key = uuid.uuid4().hex
        self._pool = None

    def __enter__(self) -> "FoldFits":
        if self.workers > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, rows: list[np.ndarray], seeds: list[int]) -> list:
        """One pending fit per training set (``rows``: positions in ``data``); ``.result()`` of each gives
        ``(tree, diagnostics)``."""
        args = [(self.key, self.decoder_dir, self.data, self.setup, r, sd, self.kw) for r, sd in zip(rows, seeds)]
        if self._pool is None:
            from concurrent.futures import Future

            class _Lazy(Future):
                def __init__(self, fn):
                    super().__init__()
                    self.fn = fn

                def result(self, timeout=None):
                    if not self.done():
                        self.set_result(self.fn())
                    return super().result(timeout)

            return [_Lazy(lambda a=a: _fit_fold(*a)) for a in args]
        return [self._pool.submit(_fit_fold, *a) for a in args]


def fit_folds(decoder_dir, data, rows: list[np.ndarray], setup, *, seeds: list[int], workers: int = 1,
              **kw) -> list[tuple]:
    """Physics fits of the folds' training sets (``rows`` of ``data``), ``workers`` at a time (`FoldFits`).
    Returns ``[(tree, diagnostics)]``."""
    with FoldFits(decoder_dir, data, setup, workers=min(workers, len(rows)), **kw) as pool:
        return [f.result() for f in pool.submit(rows, seeds)]


def fold_setup(setup, centred: Mapping[str, Sequence[float]] | Sequence[float] | None):
    """The folds' `PhysicsSetup`: with ``centred`` (the calibrated model's centring, ``{family: (k,) λ}`` or
    ``(k,)``, `risk.bayes.physics.centred_families`) every fold samples in that geometry and skips the second ADVI
    fit that deciding it per fold costs (~12 s of compilation each); centring changes the sampler's geometry, never
    the posterior, so the decision taken on all tests leaks nothing into a fold (a family a fold does not see is
    non-centred in it, `risk.bayes.model.centring_mask`). None (or a different number of directions): each fold
    decides."""
    from dataclasses import replace

    from risk.bayes.physics import centring_from_json, centring_json

    if centred is None:
        return setup
    centred = centring_from_json(centring_json(centred))
    rows = centred.values() if isinstance(centred, Mapping) else [centred]
    if any(len(r) != setup.subspace.dim for r in rows):
        return setup
    return replace(setup, centred=centred)


def training_rows(n: int, held: np.ndarray, family: np.ndarray, whole_families: bool) -> np.ndarray:
    """Rows (of ``n``) a physics fold is fitted on: all but the fold's held-out tests ``held``; with
    ``whole_families`` also without every other test of the held-out families (a left-out family is one the fold
    never saw: measured on the default study, the one unlabelled NMC 10 Ah test left in the NMC fold made NMC a
    known family located by that test's curves alone, TR log loss 2.29 instead of 0.56)."""
    keep = np.setdiff1d(np.arange(n), held)
    return keep[~np.isin(family[keep], np.unique(family[held]))] if whole_families else keep


def _worst(per_fold: list[dict]) -> dict:
    """The worst diagnostics over folds (``ok`` only if every fold passed)."""
    return {"ok": all(d["ok"] for d in per_fold), "rhat_max": max(d["rhat_max"] for d in per_fold),
            "ess_bulk_min": min(d["ess_bulk_min"] for d in per_fold),
            "ess_tail_min": min(d["ess_tail_min"] for d in per_fold),
            "divergences": sum(d["divergences"] for d in per_fold)}


def _score_observables(observables: dict, scheme: str, df: pd.DataFrame, folds: list, observed: ObservedValues,
                       q: np.ndarray) -> None:
    """``observables[name][scheme]``: every observable's held-out physics intervals ``q`` ``(3, n, n_obs)`` (5, 50,
    95 %) against the measured values and the family × SOC normal baseline (`risk.predict.heatcv._score_observable`),
    and the bounds the 90 % interval reaches (module doc)."""
    from risk.predict.heatcv import _score_observable

    held = np.concatenate([te for _, te in folds])
    for k, name in enumerate(observed.names):
        entry = observables.setdefault(name, {"units": observed.units[k]})
        _score_observable(entry, scheme, df, held, folds, observed.exact[:, k], q[..., k],
                          levels=OBSERVABLE_BASELINE_LEVELS)
        b = held[np.isfinite(observed.bound[held, k]) & np.isfinite(q[0, held, k])]
        if b.size and scheme in entry:
            up = observed.sign[b, k] > 0
            reach = np.where(up, q[2, b, k] >= observed.bound[b, k], q[0, b, k] <= observed.bound[b, k])
            entry[scheme]["bounds"] = {"n": int(b.size), "within_90": float(np.mean(reach))}


def crossvalidate_study(study, decoder, data, priors, *, decoder_dir, table=None, seed: int, draws: int = 500,
                        tune: int = 500, chains: int = 4, target_accept: float = 0.9, max_dim: int = 3,
                        quick: bool = False, n_replicate_folds: int = 3, workers: int = 1,
                        family_discrepancy: float | None = None,
                        centred: Mapping[str, Sequence[float]] | Sequence[float] | None = None,
                        emulator_length: float | None = None, family_scale: float = FAMILY_SCALE) -> dict:
    """Grouped CV of the physics model, the metadata regression and the family-frequency baseline.

    Parameters
    ----------
    study : the `risk.study.Study` (its data selection is already applied to ``data``).
    decoder, data, priors : the frozen decoder, `CalibrationData` of the study's real tests and the
        priors in decoder order (as the calibrate stage builds them).
    decoder_dir : where ``decoder`` was loaded from (fold fits in worker processes reload it).
    workers : physics folds fitted at once (processes; `fit_folds`).
    table : unused for indentation (every model reads the same labelled rows of ``data``); for
        calorimetry the databank workbook (the baseline groups' triggers; metadata CV of heat intervals).
        Without hazard levels the physics model's heat intervals are cross-validated instead
        (`risk.predict.heatcv`, the ``"heat"`` entry).
    quick : leave-family-out only (the scheme where physics must earn its place), in `QUICK_FAMILY_FOLDS`
        grouped folds, without the ablation.
    family_discrepancy : the study's ``inference.family_discrepancy_scale`` (`risk.bayes.physics.PhysicsSetup`).
    centred : the calibrated posterior's centring of the family locations (`fold_setup`), or None.
    emulator_length : the study's ``inference.emulator_error_length`` (`risk.bayes.physics.emulator_spec`).
    family_scale : the study's ``inference.family_scale`` (`risk.bayes.physics.PhysicsSetup`).
    """
    from risk.bayes.physics import physics_setup

    if data.hazard_level is None or not np.isfinite(data.hazard_level).any():
        from risk.predict.heatcv import crossvalidate_heat

        calorimetry = table is not None and is_calorimetry(Path(table))
        heat = crossvalidate_heat(decoder, data, priors, decoder_dir=decoder_dir, table=table if calorimetry else None,
                                  seed=seed, draws=draws, tune=tune, chains=chains, target_accept=target_accept,
                                  max_dim=max_dim, quick=quick, n_replicate_folds=n_replicate_folds, workers=workers,
                                  family_discrepancy=family_discrepancy, centred=centred,
                                  emulator_length=emulator_length, family_scale=family_scale,
                                  family_logit=study.inference.family_logit_scale,
                                  family_link=study.inference.family_link_scale)
        out = {"quick": bool(quick)} if heat is None else {"quick": bool(quick), "heat": heat}
        if calorimetry and not quick:  # the metadata heat/bottom-rupture model's own CV, as a baseline
            out["metadata_only"] = crossvalidate_real(table, seed=seed, draws=draws, tune=tune)
        if len(out) == 1:
            out["note"] = "no labelled tests and no heat observable"
        return out
    level = np.asarray(data.hazard_level, float)
    lab = np.flatnonzero(np.isfinite(level))
    family = np.asarray(data.family).astype(str)
    names = list(decoder.condition_names)
    cond = np.asarray(data.conditions, float)
    soc = cond[:, names.index("soc")] if "soc" in names else np.full(len(level), 0.5)
    cap_ah = cond[:, names.index("capacity_nominal")] / 3600.0 if "capacity_nominal" in names else np.full(len(level), np.nan)
    df = pd.DataFrame({"row": lab, "FileName": np.asarray(data.test)[lab], "family": np.asarray(data.family)[lab],
                       "soc": soc[lab], "capacity_ah": cap_ah[lab], "level": level[lab],
                       "tr": (level[lab] >= TR_LEVEL).astype(float)})
    # SOC levels left out in three bands (≤ 30 %, 30–70 %, > 70 %): every band holds several levels of
    # several families, so each fold extrapolates in SOC; one fold per level (11 here) would cost 11 fits
    df["soc_band"] = np.digitize(df["soc"], [0.3 + 1e-9, 0.7 + 1e-9])
    setup = fold_setup(physics_setup(decoder, data, priors, seed=seed, max_dim=max_dim,
                                     family_discrepancy=family_discrepancy, emulator_length=emulator_length,
                                     family_scale=family_scale, family_logit=study.inference.family_logit_scale,
                                     family_link=study.inference.family_link_scale),
                          centred)
    logit_fn = decoder.numpy_apply("logit_runaway")
    apply_obs = decoder.numpy_apply()

    def observable_fn(u, c):
        res = apply_obs(u, c)
        return res["mean"], res["log_scale"]

    observed = ObservedValues.of(decoder, data, df["row"].to_numpy())
    fit_kw = {"seed": seed, "draws": draws, "tune": tune}
    folds_of = {"leave_replicates_out": lambda: leave_replicates_out(df, ["family", "soc"], n_replicate_folds, seed),
                "leave_soc_out": lambda: leave_groups_out(df, "soc_band"),
                "leave_family_out": lambda: leave_groups_out(df, "family", QUICK_FAMILY_FOLDS if quick else None)}
    schemes = ("leave_family_out",) if quick else SCHEMES
    out: dict = {"quick": bool(quick)}
    kw = {"chains": chains, "target_accept": target_accept, "draws": draws, "tune": tune}
    with FoldFits(decoder_dir, data, setup, workers=workers, **kw) as pool:
        # every scheme's physics folds are queued first: the workers fit them while this process fits the
        # metadata regressions (which otherwise left a core idle for ~1/3 of the stage)
        pending = {}
        for scheme in schemes:
            # one NUTS run per fold on the fold's training tests only (held-out tests give neither outcome
            # nor observables; a family with no training test is a new family). Batching the folds as
            # copies in one run shares a step size and a tree depth across copies: measured on the quick
            # default study, one copy's stuck chain froze every copy (R-hat 3.4, every draw divergent).
            trains = [df.iloc[tr] for tr, _ in folds_of[scheme]()]
            rows = [training_rows(len(level), np.setdiff1d(lab, t["row"].to_numpy()), family, scheme == "leave_family_out")
                    for t in trains]
            pending[scheme] = pool.submit(rows, seeds=[seed + k for k in range(len(trains))])
        for scheme in schemes:
            out[scheme] = _score_scheme(scheme, pending[scheme], df, folds_of[scheme], cond, logit_fn, seed, quick,
                                        fit_kw, observable_fn=observable_fn, observed=observed,
                                        observables=out.setdefault("observables", {}))
    return out


#: the baseline of the observables' intervals: a normal per family × SOC, else per family, per SOC, all tests
#: (`risk.predict.heatcv.group_normal_intervals`)
OBSERVABLE_BASELINE_LEVELS = (("family", "soc"), ("family",), ("soc",), ())


@dataclass(frozen=True)
class ObservedValues:
    """The held-out tests' measured observables in their channels' units: ``exact`` ``(n, n_obs)`` (NaN where not
    measured or a bound), ``bound`` ``(n, n_obs)`` (NaN unless a bound) and its ``sign`` (+1 lower, −1 upper), the
    observable ``names`` and ``units``, and the decoder's ``layout`` (normalised → channel units)."""

    exact: np.ndarray
    bound: np.ndarray
    sign: np.ndarray
    names: tuple[str, ...]
    units: tuple[str, ...]
    layout: object

    @classmethod
    def of(cls, decoder, data, rows: np.ndarray) -> "ObservedValues":
        """The values of ``data``'s tests at ``rows`` (decoder-normalised in ``data``; denormalised here)."""
        from risk.bayes.model import censor_sign

        obs = np.asarray(data.observables, float)[rows]
        sign = censor_sign(data.censored, np.shape(data.observables))[rows]
        values = decoder.layout.denormalise(obs)
        units = {c.name: c.units for c in decoder.layout.channels}
        return cls(np.where(sign == 0, values, np.nan), np.where(sign != 0, values, np.nan), sign,
                   tuple(decoder.observable_names), tuple(units.get(n, "1") for n in decoder.observable_names),
                   decoder.layout)


def _score_scheme(scheme: str, pending: list, df: pd.DataFrame, folds, cond: np.ndarray, logit_fn, seed: int,
                  quick: bool, fit_kw: dict, *, observable_fn=None, observed: "ObservedValues | None" = None,
                  observables: dict | None = None) -> dict:
    """One scheme's entry of ``crossval.json``: the metadata regression (and ablation) fitted here while the
    physics folds ``pending`` (`FoldFits.submit`) finish elsewhere, then every model scored on the same folds.
    With ``observable_fn`` (`risk.bayes.physics.predict_observables`) and ``observed``, the physics folds' predictive
    intervals of every observable are scored into ``observables[name][scheme]`` (module doc)."""
    from risk.bayes.physics import p_tr_from_levels, predict_levels, predict_observables
    from risk.predict.heatcv import ALPHA

    diags: dict = {}

    def physics_many(trains: list[pd.DataFrame]) -> list:
        fitted = [f.result() for f in pending]
        per_fold = [_diag(diag, tree) for tree, diag in fitted]
        diags["physics"] = _worst(per_fold) | {"folds": per_fold}
        return [tree for tree, _ in fitted]

    q_obs = None if observed is None else np.full((3, len(df), len(observed.names)), np.nan)

    def physics_predict(tree, test: pd.DataFrame) -> pd.DataFrame:
        rows = test["row"].to_numpy()
        p_level = predict_levels(tree, logit_fn, list(test["family"]), cond[rows], seed=seed).mean(axis=0)
        if q_obs is not None:
            y = predict_observables(tree, observable_fn, list(test["family"]), cond[rows], seed=seed)
            y = observed.layout.denormalise(y)  # (draws, n, n_obs) in the channels' units
            q_obs[:, df.index.get_indexer(test.index)] = np.quantile(y, [ALPHA / 2, 0.5, 1 - ALPHA / 2], axis=0)
        return pd.DataFrame({"p": p_tr_from_levels(p_level), **{f"p_level_{j + 1}": p_level[:, j] for j in range(7)}})

    def metadata_many(trains: list[pd.DataFrame], constant: bool = False) -> list:
        rows = [df.index.get_indexer(t.index) for t in trains]
        base = df.drop(columns=["tr"])
        if constant:  # ablation: one constant latent severity per family (no SOC, no capacity)
            base = base.assign(soc=0.5, capacity_ah=1.0)
        trees = fit_indentation_folds(base, rows, allow_bad_diagnostics=True, **fit_kw)
        diags["ablation_family_constant" if constant else "metadata"] = json.loads(trees[0].attrs.get("diagnostics", "{}"))
        return trees

    def metadata_predict(tree, test: pd.DataFrame, constant: bool = False) -> pd.DataFrame:
        test = test.assign(soc=0.5, capacity_ah=1.0) if constant else test
        p = predict_indentation(tree, test, seed=seed)
        return p.drop(columns=["FileName"]).assign(p=p["p_tr"].to_numpy())

    def with_level(predict):
        def wrapped(state, test: pd.DataFrame) -> pd.DataFrame:
            pred = predict(state, test.assign(level=np.nan))
            lv = df.loc[test.index, "level"].to_numpy(int)
            return pred.assign(p_observed_level=pred[[f"p_level_{j}" for j in range(1, 8)]].to_numpy()[
                np.arange(len(lv)), lv - 1])
        return wrapped

    scores: dict = {}
    res = cross_validate(df, folds(), None, with_level(metadata_predict), outcome="tr", fit_many=metadata_many)
    scores["metadata"] = _scores(res.predictions)
    base = cross_validate(df, folds(), *frequency_baseline("family", "tr"), outcome="tr")
    scores["family_frequency"] = _scores(base.predictions)
    if scheme == "leave_family_out" and not quick:  # the ablation is a full-study check
        res = cross_validate(df, folds(), None, with_level(lambda t, x: metadata_predict(t, x, constant=True)),
                             outcome="tr", fit_many=lambda trains: metadata_many(trains, constant=True))
        scores["ablation_family_constant"] = _scores(res.predictions)
    res = cross_validate(df, folds(), None, with_level(physics_predict), outcome="tr", fit_many=physics_many)
    entry = {"physics": _scores(res.predictions)} | scores
    if q_obs is not None:
        _score_observables(observables, scheme, df, list(folds()), observed, q_obs)
    entry.update(n_tests=int(len(df)), n_folds=int(res.predictions["fold"].nunique()),
                 fold_diagnostics={m: diags[m] for m in ("physics", "metadata", "ablation_family_constant")
                                   if m in diags})
    return entry
