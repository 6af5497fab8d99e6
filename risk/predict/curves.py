"""Newly measured indentation tests inferred from their curves (behind ``risk predict RUN --tests F --raw DIR``).

Each workbook yields the calibration features (`risk.data.indentation`, the same feature function as
``ingest``; censoring and exclusions of `risk.bayes.data.calibration_data`, as in ``calibrate``). Two answers:

- **hazard level given the curves** — from the calibrated hierarchical physics posterior: its new cell of the
  test's family (known: its posterior location; unseen: the population at the test's capacity) weighted by
  the calibration likelihood of the test's features (`risk.bayes.physics.predict_levels_given_observables`),
  TR ≡ level ≥ 6. This is the model the run validated; the hazard level of the tests file is never read.
- **physical parameters of the tested cell** — the run's amortised encoder (`sim2real.load_encoder`, trained
  with the frozen decoder on the study's real tests, outcome hidden as for a new test) gives p(θ | x, c) under
  the study's priors in milliseconds, corrected by importance sampling against the decoder likelihood with
  the learned discrepancy (`sim2real.encoder.EncoderFit.posterior`; checked against NUTS of the same target,
  `sim2real.reference`).

Measured on the 66 LCO/Soteria tests of the studies' own runs (in sample, TR log loss): given the curves 0.235
(quick) / 0.175 (full) against 0.234 / 0.160 from the conditions alone — the three features barely move the
calibrated model's runaway probability (likelihood ESS ~48 000 of 64 000 draws), although every real runaway
test reached the rise-rate ceiling: the simulator ties the features to runaway more weakly than the data do.
The encoder's own hazard probabilities (through the calibrated link, under the study's priors instead of the
family's posterior) scored 0.379 (quick), so the hazard level comes from the calibrated model.

Columns added to the `risk.predict.newtests` table: ``p_*`` given the curves, ``likelihood_ess`` (effective
sample size of the likelihood weights), ``<parameter>_q05, _q50, _q95`` [SI, the parameter's unit] and
``encoder_ess`` (effective sample size of the encoder's importance weights).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from risk.bayes.model import N_LEVELS
from risk.errors import DataError

#: posterior draws per test (parameters and hazard level)
N_DRAWS = 1000


def workbooks_by_key(raw_dir: Path) -> dict[str, Path]:
    """The workbooks of ``raw_dir`` (or ``raw_dir/raw``) by their ``tests.csv`` join key
    (`risk.data.families.summary_key`, as ``ingest`` joins them); a marked copy only where no plain file has the key."""
    from risk.data.families import copy_marker, summary_key
    from risk.data.indentation import raw_files

    out: dict[str, Path] = {}
    for path in sorted(raw_files(raw_dir), key=lambda q: (copy_marker(q.stem) is not None, len(q.name))):
        out.setdefault(summary_key(path.stem), path)
    return out


def read_raw_tests(df: pd.DataFrame, raw_dir: str | Path, tests_file: Path, study: dict):
    """Real-data dataset (dim ``test``, in ``df`` order) of the tests' workbooks, outcomes removed.

    SOC and capacity come from the workbook, else from ``df``; the study's ``data.rename`` and
    ``data.conditions`` are applied as in the ``ingest`` stage. A test without a workbook is an error naming
    the file and line of the tests file.
    """
    from risk.data.indentation import FolderRead, combine, read_workbook
    from risk.study import _quantity_si

    from risk.data.families import summary_key
    from risk.data.limits import check_data_folder

    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise DataError("raw workbook folder not found", path=raw_dir, field="--raw")
    check_data_folder(raw_dir)
    books = workbooks_by_key(raw_dir)
    tests = []
    for index, row in zip(df.index, df.itertuples(index=False)):
        path = books.get(summary_key(row.FileName))
        if path is None:  # df rows are the tests file's data rows (header on line 1)
            raise DataError(f"no workbook {row.FileName}.xlsx in {raw_dir} (or its raw/ folder)", path=tests_file,
                            field="FileName", line=int(index) + 2)
        ds = read_workbook(path)
        ds.attrs.update(test=row.FileName, in_summary=np.int8(0), hazard_level=math.nan,
                        hazard_score_calculated=math.nan, summary_file_name="")
        if math.isnan(ds.attrs["soc"]):
            ds.attrs["soc"] = float(row.soc)
        if math.isnan(ds.attrs["capacity_nominal"]) and np.isfinite(row.capacity_ah):
            ds.attrs["capacity_nominal"] = float(row.capacity_ah) * 3600.0
        tests.append(ds)
    real = combine(FolderRead(tests, [], [], []), raw_dir).sel(test=list(df["FileName"]))
    data = study.get("data") or {}
    real = real.rename({k: v for k, v in (data.get("rename") or {}).items() if k in real})
    for name, value in (data.get("conditions") or {}).items():
        if name not in real:
            real[name] = ("test", np.full(real.sizes["test"], _quantity_si(value)), {"units": "SI", "long_name": name})
    return real.drop_vars(["hazard_level", "hazard_score_calculated", "thermal_runaway"], errors="ignore")


def predict_from_curves(run_dir: Path, df: pd.DataFrame, raw_dir: str | Path, tests_file: Path, study: dict, *,
                        seed: int) -> pd.DataFrame:
    """Hazard-level probabilities and parameter quantiles of new tests given their curves (module doc)."""
    import torch

    from risk.bayes.data import calibration_data
    from risk.bayes.physics import predict_levels_given_observables
    from risk.bayes.sampling import load_posterior
    from sim2real import load_decoder, load_encoder

    real = read_raw_tests(df, raw_dir, tests_file, study)  # first: a missing workbook fails before the models load
    from risk.rundir import decoder_dir

    decoder = load_decoder(decoder_dir(run_dir))  # the calibrated posterior's decoder
    encoder_decoder = decoder if decoder_dir(run_dir) == run_dir / "model" else load_decoder(run_dir / "model")
    fit = load_encoder(run_dir / "model", encoder_decoder)  # the encoder is trained with the train stage's decoder
    if fit is None:
        raise DataError("the run's model has no encoder (trained without real tests): predict without --raw",
                        path=run_dir / "model" / "encoder.pt")
    real["cell_family"] = ("test", df["family"].to_numpy(str), {"units": "1", "long_name": "cell family"})
    data = calibration_data(real, decoder)  # observables, censoring and exclusions exactly as in calibrate
    p_level, weight, ess = predict_levels_given_observables(
        load_posterior(run_dir / "posterior.nc"), decoder.torch_apply, list(df["family"]), data.conditions,
        data.observables, data.censored, seed=seed)
    p_tr = p_level[..., 5:].sum(-1)  # (S, n)
    out = pd.DataFrame({"FileName": df["FileName"].to_numpy(), "p_tr": (weight * p_tr).sum(0),
                        "p_tr_q05": _weighted_quantile(p_tr, weight, 0.05),
                        "p_tr_q95": _weighted_quantile(p_tr, weight, 0.95)}, index=df.index)
    for j in range(N_LEVELS):
        out[f"p_level_{j + 1}"] = (weight * p_level[:, :, j]).sum(0)
    out["likelihood_ess"] = ess
    post = fit.posterior(N_DRAWS, torch.Generator().manual_seed(seed), real=real)
    theta = post["theta"].values  # (n, S, P) [SI]
    for k, name in enumerate(encoder_decoder.parameter_names):
        for q in (5, 50, 95):
            out[f"{name}_q{q:02d}"] = np.quantile(theta[:, :, k], q / 100, axis=1)
    out["encoder_ess"] = post["ess"].values
    return out


def _weighted_quantile(x: np.ndarray, w: np.ndarray, q: float) -> np.ndarray:
    """Quantile ``q`` over axis 0 of ``x`` (S, n) with weights ``w`` (S, n) summing to 1 per column."""
    order = np.argsort(x, axis=0)
    xs, cw = np.take_along_axis(x, order, 0), np.cumsum(np.take_along_axis(w, order, 0), axis=0)
    idx = np.minimum((cw < q).sum(0), x.shape[0] - 1)
    return xs[idx, np.arange(x.shape[1])]
