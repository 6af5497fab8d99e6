"""Predictions for tests the model has never seen (behind ``risk predict RUN_DIR --tests FILE``).

By default the calibrated physics model of the run answers (``model = physics``): the frozen decoder
under the posterior of `risk.bayes.model.build_hierarchical_model` (`risk.bayes.physics.predict_levels`).
A test of a family the study calibrated is a new cell at its family's posterior location; a test of an
unseen family is a new cell of a new family drawn from the population, at the test's own conditions
(SOC, capacity). A test whose chemistry or format the study's simulator does not cover (the study's
``cell.chemistry``/``cell.format``; a calibrated family is covered by the study's own choice) is
answered by the metadata baseline (`risk.bayes.baselines`, ``model = metadata``) with a warning,
never by silent extrapolation; ``model="metadata"`` asks the baseline for every row.

Indentation output columns: ``FileName, p_tr, p_tr_q05, p_tr_q95, p_level_1..p_level_7, model`` with
TR = hazard level ≥ 6. With ``raw_dir`` (``--raw``) the physics rows are inferred from the tests' measured
curves by the run's amortised encoder (`risk.predict.curves`), adding ``<parameter>_q05/_q50/_q95``,
``encoder_ess`` and ``evidence`` (``curves``, or ``conditions`` for metadata rows).

Calorimetry (databank ``.xlsx``): ``Test-ID, heat_q05, heat_q50, heat_q95`` [kJ], ``p_bottom_rupture``, ``model``, ``bottom_rupture_model``: heat from the physics model
(`risk.bayes.physics.predict_observables`: decoder mean and scale plus the calibrated discrepancy) for
heater-triggered tests of a calibrated cell type or of the study's cell format, else from the metadata heat
model; bottom rupture always from the metadata model (no simulator outputs a casing breach).

Only metadata are read (family / cell type, capacity or energy, SOC, trigger; chemistry and format
parsed from FileName, `risk.data.families`, or from optional ``chemistry``/``format`` columns), never
outcomes.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from risk.bayes.data import BREACH_MARGIN
from risk.bayes.model import N_LEVELS
from risk.bayes.sampling import load_posterior
from risk.data.limits import check_csv, check_unique_file_names, check_workbook
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
    """``tests.csv`` → columns ``FileName, family, soc [1], capacity_ah [A h], level, chemistry, format``
    (level NaN if absent; chemistry/format from the file's columns when present, else from the family)."""
    path = Path(path)
    check_csv(path)
    try:
        raw = pd.read_csv(path)
    except (OSError, pd.errors.ParserError) as err:
        raise DataError(f"cannot read indentation table: {err}", path=path) from err
    if "FileName" not in raw:
        raise DataError("missing column FileName", path=path, field="FileName")
    check_unique_file_names(path, [(i + 2, str(n)) for i, n in enumerate(raw["FileName"]) if isinstance(n, str)])
    soc = raw["SOC_pct"] / 100 if "SOC_pct" in raw else raw["FileName"].map(soc_from_filename)
    out = pd.DataFrame({"FileName": raw["FileName"].astype(str),
                        "family": raw["FileName"].astype(str).map(family_from_filename),
                        "soc": soc.astype(float),
                        "capacity_ah": raw["Capacity_mAh"].astype(float) / 1000 if "Capacity_mAh" in raw else np.nan,
                        "level": raw["ObservedScore"].astype(float) if "ObservedScore" in raw else np.nan})
    from risk.data.families import FAMILY_NOMINAL_AH, chemistry_format

    parsed = out["family"].map(chemistry_format)
    for j, col in enumerate(("chemistry", "format")):
        given = raw[col].fillna("").astype(str).str.strip() if col in raw else pd.Series("", index=raw.index)
        out[col] = np.where(given.isin(["", "nan"]), parsed.map(lambda t, j=j: t[j]), given)
    nominal = out["family"].map(FAMILY_NOMINAL_AH)
    out["capacity_ah"] = out["capacity_ah"].where(out["capacity_ah"].notna(), nominal)
    bad = out.index[out["soc"].isna()]
    if len(bad):
        raise DataError("SOC missing (no SOC_pct and none in FileName)", path=path, field="SOC_pct", line=int(bad[0]) + 2)
    return out


def read_calorimetry_tests(path: str | Path) -> pd.DataFrame:
    """Databank workbook → ``Test-ID, cell_type, soc [1], trigger, energy_wh, heat_kj, bottom_rupture``."""
    path = Path(path)
    check_workbook(path)
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


# ---------------------------------------------------------------------------------------- dispatch
def is_calorimetry(path: Path) -> bool:
    return path.suffix.lower() in (".xlsx", ".xls")


def predict_tests(run_dir: str | Path, tests_file: str | Path, raw_dir: str | Path | None = None, *,
                  model: str = "physics", seed: int = 0) -> pd.DataFrame:
    """Predict outcomes of unseen tests (see the module doc).

    Parameters
    ----------
    run_dir : a calibrated run directory (``posterior.nc``, ``model/``, ``study.yaml``,
        ``posterior_indentation.nc`` / ``posterior_calorimetry.nc``).
    tests_file : indentation ``tests.csv`` (outcome columns ignored) or a databank workbook.
    raw_dir : the tests' raw indentation workbooks (``<FileName>.xlsx``). Given, the physics rows are
        inferred from their curves by the run's encoder (`risk.predict.curves`: parameter quantiles, hazard
        level given the curves); without it, a test is a new cell under its conditions, before its curves
        are seen.
    model : ``"physics"`` (default; uncovered rows fall back to the metadata baseline) or ``"metadata"``.

    Returns
    -------
    DataFrame, one row per test (columns in the module doc).
    """
    if model not in ("physics", "metadata"):
        raise DataError(f"unknown model {model!r}; use 'physics' or 'metadata'", field="model")
    run_dir, tests_file = Path(run_dir), Path(tests_file)
    kind = "calorimetry" if is_calorimetry(tests_file) else "indentation"
    if kind == "calorimetry":
        return _predict_calorimetry(run_dir, tests_file, model=model, seed=seed)
    df = read_indentation_tests(tests_file).drop(columns=["level"])
    physics = np.zeros(len(df), bool)
    if model == "physics":
        physics = _covered(run_dir, df)
        if (~physics).any():
            warnings.warn(f"{int((~physics).sum())} test(s) of a chemistry/format the study's simulator does not "
                          f"cover are predicted by the metadata baseline: "
                          f"{', '.join(sorted(set(df.loc[~physics, 'family'])))}", stacklevel=2)
    parts = []
    if physics.any() and raw_dir is not None:
        from risk.predict.curves import predict_from_curves

        parts.append(predict_from_curves(run_dir, df[physics], raw_dir, tests_file, _run_study(run_dir), seed=seed)
                     .assign(model="physics", evidence="curves"))
    elif physics.any():
        parts.append(_predict_physics(run_dir, df[physics], seed=seed).assign(model="physics"))
    if (~physics).any():
        from risk.bayes.baselines import predict_indentation

        parts.append(predict_indentation(_metadata_posterior(run_dir, kind), df[~physics], seed=seed)
                     .set_axis(df.index[~physics]).assign(model="metadata"))
    table = pd.concat(parts).loc[df.index].reset_index(drop=True)
    if raw_dir is not None:  # which rows saw their curves; the model column stays last
        table["evidence"] = table.get("evidence", pd.Series(index=table.index, dtype=object)).fillna("conditions")
        table = table[[c for c in table.columns if c != "model"] + ["model"]]
    return table


def _predict_calorimetry(run_dir: Path, tests_file: Path, *, model: str, seed: int) -> pd.DataFrame:
    """Heat quantiles [kJ] of new tests: the physics model for the cell types and format the study covers,
    the metadata heat model for the others (warned); ``p_bottom_rupture`` from the physics model where its
    decoder models the casing's breach margin, else from the metadata model, named in ``bottom_rupture_model``."""
    from risk.bayes.baselines import predict_calorimetry

    df = read_calorimetry_tests(tests_file).drop(columns=["heat_kj", "bottom_rupture"])
    out = predict_calorimetry(_metadata_posterior(run_dir, "calorimetry"), df, seed=seed)
    out = out.assign(model="metadata", bottom_rupture_model="metadata")
    if model != "physics":
        return out
    ds = _calorimetry_conditions(run_dir, tests_file)
    if list(map(str, ds["test"].values)) != list(df["Test-ID"]):
        raise DataError("the calorimetry rows and their conditions do not line up (Test-ID order)", path=tests_file)
    physics = _calorimetry_covered(run_dir, df, ds)
    if (~physics).any():
        warnings.warn(f"{int((~physics).sum())} calorimetry test(s) of a cell format or trigger the study's simulator "
                      f"does not cover are predicted by the metadata heat model: "
                      f"{', '.join(sorted(set(df.loc[~physics, 'cell_type'])))}", stacklevel=3)
    outside = _outside_design(run_dir, ds) & physics
    if outside.any():
        warnings.warn(f"{int(outside.sum())} calorimetry test(s) with conditions outside the simulated design are "
                      f"predicted by the metadata heat model (no extrapolation of the decoder): "
                      f"{', '.join(df.loc[outside, 'Test-ID'].astype(str))}", stacklevel=3)
        physics = physics & ~outside
    if physics.any():
        heat = _physics_heat(run_dir, df[physics], ds.isel(test=np.flatnonzero(physics)), seed=seed)
        for col in heat.columns:
            out.loc[physics, col] = heat[col].to_numpy()
        out.loc[physics, "model"] = "physics"
    return out


def _calorimetry_conditions(run_dir: Path, tests_file: Path):
    """The databank rows as the ingest stage reads them (the run study's renames), in workbook order."""
    from risk.data.ftrc import read_ftrc

    from risk.data.ftrc import apply_trigger_conditions
    from risk.study import _quantity_si

    ds = read_ftrc(tests_file)
    data = _run_study(run_dir).get("data") or {}
    ds = ds.rename({k: v for k, v in (data.get("rename") or {}).items() if k in ds})
    triggers = {t: {k: _quantity_si(v) for k, v in c.items()} for t, c in (data.get("trigger_conditions") or {}).items()}
    fixed = {k: _quantity_si(v) for k, v in (_run_study(run_dir).get("conditions") or {}).items() if not isinstance(v, dict)}
    return apply_trigger_conditions(ds, triggers, fixed)[0] if triggers and "trigger" in ds else ds


def _calorimetry_covered(run_dir: Path, df: pd.DataFrame, ds) -> np.ndarray:
    """Rows the physics model answers: a test of a calibrated cell type or of the study's cell format whose
    trigger the simulator represents (a heater, or a trigger of the study's ``data.trigger_conditions``)."""
    if not (run_dir / "posterior.nc").exists():
        raise DataError("no physics posterior in the run directory; run calibrate first (or --model metadata)",
                        path=run_dir / "posterior.nc")
    calibrated = set(map(str, load_posterior(run_dir / "posterior.nc")["posterior"]["family"].values))
    fmt = str((_run_study(run_dir).get("cell") or {}).get("format") or "")
    cell_format = ds["cell_format"].values.astype(str) if "cell_format" in ds else np.full(len(df), "")
    modelled = set((_run_study(run_dir).get("data") or {}).get("trigger_conditions") or {})
    heater = (df["trigger"].str.contains("heater", case=False) | df["trigger"].isin(modelled)).to_numpy()
    return heater & (df["cell_type"].isin(calibrated).to_numpy() | (cell_format == fmt))


def _outside_design(run_dir: Path, ds) -> np.ndarray:
    """Rows whose conditions (e.g. a cell's nominal capacity) lie outside the range the run simulated
    (``misspecification.json`` ``design``, `risk.bayes.misspecification.design_checks`; tolerance as there)."""
    path = run_dir / "misspecification.json"
    out = np.zeros(ds.sizes["test"], bool)
    if not path.exists():
        return out
    for name, b in (json.loads(path.read_text()).get("design") or {}).items():
        if name in ds:
            lo, hi = float(b["design_min"]), float(b["design_max"])
            tol = 1e-6 * max(hi - lo, abs(hi), 1e-12)
            v = np.asarray(ds[name].values, float)
            out |= np.isfinite(v) & ((v < lo - tol) | (v > hi + tol))
    return out


def _physics_heat(run_dir: Path, df: pd.DataFrame, ds, *, seed: int) -> pd.DataFrame:
    """``heat_q05/q50/q95`` [kJ]: the physics posterior predictive of total heat of a new test, and
    ``ejecta_share_q05/q50/q95`` [1] (the ejecta's share of that heat, should the test run away and eject) and
    ``p_bottom_rupture`` (P(breach margin > 0), ``bottom_rupture_model = physics``) where the decoder models them."""

    from risk.bayes.physics import predict_observables
    from risk.rundir import decoder_dir
    from sim2real import load_decoder

    decoder = load_decoder(decoder_dir(run_dir))
    layout = decoder.layout
    names = list(decoder.condition_names)
    cond = np.tile(np.asarray(layout.condition_default, float), (len(df), 1))
    for j, name in enumerate(names):
        if name in ds:
            v = np.asarray(ds[name].values, float)
            cond[:, j] = np.where(np.isfinite(v), v, cond[:, j])
    obs = layout.observable_names
    if "heat_released_total" not in obs:
        raise DataError("the run's decoder has no heat_released_total observable: use --model metadata",
                        path=run_dir / "model")
    apply = decoder.numpy_apply()

    def observable_fn(u, c):
        res = apply(u, c)
        return res["mean"], res["log_scale"]

    y = predict_observables(load_posterior(run_dir / "posterior.nc"), observable_fn, list(df["cell_type"]), cond,
                            seed=seed)
    values = layout.denormalise(y)  # (S, n, n_obs) [SI]
    q = np.quantile(values[..., obs.index("heat_released_total")] / 1e3, [0.05, 0.5, 0.95], axis=0)  # J → kJ
    out = pd.DataFrame({"heat_q05": q[0], "heat_q50": q[1], "heat_q95": q[2]}, index=df.index)
    if "heat_fraction_ejecta" in obs:
        q = np.quantile(values[..., obs.index("heat_fraction_ejecta")], [0.05, 0.5, 0.95], axis=0)
        out = out.assign(ejecta_share_q05=q[0], ejecta_share_q50=q[1], ejecta_share_q95=q[2])
    if BREACH_MARGIN in obs:  # the casing breaches when the margin is > 0 (simulators.lumped)
        out = out.assign(p_bottom_rupture=(values[..., obs.index(BREACH_MARGIN)] > 0).mean(axis=0),
                         bottom_rupture_model="physics")
    return out


def _metadata_posterior(run_dir: Path, kind: str):
    post = run_dir / f"posterior_{kind}.nc"
    if not post.exists():
        raise DataError(f"no fitted {kind} metadata model in the run directory; run calibrate first", path=post)
    return load_posterior(post)


def _run_study(run_dir: Path) -> dict:
    import yaml

    path = run_dir / "study.yaml"
    if not path.exists():
        raise DataError("not a run directory: study.yaml missing", path=path)
    return yaml.safe_load(path.read_text())


def _covered(run_dir: Path, df: pd.DataFrame) -> np.ndarray:
    """Rows the physics model answers: a calibrated family, or the simulator's chemistry and format."""
    if not (run_dir / "posterior.nc").exists():
        raise DataError("no physics posterior in the run directory; run calibrate first (or --model metadata)",
                        path=run_dir / "posterior.nc")
    study = _run_study(run_dir)
    cell = study.get("cell", {})
    calibrated = set(map(str, load_posterior(run_dir / "posterior.nc")["posterior"]["family"].values))
    simulated = _simulated_chemistries(study) | {cell.get("chemistry")}
    same_cell = df["chemistry"].isin(simulated) & (df["format"] == cell.get("format"))
    return (df["family"].isin(calibrated) | same_cell).to_numpy()


def _simulated_chemistries(study: dict) -> set[str]:
    """The chemistry levels the run's design simulated (study conditions and condition sets)."""
    values = [(study.get("conditions") or {}).get("chemistry")]
    values += [(cs.get("conditions") or {}).get("chemistry") for cs in (study.get("ensemble") or {}).get("condition_sets") or []]
    return {str(v) for v in values if v is not None}


def _predict_physics(run_dir: Path, df: pd.DataFrame, *, seed: int) -> pd.DataFrame:
    """Hazard-level probabilities of the physics posterior for new cells under each test's conditions."""

    from risk.bayes.physics import p_tr_from_levels, predict_levels
    from risk.rundir import decoder_dir
    from sim2real import load_decoder

    decoder = load_decoder(decoder_dir(run_dir))
    tree = load_posterior(run_dir / "posterior.nc")
    names = list(decoder.condition_names)
    cond = np.tile(np.asarray(decoder.layout.condition_default, float), (len(df), 1))
    if "soc" in names:
        cond[:, names.index("soc")] = df["soc"].to_numpy(float)
    if "capacity_nominal" in names:
        cap = df["capacity_ah"].to_numpy(float) * 3600.0
        j = names.index("capacity_nominal")
        cond[:, j] = np.where(np.isfinite(cap), cap, cond[:, j])
    if "chemistry" in names:  # the test's chemistry where the simulator has it (else the decoder's default)
        from simulators.chemistry import categorical_code

        codes = df["chemistry"].map(lambda c: categorical_code(str(c))).to_numpy(dtype=float, na_value=np.nan)
        j = names.index("chemistry")
        cond[:, j] = np.where(np.isfinite(codes), codes, cond[:, j])
    p_level = predict_levels(tree, decoder.numpy_apply("logit_runaway"), list(df["family"]), cond,
                             seed=seed)  # (S, n, 7)
    p_tr = p_tr_from_levels(p_level)  # (S, n)
    out = pd.DataFrame({"FileName": df["FileName"].to_numpy(), "p_tr": p_tr.mean(0),
                        "p_tr_q05": np.quantile(p_tr, 0.05, axis=0), "p_tr_q95": np.quantile(p_tr, 0.95, axis=0)},
                       index=df.index)
    for j in range(N_LEVELS):
        out[f"p_level_{j + 1}"] = p_level[:, :, j].mean(0)
    return out
