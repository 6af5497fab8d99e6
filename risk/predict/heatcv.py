"""Grouped cross-validation of the physics model's heat predictive intervals (calorimetry → ``crossval.json``).

The calorimetry study reports total heat of new tests through the physics posterior
(`risk.bayes.physics.predict_observables`). This module validates those intervals on tests the fold's fit
never saw: leave replicates out (fold r holds the r-th replicate of every cell type × SOC × trigger cell)
and leave whole cell types out (most databank types were tested at one SOC only, so leaving SOC levels out
is not a separate scheme here). In every fold the physics model is refitted with NUTS on the training
tests only (`risk.predict.realcv.FoldFits`, one pool for both schemes); held-out tests are new cells of their type (of a new type
when types are left out) under their own conditions.

Baseline (what a test engineer would do without a simulator): a normal interval per cell type × SOC ×
trigger fitted on the same training rows — the group's mean and sd, the pooled within-group sd where the
group has fewer than two tests; a group absent from training falls back to its SOC × trigger, then to all
training tests. Scores per model: coverage of the 90 % central interval, its mean width [kJ] and the
interval score (Gneiting & Raftery, JASA 102 (2007) 359, eq. 43; lower is better) [kJ]. Layout::

    {"heat": {"leave_replicates_out" | "leave_family_out":
                 {"physics" | "group_normal": {"coverage_90", "width_90", "interval_score_90"},
                  "n_tests", "n_folds", "fold_diagnostics": {"physics": {...worst fold..., "folds": [...]}}},
              "runaway": {scheme: {"physics" | "family_frequency" | "soc_trigger_frequency":
                                    {"log_loss", "brier", "reliability"}, "n_tests", "n_folds"}},
              "observable": "heat_released_total", "units": "kJ",
              "observables": {name: {"units", scheme: {"physics" | "group_normal": {...scores...},
                                                     "by_family": {family: {"n", "coverage_90", "median_abs_error",
                                                                            "observed_mean", "predicted_median"}}}}}}}

``observables`` scores every calibrated observable of the held-out tests the same way (e.g. the databank's
ejecta share of the heat, ``heat_fraction_ejecta``), per scheme and, out of sample, per cell type.

The ``runaway`` entry (when the held-out tests' runaway outcomes vary) scores the same folds' physics P(TR)
of each held-out test (`risk.bayes.physics.predict_p_tr`) against `RUNAWAY_BASELINES`. Where the decoder models
the casing's breach margin (`risk.bayes.data.BREACH_MARGIN`, observed by its sign only, hence not interval-scored),
the ``bottom_rupture`` entry scores the physics P(margin > 0) of each held-out test the same way (layout of
``runaway``; baselines: the training frequency of rupture per cell type and per SOC × trigger).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from risk.bayes.data import BREACH_MARGIN
from risk.bayes.model import FAMILY_SCALE
from risk.predict.crossval import leave_groups_out, leave_replicates_out

HEAT = "heat_released_total"
#: runaway baselines a test engineer would use: the training frequency of runaway per cell type, and per
#: SOC × trigger (add-½ smoothed; an unseen group gets the overall frequency)
RUNAWAY_BASELINES = {"family_frequency": "family", "soc_trigger_frequency": "soc_trigger"}
ALPHA = 0.1  # 90 % central intervals
Z = float(stats.norm.ppf(1 - ALPHA / 2))


def interval_scores(y: np.ndarray, lo: np.ndarray, hi: np.ndarray, alpha: float = ALPHA) -> dict:
    """Coverage, mean width and mean interval score of central ``1 - alpha`` intervals ``[lo, hi]``."""
    y, lo, hi = (np.asarray(a, float) for a in (y, lo, hi))
    score = hi - lo + 2 / alpha * ((lo - y) * (y < lo) + (y - hi) * (y > hi))
    return {"coverage_90": float(np.mean((lo <= y) & (y <= hi))), "width_90": float(np.mean(hi - lo)),
            "interval_score_90": float(np.mean(score))}


def group_normal_intervals(train: pd.DataFrame, test: pd.DataFrame, value: str = "heat_kj",
                           levels: tuple[tuple[str, ...], ...] = (("family", "soc", "trigger"), ("soc", "trigger"), ())
                           ) -> tuple[np.ndarray, np.ndarray]:
    """The baseline's 90 % normal intervals ``(lo, hi)`` for ``test`` rows, fitted on ``train`` (module doc)."""
    by = list(levels[0])
    within = train.groupby(by)[value].transform(lambda v: v - v.mean())
    dof = len(train) - train.groupby(by).ngroups
    pooled = float(np.sqrt((within ** 2).sum() / dof)) if dof > 0 else float(train[value].std(ddof=1))
    # per level, each group's (mean, sd, n) once; a test takes the first level holding its group
    stats = []
    for keys in levels:
        if keys:
            agg = train.groupby(list(keys))[value].agg(["mean", "std", "size"])
            index = agg.index if len(keys) > 1 else [(k,) for k in agg.index]
            stats.append((list(keys), dict(zip(index, agg.itertuples(index=False, name=None)))))
        else:
            stats.append(([], {(): (train[value].mean(), train[value].std(ddof=1), len(train))}))
    lo, hi = np.full(len(test), np.nan), np.full(len(test), np.nan)
    for i, row in enumerate(test.to_dict("records")):
        for keys, table in stats:
            found = table.get(tuple(row[k] for k in keys))
            if found is not None and found[2] > 0:
                m, sd, n = found
                sd = float(sd) if n >= 2 else pooled
                lo[i], hi[i] = m - Z * sd, m + Z * sd
                break
    return lo, hi


def crossvalidate_heat(decoder, data, priors, *, decoder_dir, table: Path | None, seed: int, draws: int, tune: int,
                       chains: int = 4, target_accept: float = 0.9, max_dim: int = 3, quick: bool = False,
                       n_replicate_folds: int = 3, workers: int = 1, family_discrepancy: float | None = None,
                       centred: Mapping[str, Sequence[bool]] | Sequence[bool] | None = None,
                       emulator_length: float | None = None,
                       family_scale: float = FAMILY_SCALE, family_logit: float | None = None,
                       family_link: float | None = None) -> dict | None:
    """The ``"heat"`` entry of ``crossval.json`` (module doc); None when the decoder has no heat observable.

    Parameters
    ----------
    decoder, data, priors : the frozen decoder, `CalibrationData` of the study's tests, the priors in decoder
        order (as the calibrate stage builds them).
    table : the databank workbook (the trigger of each test, for the baseline's groups); None: one trigger.
    quick : leave cell types out only (in `QUICK_FAMILY_FOLDS` grouped folds), at the draws given.
    family_scale : the study's ``inference.family_scale`` (`risk.bayes.physics.PhysicsSetup`); family_logit : its
        ``inference.family_logit_scale`` (the same); family_link : its ``inference.family_link_scale`` (the same).
    """

    from risk.bayes.physics import physics_setup, predict_observables, predict_p_tr
    from risk.predict.crossval import frequency_baseline
    from risk.predict.realcv import _scores
    from risk.predict.realcv import FoldFits, _diag, _worst, fold_setup, training_rows

    names = decoder.layout.observable_names
    if HEAT not in names:
        return None
    j = names.index(HEAT)
    obs = np.asarray(data.observables, float)
    rows = np.flatnonzero(np.isfinite(obs[:, j]))
    heat_kj = decoder.layout.denormalise(obs[rows])[:, j] / 1e3
    cond = np.asarray(data.conditions, float)
    cnames = list(data.condition_names)
    soc = cond[rows, cnames.index("soc")] if "soc" in cnames else np.full(rows.size, np.nan)
    tests = np.asarray(data.test).astype(str)[rows]
    trigger = np.full(rows.size, "")
    if table is not None:
        from risk.predict.newtests import read_calorimetry_tests

        lookup = dict(zip(*(read_calorimetry_tests(table)[c] for c in ("Test-ID", "trigger"))))
        trigger = np.array([lookup.get(t, "") for t in tests])
    tr = np.asarray(data.runaway, float)[rows] if data.runaway is not None else np.full(rows.size, np.nan)
    breach = names.index(BREACH_MARGIN) if BREACH_MARGIN in names else None
    rupture = np.full(rows.size, np.nan)
    if breach is not None and data.censored is not None:  # the margin's sign: +1 ruptured, -1 did not
        sign = np.asarray(data.censored)[rows, breach].astype(float)
        rupture = np.where(np.isfinite(obs[rows, breach]) & (sign != 0), (sign > 0).astype(float), np.nan)
    df = pd.DataFrame({"row": rows, "family": np.asarray(data.family)[rows], "soc": np.round(soc, 3),
                       "trigger": trigger, "heat_kj": heat_kj, "tr": tr, "rupture": rupture})
    df["soc_trigger"] = df["soc"].astype(str) + " " + df["trigger"]
    setup = fold_setup(physics_setup(decoder, data, priors, seed=seed, max_dim=max_dim,
                                     family_discrepancy=family_discrepancy, emulator_length=emulator_length,
                                     family_scale=family_scale, family_logit=family_logit,
                                     family_link=family_link),
                          centred)
    apply = decoder.numpy_apply()

    def observable_fn(u, c):
        res = apply(u, c)
        return res["mean"], res["log_scale"]

    def logit_fn(u, c):
        return apply(u, c)["logit_runaway"]

    from risk.predict.realcv import QUICK_FAMILY_FOLDS

    schemes = {"leave_family_out": lambda: leave_groups_out(df, "family", QUICK_FAMILY_FOLDS if quick else None)}
    if not quick:
        schemes = {"leave_replicates_out": lambda: leave_replicates_out(df, ["family", "soc", "trigger"],
                                                                        n_replicate_folds, seed), **schemes}
    out: dict = {"observable": HEAT, "units": "kJ", "observables": {}}
    family = np.asarray(data.family).astype(str)
    values = decoder.layout.denormalise(obs[rows])  # (n, n_obs), SI; NaN where a test lacks an observable
    scale = np.array([1e-3 if n == HEAT else 1.0 for n in names])  # heat in kJ, shares as they are
    values = values * scale
    plan = {scheme: list(make()) for scheme, make in schemes.items()}
    # one pool for every scheme's folds: each worker process compiles the weighted model once for all of them
    # (`FoldFits`), and the 3 + 6 folds balance over the workers
    with FoldFits(decoder_dir, data, setup, workers=min(workers, sum(map(len, plan.values()))), chains=chains,
                  target_accept=target_accept, draws=draws, tune=tune) as pool:
        # a fold's fit sees its training tests only: held-out tests give neither observables nor outcome, and a
        # left-out cell type's tests without a heat value are left out with it (a type the fold never saw)
        pending = {scheme: pool.submit([training_rows(len(obs), df["row"].to_numpy()[te], family,
                                                      scheme == "leave_family_out") for _, te in folds],
                                       seeds=[seed + k for k in range(len(folds))]) for scheme, folds in plan.items()}
        fits = {scheme: [f.result() for f in futures] for scheme, futures in pending.items()}
    for scheme, folds in plan.items():
        fitted = fits[scheme]
        lo_p, hi_p, lo_b, hi_b, p_tr, p_rupture = (np.empty(len(df)) for _ in range(6))
        q_all = np.full((3, len(df), len(names)), np.nan)  # physics 5 / 50 / 95 % per observable
        p_base = {name: np.empty(len(df)) for name in RUNAWAY_BASELINES}
        p_base_rupture = {name: np.empty(len(df)) for name in RUNAWAY_BASELINES}
        for (tr, te), (tree, _) in zip(folds, fitted):
            test = df.iloc[te]
            c_test = cond[test["row"].to_numpy()]
            y = decoder.layout.denormalise(predict_observables(tree, observable_fn, list(test["family"]), c_test,
                                                               seed=seed))
            q_all[:, te] = np.quantile(y * scale, [ALPHA / 2, 0.5, 1 - ALPHA / 2], axis=0)
            if breach is not None:
                p_rupture[te] = (y[..., breach] > 0).mean(axis=0)
            lo_p[te], hi_p[te] = q_all[0, te, j], q_all[2, te, j]
            lo_b[te], hi_b[te] = group_normal_intervals(df.iloc[tr], test)
            p_tr[te] = predict_p_tr(tree, logit_fn, list(test["family"]), c_test, seed=seed).mean(axis=0)
            train = df.iloc[tr][df.iloc[tr]["tr"].notna()]
            for name, group in RUNAWAY_BASELINES.items():
                fit, predict = frequency_baseline(group, "tr")
                p_base[name][te] = predict(fit(train), test)["p"].to_numpy()
                fit, predict = frequency_baseline(group, "rupture")
                p_base_rupture[name][te] = predict(fit(df.iloc[tr][df.iloc[tr]["rupture"].notna()]), test)["p"].to_numpy()
        held = np.concatenate([te for _, te in folds])
        y = df["heat_kj"].to_numpy()[held]
        per_fold = [_diag(d, t) for t, d in fitted]
        out[scheme] = {"physics": interval_scores(y, lo_p[held], hi_p[held]),
                       "group_normal": interval_scores(y, lo_b[held], hi_b[held]),
                       "n_tests": int(held.size), "n_folds": len(folds),
                       "fold_diagnostics": {"physics": _worst(per_fold) | {"folds": per_fold}}}
        for k, name in enumerate(names):
            if k == breach:  # observed by its sign only: scored as bottom_rupture below
                continue
            _score_observable(out["observables"].setdefault(name, {"units": "kJ" if name == HEAT else "1"}), scheme,
                              df, held, folds, values[:, k], q_all[..., k])
        known = held[np.isfinite(df["tr"].to_numpy()[held])]
        if known.size and 0 < df["tr"].to_numpy()[known].sum() < known.size:  # runaway outcomes that vary
            res = {"physics": p_tr, **p_base}
            out.setdefault("runaway", {})[scheme] = {
                m: _scores(pd.DataFrame({"tr": df["tr"].to_numpy()[known], "pred_p": p[known]})) for m, p in res.items()
            } | {"n_tests": int(known.size), "n_folds": len(folds)}
        known = held[np.isfinite(df["rupture"].to_numpy()[held])]
        if breach is not None and known.size:
            res = {"physics": p_rupture, **p_base_rupture}
            out.setdefault("bottom_rupture", {})[scheme] = {
                m: _scores(pd.DataFrame({"tr": df["rupture"].to_numpy()[known], "pred_p": p[known]}))
                for m, p in res.items()} | {"n_tests": int(known.size), "n_folds": len(folds),
                                            "n_ruptures": int(df["rupture"].to_numpy()[known].sum())}
    return out


def _score_observable(entry: dict, scheme: str, df: pd.DataFrame, held: np.ndarray, folds, y_all: np.ndarray,
                      q: np.ndarray, levels: tuple[tuple[str, ...], ...] | None = None) -> None:
    """Fill ``entry[scheme]`` with the physics and baseline interval scores of one observable on the held-out
    tests that have it, and the physics model's out-of-sample scores per cell type (module doc); ``levels``: the
    baseline's grouping (`group_normal_intervals`; default cell type × SOC × trigger)."""
    lo_b, hi_b = np.full(len(df), np.nan), np.full(len(df), np.nan)
    dfv = df.assign(value=y_all)
    for tr, te in folds:
        train = dfv.iloc[tr][np.isfinite(y_all[tr])]
        if len(train) >= 2:
            lo_b[te], hi_b[te] = group_normal_intervals(train, dfv.iloc[te], value="value",
                                                        **({} if levels is None else {"levels": levels}))
    rows = held[np.isfinite(y_all[held]) & np.isfinite(q[0, held])]
    if rows.size == 0:
        return
    y = y_all[rows]
    res = {"physics": interval_scores(y, q[0, rows], q[2, rows]), "n_tests": int(rows.size)}
    base = rows[np.isfinite(lo_b[rows])]
    if base.size:
        res["group_normal"] = interval_scores(y_all[base], lo_b[base], hi_b[base])
    fam = df["family"].to_numpy()[rows]
    res["by_family"] = {
        str(f): {"n": int(m.sum()), "coverage_90": float(np.mean((q[0, rows][m] <= y[m]) & (y[m] <= q[2, rows][m]))),
                 "median_abs_error": float(np.median(np.abs(q[1, rows][m] - y[m]))),
                 "observed_mean": float(np.mean(y[m])), "predicted_median": float(np.median(q[1, rows][m]))}
        for f in sorted(set(fam)) for m in [fam == f]}
    entry[scheme] = res

