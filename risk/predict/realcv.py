"""Grouped cross-validation of the metadata models on the real tests (→ ``crossval.json``).

The models behind ``risk predict --tests`` (`risk.predict.newtests`) are refitted with NumPyro NUTS on
each training fold (indentation: all folds of a scheme at once, as batched independent copies) and scored on the held-out tests, which they see only through their metadata:

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
from pathlib import Path

import numpy as np
import pandas as pd

from risk.bayes.model import TR_LEVEL
from risk.predict.crossval import cross_validate, frequency_baseline, leave_groups_out, leave_replicates_out
from risk.predict.newtests import (_is_calorimetry, fit_calorimetry, fit_indentation_folds, predict_calorimetry,
                                   predict_indentation, read_calorimetry_tests, read_indentation_tests)


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
    if _is_calorimetry(tests_file):
        df = read_calorimetry_tests(tests_file)
        df = df[df["soc"].notna() & df["heat_kj"].notna()].reset_index(drop=True)
        outcome, interval, group, cell = "bottom_rupture", "heat_kj", "cell_type", ["cell_type", "soc", "trigger"]

        fit_many = None

        def fit(train):
            return fit_calorimetry(train, **fit_kw)

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
