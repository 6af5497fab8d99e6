"""New cells from a few tests — the seed's use case on the real indentation data (issue 16 item 2).

Every labelled cell family of the default study is held out in turn. Each model is fitted once on the other
families (NUTS), then given k ∈ {0, 1, 2, 3, 5} of the held-out family's tests (k ≤ n − 2; ``--repeats``
random draws of which) and scored on the family's remaining tests; "all" is leave-one-out within the
family (given the n − 1 others). The k given tests update each model by importance weighting of its
new-family predictive (exact in the limit of many draws, instead of a NUTS refit per draw):

- **physics** — the calibrated hierarchical physics model (`risk.bayes.physics`): per posterior draw, ``M``
  locations of the new family from the population (at its capacity), ``C`` cells each; a given test weighs a
  family draw by P(its hazard level and its features | family) (decoder likelihood with the calibrated
  discrepancy, censoring as in calibrate); a scored test is predicted from its conditions only;
- **metadata** — the ordinal metadata regression (`risk.bayes.baselines`; family intercept and SOC slope,
  population regressed on log capacity), the same weighting by the given tests' levels;
- **classifier** — a conventional model without simulations: multinomial logistic regression of the hazard
  level on SOC, log capacity and their product (scikit-learn, L2), trained on the other families' tests plus
  the k given ones.

Scores per held-out test (TR ≡ level ≥ 6): TR log loss, Brier, ordinal log loss; averaged over the scored
tests of a draw, then over draws. Prints the table, writes ``benchmarks/results/real_data_efficiency.json``
and the figure ``benchmarks/results/real_data_efficiency.png``.

    python benchmarks/real_data_efficiency.py [--run runs/indentation_pouch] [--repeats 10] [--draws 500]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import abuse_fe  # noqa: E402,F401  (before anything that may import dolfinx)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import special, stats  # noqa: E402

from benchmarks.record import results_dir, write_result  # noqa: E402

KS = (0, 1, 2, 3, 5)
TR_INDEX = 5  # level index of hazard level 6
EPS = 1e-6


def _ensure_run(run: Path, study: Path) -> None:
    if (run / "model" / "model.json").exists() and (run / "real.nc").exists():
        return
    subprocess.run([sys.executable, "-m", "risk.cli", "train", str(study), "--out", str(run)], check=True, cwd=REPO)


def _levels(cut: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Ordered-logistic level probabilities (..., 7) for cutpoints ``cut`` (..., 6) and latent ``eta`` (...)."""
    cdf = special.expit(cut - eta[..., None])
    one = np.ones((*cdf.shape[:-1], 1))
    return np.diff(np.concatenate([0 * one, cdf, one], axis=-1), axis=-1)


# ---------------------------------------------------------------------------------------------- physics
def physics_tables(tree, decoder, data, rows: np.ndarray, *, family: str, n_family: int, n_cells: int,
                   max_draws: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """For a family the posterior never saw: per family draw d (posterior draws × ``n_family``) and test i of
    ``rows``: ``log_given (D, n)`` = log P(level_i, features_i | d) and ``p_level (D, n, 7)`` = P(level | d)
    from the conditions alone (cells averaged)."""
    from risk.bayes.physics import _draws, _new_cells, runaway_logits

    rng = np.random.default_rng(seed)
    cond = np.asarray(data.conditions, float)[rows]
    obs, cens = np.asarray(data.observables, float)[rows], np.asarray(data.censored, bool)[rows]
    level = np.asarray(data.hazard_level, float)[rows].astype(int) - 1
    log_given, p_level = [], []
    for _ in range(n_family):
        u, keep, post, loc = _new_cells(tree, [family] * len(rows), cond, rng=rng, n_cells=n_cells,
                                        max_draws=max_draws, with_location=True)
        c = np.broadcast_to(cond[None, :, None, :], (*u.shape[:3], cond.shape[1]))
        out = decoder.torch_apply(u, c)
        delta = _draws(post, "discrepancy")[keep]
        sd = np.sqrt(np.exp(2 * out["log_scale"]) + delta[:, None, None, :] ** 2)
        y = obs[None, :, None, :]
        z = (np.nan_to_num(y) - out["mean"]) / sd
        exact, lower = np.isfinite(y) & ~cens[None, :, None, :], np.isfinite(y) & cens[None, :, None, :]
        ll_x = (np.where(exact, stats.norm.logpdf(z) - np.log(sd), 0.0) + np.where(lower, stats.norm.logsf(z), 0.0)).sum(-1)
        cut = _draws(post, "cutpoints")[keep]
        eta = runaway_logits(tree, keep, [family] * len(rows), cond, out["logit_runaway"], loc,
                             lambda uu, cc: decoder.torch_apply(uu, cc)["logit_runaway"], rng)
        p = _levels(cut[:, None, None, :], eta)  # (S, n, C, 7)
        p_obs = np.take_along_axis(p, level[None, :, None, None], axis=-1)[..., 0]
        log_given.append(special.logsumexp(np.log(np.maximum(p_obs, 1e-300)) + ll_x, axis=2) - np.log(n_cells))
        p_level.append(p.mean(axis=2))
    return np.concatenate(log_given), np.concatenate(p_level)


# --------------------------------------------------------------------------------------------- metadata
def metadata_tables(tree, df: pd.DataFrame, *, n_family: int, n_cells: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """As `physics_tables` for the metadata regression (levels only; a new family from its population)."""
    from risk.bayes.sampling import stack_draws

    rng = np.random.default_rng(seed)
    alpha, beta0 = stack_draws(tree, "alpha"), stack_draws(tree, "beta0")
    tau_a, tau_b, sig = (stack_draws(tree, v) for v in ("tau_a", "tau_b", "sigma_cell"))
    cut = stack_draws(tree, "cutpoints")
    S = alpha.shape[0]
    x = np.log(df["capacity_ah"].median()) - float(tree.attrs["log_capacity_centre"])
    soc, level = df["soc"].to_numpy(), df["level"].to_numpy(int) - 1
    log_given, p_level = [], []
    for _ in range(n_family):
        af = alpha[:, 0] + alpha[:, 1] * x + tau_a * rng.standard_normal(S)
        bf = beta0 + tau_b * rng.standard_normal(S)
        eta = (af[:, None] + bf[:, None] * (soc[None, :] - 0.5))[..., None] + sig[:, None, None] * rng.standard_normal(
            (S, len(df), n_cells))
        p = _levels(cut[:, None, None, :], eta)  # (S, n, C, 7)
        p_obs = np.take_along_axis(p, level[None, :, None, None], axis=-1)[..., 0]
        log_given.append(np.log(np.maximum(p_obs.mean(axis=2), 1e-300)))
        p_level.append(p.mean(axis=2))
    return np.concatenate(log_given), np.concatenate(p_level)


def weighted_prediction(log_given: np.ndarray, p_level: np.ndarray, given: np.ndarray, scored: np.ndarray) -> np.ndarray:
    """Level probabilities (n_scored, 7) of the scored tests after the given tests reweight the family draws."""
    lw = log_given[:, given].sum(axis=1) if len(given) else np.zeros(log_given.shape[0])
    w = np.exp(lw - lw.max())
    w /= w.sum()
    return np.einsum("d,dnl->nl", w, p_level[:, scored])


# ------------------------------------------------------------------------------------------- classifier
def classifier_prediction(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    """Multinomial logistic regression of the level on SOC, log capacity and their product → (n_test, 7)."""
    from sklearn.linear_model import LogisticRegression

    def features(d: pd.DataFrame) -> np.ndarray:
        lc = np.log(d["capacity_ah"].to_numpy())
        return np.column_stack([d["soc"].to_numpy(), lc, d["soc"].to_numpy() * lc])

    X, y = features(train), train["level"].to_numpy(int)
    mu, sd = X.mean(0), X.std(0) + 1e-12
    clf = LogisticRegression(C=1.0, max_iter=2000).fit((X - mu) / sd, y)
    p = np.full((len(test), 7), 1e-3)
    p[:, clf.classes_ - 1] = clf.predict_proba((features(test) - mu) / sd)
    return p / p.sum(axis=1, keepdims=True)


def scores(p: np.ndarray, level: np.ndarray) -> dict[str, float]:
    """Mean TR log loss, Brier and ordinal log loss of level probabilities ``p`` (n, 7) against ``level`` (n,)."""
    tr = (level >= 6).astype(float)
    p_tr = np.clip(p[:, TR_INDEX:].sum(axis=1), EPS, 1 - EPS)
    return {"log_loss": float(-(tr * np.log(p_tr) + (1 - tr) * np.log(1 - p_tr)).mean()),
            "brier": float(((p_tr - tr) ** 2).mean()),
            "ordinal_log_loss": float(-np.log(np.clip(p[np.arange(len(level)), level - 1], EPS, 1)).mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=REPO / "runs" / "indentation_pouch")
    ap.add_argument("--study", type=Path, default=REPO / "studies" / "indentation_pouch.yaml")
    ap.add_argument("--repeats", type=int, default=10, help="random draws of the given tests per k")
    ap.add_argument("--draws", type=int, default=500, help="NUTS draws (and warm-up) per chain of each fit")
    ap.add_argument("--family-draws", type=int, default=8, help="new-family locations per posterior draw")
    ap.add_argument("--cells", type=int, default=16, help="cells per family draw and test")
    ap.add_argument("--workers", type=int, default=2, help="physics fits at once (processes)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    _ensure_run(args.run, args.study)
    t_start = time.perf_counter()

    from risk.bayes.baselines import fit_indentation_folds
    from risk.bayes.data import calibration_data
    from risk.bayes.physics import physics_setup
    from risk.data import read_real
    from risk.predict.realcv import fit_folds
    from risk.study import load_study
    from sim2real import load_decoder

    study = load_study(args.study)
    decoder = load_decoder(args.run / "model")
    data = calibration_data(read_real(args.run / "real.nc"), decoder)
    level = np.asarray(data.hazard_level, float)
    lab = np.flatnonzero(np.isfinite(level))
    names = list(decoder.condition_names)
    cond = np.asarray(data.conditions, float)
    df = pd.DataFrame({"row": lab, "family": np.asarray(data.family)[lab], "soc": cond[lab, names.index("soc")],
                       "capacity_ah": cond[lab, names.index("capacity_nominal")] / 3600.0, "level": level[lab]})
    families = sorted(df["family"].unique())
    inf = study.inference
    setup = physics_setup(decoder, data, list(decoder.transform.priors), seed=args.seed, max_dim=inf.subspace_max_dim,
                          family_discrepancy=inf.family_discrepancy_scale, family_scale=inf.family_scale,
                          family_logit=inf.family_logit_scale, family_link=inf.family_link_scale)
    # one physics fit per held-out family on every other test (observables and outcomes); the metadata
    # regression's six fits as batched copies of one NUTS run
    t0 = time.perf_counter()
    rows = [np.flatnonzero(np.asarray(data.family) != f) for f in families]
    fitted = fit_folds(args.run / "model", data, rows, setup, seeds=[args.seed + k for k in range(len(families))],
                       workers=args.workers, chains=inf.chains, target_accept=inf.target_accept, draws=args.draws,
                       tune=args.draws)
    t_physics = time.perf_counter() - t0
    t0 = time.perf_counter()
    meta_trees = fit_indentation_folds(df.assign(FileName=np.asarray(data.test)[lab]),
                                       [np.flatnonzero(df["family"].to_numpy() != f) for f in families],
                                       seed=args.seed, draws=args.draws, tune=args.draws, allow_bad_diagnostics=True)
    t_metadata = time.perf_counter() - t0
    rng = np.random.default_rng(args.seed)
    records, fold_diagnostics = [], {}
    for f, (tree, diag), mtree in zip(families, fitted, meta_trees):
        fam = df[df["family"] == f].reset_index(drop=True)
        n = len(fam)
        fold_diagnostics[f] = {"physics": {k: getattr(diag, k) for k in ("ok", "rhat_max", "ess_bulk_min", "divergences")},
                               "metadata": json.loads(mtree.attrs.get("diagnostics", "{}"))}
        lg_p, pl_p = physics_tables(tree, decoder, data, fam["row"].to_numpy(), family=f, n_family=args.family_draws,
                                    n_cells=args.cells, max_draws=args.draws, seed=args.seed)
        lg_m, pl_m = metadata_tables(mtree, fam, n_family=args.family_draws, n_cells=args.cells, seed=args.seed)
        others = df[df["family"] != f]
        plans: list[tuple[str, np.ndarray, np.ndarray]] = []
        for k in KS:
            if k > n - 2:
                continue
            for r in range(1 if k == 0 else args.repeats):
                given = np.sort(rng.choice(n, k, replace=False))
                plans.append((str(k), given, np.setdiff1d(np.arange(n), given)))
        plans += [("all", np.setdiff1d(np.arange(n), [j]), np.array([j])) for j in range(n)]
        for k, given, scored in plans:
            lv = fam["level"].to_numpy(int)[scored]
            preds = {"physics": weighted_prediction(lg_p, pl_p, given, scored),
                     "metadata": weighted_prediction(lg_m, pl_m, given, scored),
                     "classifier": classifier_prediction(pd.concat([others, fam.iloc[given]]), fam.iloc[scored])}
            for model, p in preds.items():
                records.append({"family": f, "k": k, "model": model, "n_scored": len(scored), **scores(p, lv)})
        print(f"{f}: {n} tests, {len(plans)} evaluations")
    res = pd.DataFrame(records)
    # "all" = leave-one-out: pool its single-test scores; other k: mean over draws of the per-draw means
    table = res.groupby(["family", "model", "k"])[["log_loss", "brier", "ordinal_log_loss"]].mean().reset_index()
    table["n_tests"] = table["family"].map(df["family"].value_counts())
    order = {str(k): i for i, k in enumerate(KS)} | {"all": len(KS)}
    table = table.sort_values(["family", "model", "k"], key=lambda s: s.map(order) if s.name == "k" else s)
    average = table.groupby(["model", "k"])[["log_loss", "brier", "ordinal_log_loss"]].mean().reset_index()
    average = average.sort_values(["model", "k"], key=lambda s: s.map(order) if s.name == "k" else s)
    target = {f: float(table[(table.family == f) & (table.model == "metadata") & (table.k == "all")]["log_loss"].iloc[0])
              for f in families}
    reach = {}
    for f in families:
        phys = table[(table.family == f) & (table.model == "physics")]
        hit = [k for k in phys["k"] if float(phys[phys.k == k]["log_loss"].iloc[0]) <= target[f] + 0.02]
        reach[f] = hit[0] if hit else None

    pd.set_option("display.width", 160)
    print("\nTR log loss by family, model and k tests given (TR ≡ level ≥ 6; 'all' = leave-one-out in the family)")
    print(table.pivot_table(index=["family", "model"], columns="k", values="log_loss")[[str(k) for k in KS] + ["all"]]
          .round(3).to_string())
    print("\nMean over families (log loss / Brier / ordinal log loss)")
    print(average.round(3).to_string(index=False))
    print("\nfirst k at which physics is within 0.02 of the metadata regression given all tests:", reach)
    figure = _figure(table, average, families)
    path = write_result("real_data_efficiency", {
        "run": str(args.run), "families": families, "ks": list(KS), "repeats": args.repeats, "draws": args.draws,
        "family_draws": args.family_draws, "cells": args.cells, "seconds": {
            "physics_fits": t_physics, "metadata_fits": t_metadata, "total": time.perf_counter() - t_start},
        "fold_diagnostics": fold_diagnostics, "per_family": table.to_dict("records"),
        "mean_over_families": average.to_dict("records"), "physics_reaches_metadata_all_at_k": reach,
        "figure": str(figure.relative_to(REPO))})
    print(path)


def _figure(table: pd.DataFrame, average: pd.DataFrame, families: list[str]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [*families, "mean over families"]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.0 * len(panels), 3.0), sharey=True)
    labels = [str(k) for k in KS] + ["all"]
    for ax, name in zip(axes, panels):
        d = average if name == "mean over families" else table[table.family == name]
        for model, style in (("physics", "o-"), ("metadata", "s--"), ("classifier", "^:")):
            m = d[d.model == model].set_index("k").reindex(labels)
            ax.plot(range(len(labels)), m["log_loss"], style, label=model)
        ax.set_xticks(range(len(labels)), labels)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("tests of the family given")
    axes[0].set_ylabel("TR log loss on its other tests")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    out = results_dir() / "real_data_efficiency.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    return out


if __name__ == "__main__":
    main()
