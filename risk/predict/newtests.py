"""Predictions for tests the model has never seen, from their metadata only (behind ``risk predict``).

Two metadata models of `risk.bayes.model` are fitted on the real tables and stored in the run
directory as ``posterior_indentation.nc`` / ``posterior_calorimetry.nc`` (ArviZ DataTrees, attrs hold
the family/type lists and centring constants):

- indentation (``tests.csv``): latent-severity ordinal model (`build_ordinal_model`); output columns
  ``FileName, p_tr, p_tr_q05, p_tr_q95, p_level_1..p_level_7`` with TR = hazard level ≥ 6;
- calorimetry (databank ``.xlsx``): heat/bottom-rupture model (`build_heat_model`); output columns
  ``Test-ID, heat_q05, heat_q50, heat_q95`` [kJ], ``p_bottom_rupture``.

Only metadata are read (family / cell type, capacity or energy, SOC, trigger), never outcomes.
Families (cell types) unseen in training fall back to the population over families: their location
is drawn per posterior draw from the family-level distribution (regressed on log capacity / log
energy), which widens the intervals honestly.

The readers here are minimal and tolerant; `risk.data` (when present) owns real-data ingestion.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from scipy import special

from risk.bayes.model import N_LEVELS, TR_LEVEL, build_heat_model, build_ordinal_model
from risk.bayes.sampling import load_posterior, sample, stack_draws
from risk.errors import DataError

CAL_SHEET = "Fractional-Calorimetry-Data"


# ------------------------------------------------------------------------------------------ readers
def family_from_filename(name: str) -> str:
    """Cell family of an indentation test from its file stem (`risk.data.families.parse_test_name`)."""
    from risk.data.families import parse_test_name

    return parse_test_name(name).cell_family


def soc_from_filename(name: str) -> float:
    """SOC [1] from a file stem (`risk.data.families.parse_test_name`; NaN if absent)."""
    from risk.data.families import parse_test_name

    return parse_test_name(name).soc


def read_indentation_tests(path: str | Path) -> pd.DataFrame:
    """``tests.csv`` → columns ``FileName, family, soc [1], capacity_ah [A h], level`` (level NaN if absent)."""
    path = Path(path)
    try:
        raw = pd.read_csv(path)
    except (OSError, pd.errors.ParserError) as err:
        raise DataError(f"cannot read indentation table: {err}", path=path) from err
    if "FileName" not in raw:
        raise DataError("missing column FileName", path=path, field="FileName")
    soc = raw["SOC_pct"] / 100 if "SOC_pct" in raw else raw["FileName"].map(soc_from_filename)
    out = pd.DataFrame({"FileName": raw["FileName"].astype(str),
                        "family": raw["FileName"].astype(str).map(family_from_filename),
                        "soc": soc.astype(float),
                        "capacity_ah": raw["Capacity_mAh"].astype(float) / 1000 if "Capacity_mAh" in raw else np.nan,
                        "level": raw["ObservedScore"].astype(float) if "ObservedScore" in raw else np.nan})
    bad = out.index[out["soc"].isna()]
    if len(bad):
        raise DataError("SOC missing (no SOC_pct and none in FileName)", path=path, field="SOC_pct", line=int(bad[0]) + 2)
    return out


def read_calorimetry_tests(path: str | Path) -> pd.DataFrame:
    """Databank workbook → ``Test-ID, cell_type, soc [1], trigger, energy_wh, heat_kj, bottom_rupture``."""
    path = Path(path)
    try:
        df = pd.read_excel(path, sheet_name=CAL_SHEET, header=2, engine="openpyxl")
        cc = pd.read_excel(path, sheet_name="Cell-Characteristics", header=None, engine="openpyxl")
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read calorimetry workbook: {err}", path=path) from err
    df = df[df["Test-ID"].notna()]
    head = [i for i in range(min(len(cc), 10)) if "Cell-Description" in set(cc.iloc[i].astype(str))]
    if head:  # the header row is the one naming Cell-Description
        cc = cc.iloc[head[0] + 1:].set_axis(cc.iloc[head[0]].astype(str).str.strip(), axis=1)
    energy = {}
    if {"Cell-Description", "Cell-Energy-Wh"} <= set(cc.columns):
        for name, e in zip(cc["Cell-Description"], cc["Cell-Energy-Wh"]):
            if isinstance(name, str):
                energy[name.strip()] = pd.to_numeric(e, errors="coerce")
    mech = df.get("Cell-Failure-Mechanism", pd.Series(index=df.index, dtype=object)).astype(str)
    return pd.DataFrame({
        "Test-ID": df["Test-ID"].astype(str),
        "cell_type": df["Cell-Description"].astype(str).str.strip(),
        "soc": pd.to_numeric(df["Pre-Test-State-of-Charge-%"], errors="coerce") / 100,
        "trigger": df["Trigger-Mechanism"].astype(str).str.strip(),
        "energy_wh": df["Cell-Description"].astype(str).str.strip().map(energy).astype(float),
        "heat_kj": pd.to_numeric(df.get("Corrected-Total-Energy-Yield-kJ"), errors="coerce"),
        "bottom_rupture": np.where(mech == "nan", np.nan,
                                   mech.str.contains(r"bott?[ou]m (?:rupture|breach)", case=False).astype(float)),
    }).reset_index(drop=True)


# ------------------------------------------------------------------------------------- indentation
def _fit_ordinal(df: pd.DataFrame, train_mask: np.ndarray | None, *, seed: int, draws: int, tune: int,
                 **kw) -> tuple[xr.DataTree, dict]:
    """NUTS fit of `build_ordinal_model` on the rows with a level; returns the tree and its attrs."""
    df = df[df["level"].notna()]
    families = sorted(df["family"].unique())
    cap = df.groupby("family")["capacity_ah"].median().reindex(families)
    logcap = np.log(cap.fillna(cap.median()).to_numpy())
    centre = float(logcap.mean())
    fam_idx = df["family"].map({f: k for k, f in enumerate(families)}).to_numpy()
    model = build_ordinal_model(fam_idx, len(families), df["soc"].to_numpy(), logcap - centre,
                                hazard_level=df["level"].to_numpy(), train_mask=train_mask)
    kw.setdefault("var_names", ["alpha", "beta0", "tau_a", "tau_b", "sigma_cell", "cutpoints_gaps"])
    tree, _ = sample(model, seed=seed, draws=draws, tune=tune, posterior_predictive=False, **kw)
    return tree, {"model_kind": "indentation_ordinal", "families": json.dumps(families),
                  "log_capacity_centre": centre}


def fit_indentation(df: pd.DataFrame, *, seed: int, draws: int = 500, tune: int = 500, **kw) -> xr.DataTree:
    """Fit `build_ordinal_model` on a `read_indentation_tests` table (rows with a level)."""
    tree, attrs = _fit_ordinal(df, None, seed=seed, draws=draws, tune=tune, **kw)
    tree.attrs.update(attrs)
    return tree


def fit_indentation_folds(df: pd.DataFrame, train_sets: list[np.ndarray], *, seed: int, draws: int = 500,
                          tune: int = 500, **kw) -> list[xr.DataTree]:
    """Cross-validation fits: one tree per fold, all fitted in ONE NUTS run of batched copies.

    ``train_sets`` holds, per fold, the positions of its training rows among the rows with a level.
    Each tree is what `fit_indentation` on those rows would give (for `predict_indentation`), but the
    families are those of the whole table: a family absent from a fold's training rows keeps its
    prior, the same population draw a separate fit would make for an unseen family. One JAX
    compilation serves every fold (111 s vs ~375 s fold by fold on the real tests).
    """
    n = int(df["level"].notna().sum())
    mask = np.zeros((len(train_sets), n), dtype=bool)
    for k, rows in enumerate(train_sets):
        mask[k, rows] = True
    tree, attrs = _fit_ordinal(df, mask, seed=seed, draws=draws, tune=tune, **kw)
    posterior = tree["posterior"].to_dataset()
    out = []
    for k in range(len(mask)):  # every variable of the batched model leads with the fold axis
        fold = xr.Dataset({v: da.isel({da.dims[2]: k}, drop=True) for v, da in posterior.data_vars.items()})
        part = xr.DataTree.from_dict({"posterior": fold})
        part.attrs.update(attrs)
        out.append(part)
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
def fit_calorimetry(df: pd.DataFrame, *, seed: int, draws: int = 500, tune: int = 500, **kw) -> xr.DataTree:
    """Fit `build_heat_model` on a `read_calorimetry_tests` table."""
    types = sorted(df["cell_type"].unique())
    triggers = sorted(df["trigger"].unique())
    loge = np.log(df.groupby("cell_type")["energy_wh"].median().reindex(types).to_numpy())
    centre = float(np.nanmean(loge)) if np.isfinite(loge).any() else 0.0
    t_idx = df["cell_type"].map({t: k for k, t in enumerate(types)}).to_numpy()
    g_idx = df["trigger"].map({t: k for k, t in enumerate(triggers)}).to_numpy()
    model = build_heat_model(t_idx, len(types), df["soc"].to_numpy(), g_idx, len(triggers), loge - centre,
                             df["heat_kj"].to_numpy(), df["bottom_rupture"].to_numpy())
    kw.setdefault("var_names", ["mu", "tau_m", "s0", "tau_s", "lambda", "tau_sigma", "nu", "r0", "tau_r",
                                "gamma_raw", "rho_raw"])
    tree, _ = sample(model, seed=seed, draws=draws, tune=tune, posterior_predictive=False, **kw)
    tree.attrs.update(model_kind="calorimetry_heat", cell_types=json.dumps(types), triggers=json.dumps(triggers),
                      log_energy_centre=centre)
    return tree


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
        q05, q50, q95 = np.quantile(np.exp(logq), [0.05, 0.5, 0.95])
        rows.append({"Test-ID": rec[0], "heat_q05": q05, "heat_q50": q50, "heat_q95": q95,
                     "p_bottom_rupture": float(special.expit(r + rho).mean())})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------- dispatch
def _is_calorimetry(path: Path) -> bool:
    return path.suffix.lower() in (".xlsx", ".xls")


def calibrate_metadata(run_dir: str | Path, tests_file: str | Path, *, seed: int, draws: int = 500,
                       tune: int = 500, **kw) -> Path:
    """Fit the metadata model matching ``tests_file`` and write ``run_dir/posterior_<kind>.nc``."""
    run_dir, tests_file = Path(run_dir), Path(tests_file)
    kind = "calorimetry" if _is_calorimetry(tests_file) else "indentation"
    out = run_dir / kind
    if kind == "calorimetry":
        tree = fit_calorimetry(read_calorimetry_tests(tests_file), seed=seed, draws=draws, tune=tune, out_dir=out, **kw)
    else:
        tree = fit_indentation(read_indentation_tests(tests_file), seed=seed, draws=draws, tune=tune, out_dir=out, **kw)
    path = run_dir / f"posterior_{kind}.nc"
    tmp = path.with_suffix(".nc.tmp")
    tree.to_netcdf(tmp, engine="h5netcdf")
    tmp.replace(path)
    return path


def predict_tests(run_dir: str | Path, tests_file: str | Path, raw_dir: str | Path | None = None) -> pd.DataFrame:
    """Predict outcomes of unseen tests from metadata only.

    Parameters
    ----------
    run_dir : run directory holding ``posterior_indentation.nc`` / ``posterior_calorimetry.nc``
        (written by `calibrate_metadata`).
    tests_file : indentation ``tests.csv`` (outcome columns ignored) or a databank workbook.
    raw_dir : raw indentation files (unused by the metadata model; accepted for the CLI signature).

    Returns
    -------
    DataFrame, one row per test (columns in the module doc).
    """
    run_dir, tests_file = Path(run_dir), Path(tests_file)
    kind = "calorimetry" if _is_calorimetry(tests_file) else "indentation"
    post = run_dir / f"posterior_{kind}.nc"
    if not post.exists():
        raise DataError(f"no fitted {kind} model in the run directory; run calibrate first", path=post)
    tree = load_posterior(post)
    if kind == "calorimetry":
        df = read_calorimetry_tests(tests_file).drop(columns=["heat_kj", "bottom_rupture"])
        return predict_calorimetry(tree, df)
    df = read_indentation_tests(tests_file).drop(columns=["level"])
    return predict_indentation(tree, df)
