"""Grouped CV machinery: folds, scores, baseline, coverage."""
import numpy as np
import pandas as pd
from scipy import optimize, special

from risk.predict.crossval import (brier, cross_validate, frequency_baseline, leave_groups_out,
                                   leave_replicates_out, log_loss)


def _data(seed=0):
    rng = np.random.default_rng(seed)
    fam = np.repeat(["A", "B", "C"], 40)
    soc = np.tile(np.repeat([0.0, 0.25, 0.5, 0.75, 1.0], 8), 3)
    off = pd.Series(fam).map({"A": 0.5, "B": -0.5, "C": 0.0}).to_numpy()
    y = (rng.uniform(size=fam.size) < special.expit(8 * (soc - 0.5) + off)).astype(float)
    heat = np.exp(rng.normal(np.log(50) + soc, 0.2))
    return pd.DataFrame({"family": fam, "soc": soc, "tr": y, "heat": heat})


def logistic_fit(train):
    X = np.column_stack([np.ones(len(train)), train["soc"]])
    y = train["tr"].to_numpy()
    nll = lambda w: -np.sum(y * (X @ w) - np.logaddexp(0, X @ w)) + 0.01 * w @ w  # noqa: E731
    w = optimize.minimize(nll, np.zeros(2)).x
    log_heat = np.log(train["heat"])
    b = np.polyfit(train["soc"], log_heat, 1)
    sd = np.std(log_heat - np.polyval(b, train["soc"]), ddof=2)
    return w, b, sd


def logistic_predict(state, test):
    assert "tr" not in test and "heat" not in test  # outcomes are hidden from predict
    w, b, sd = state
    m = np.polyval(b, test["soc"])
    return pd.DataFrame({"p": special.expit(w[0] + w[1] * test["soc"]),
                         "q05": np.exp(m - 1.645 * sd), "q95": np.exp(m + 1.645 * sd)}, index=test.index)


def test_folds_leave_whole_groups_and_replicates():
    df = _data()
    folds = list(leave_groups_out(df, "soc"))
    assert len(folds) == 5
    for tr, te in folds:
        assert df["soc"].iloc[te].nunique() == 1 and df["soc"].iloc[te].iloc[0] not in set(df["soc"].iloc[tr])
    reps = list(leave_replicates_out(df, ["family", "soc"], n_folds=4, seed=1))
    assert len(reps) == 4 and sum(len(te) for _, te in reps) == len(df)
    for tr, te in reps:  # every family × SOC cell keeps training replicates
        assert set(map(tuple, df.iloc[te][["family", "soc"]].values)) <= set(map(tuple, df.iloc[tr][["family", "soc"]].values))


def test_scores():
    assert log_loss([1, 0], [0.5, 0.5]) == np.log(2)
    assert brier([1, 0], [1.0, 0.0]) == 0.0


def test_model_beats_family_frequency_baseline_under_grouped_cv():
    df = _data()
    for folds in (lambda: leave_groups_out(df, "soc"), lambda: leave_replicates_out(df, ["family", "soc"], 4, 0)):
        model = cross_validate(df, folds(), logistic_fit, logistic_predict, outcome="tr", interval_target="heat")
        base = cross_validate(df, folds(), *frequency_baseline("family", "tr"), outcome="tr")
        assert model.log_loss < base.log_loss - 0.1 and model.brier < base.brier - 0.03
    assert 0.8 <= model.coverage <= 0.97  # 90 % intervals of a correct model


def test_grouped_k_fold_leaves_whole_groups_out_in_balanced_folds():
    """``n_folds``: every group lands in exactly one test fold, whole; the folds' sizes differ by at most the
    largest group; more folds than groups falls back to one fold per group."""
    sizes = {"a": 7, "b": 5, "c": 4, "d": 3, "e": 2, "f": 1, "g": 1}
    df = pd.DataFrame({"family": [f for f, n in sizes.items() for _ in range(n)]})
    folds = list(leave_groups_out(df, "family", n_folds=3))
    assert len(folds) == 3
    seen = [set(df["family"].iloc[te]) for _, te in folds]
    assert sorted(f for s in seen for f in s) == sorted(sizes)  # each group in one fold only
    for (tr, te), groups in zip(folds, seen):
        assert set(df["family"].iloc[tr]).isdisjoint(groups)  # held out whole: no test of it trains
        assert len(tr) + len(te) == len(df)
    n = sorted(len(te) for _, te in folds)
    assert n == [7, 8, 8]  # greedy, largest first to the lightest fold: a+f | b+e+g | c+d
    assert len(list(leave_groups_out(df, "family", n_folds=10))) == len(sizes)
