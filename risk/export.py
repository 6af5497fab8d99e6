"""Insurer exports: per-scenario P(TR), event frequencies, annual losses and an exceedance curve.

Reads ``runs/<study>/predictions.nc`` (see ``docs/contracts.md``, "Predictions") and the study's
``export.exposure`` assumptions, and writes ``runs/<study>/exports/``:

- ``risk.parquet``, ``risk.csv`` — one row per scenario (:data:`risk.export_schema.RISK_TABLE`),
- ``exceedance.parquet``, ``exceedance.csv`` — annual loss vs exceedance probability
  (:data:`risk.export_schema.EXCEEDANCE_TABLE`), only when an exposure is declared,
- ``risk.json`` — both tables plus units, exposure and Monte Carlo settings.

The schema is documented in ``docs/exports.md``. Nothing is re-estimated here: probabilities are
copied from the predictions; frequencies and losses are the exposure arithmetic applied to each
posterior draw ``p_tr_draws`` (so their credible bounds carry the posterior uncertainty).

Exposure (``study["export"]["exposure"]``)
------------------------------------------
fleet_size : number of cells insured [cells].
abuse_events_per_cell_year : rate of abuse events of a scenario per cell [1/(cell yr)].
cost_per_event_by_severity : cost of one runaway event [currency], keyed by the scenario's
    ``severity`` (as text, e.g. ``"5"`` or ``"nail"``) with ``"runaway"`` as the fallback.
currency : name of the currency (default ``"currency units"``).
scenario_weights : optional {scenario: share of abuse events}; adds a portfolio curve ``all``.
n_monte_carlo : Monte Carlo samples of the exceedance curve (default 200 000).
seed : seed of the exceedance Monte Carlo (default: the study seed).

Examples
--------
>>> from risk.export import write_exports                      # doctest: +SKIP
>>> paths = write_exports("runs/demo", study.model_dump())     # doctest: +SKIP
>>> read_export(paths["risk.parquet"]).p_tr_mean               # doctest: +SKIP
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import xarray as xr

from risk.errors import StudyError
from risk.export_schema import (EXCEEDANCE_TABLE, METADATA_KEY, RISK_TABLE, SCHEMA_VERSION,
                                TABLES, ExportSchemaError, Table, validate_frame)

EXCEEDANCE_PROBABILITIES = (0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001, 5e-4, 2e-4, 1e-4)
"""Exceedance probabilities reported (those resolved by at least 10 Monte Carlo samples)."""

DEFAULT_MC_SAMPLES = 200_000


@dataclass(frozen=True)
class Exposure:
    """Exposure assumptions of ``study.export.exposure`` (see module docstring for units)."""

    fleet_size: float
    abuse_events_per_cell_year: float
    cost_per_event_by_severity: dict[str, float]
    currency: str = "currency units"
    scenario_weights: dict[str, float] = field(default_factory=dict)
    n_monte_carlo: int = DEFAULT_MC_SAMPLES
    seed: int = 0

    @classmethod
    def from_study(cls, study: dict) -> "Exposure | None":
        """Parse the exposure of a study dict; None when the study declares none.

        Raises
        ------
        risk.errors.StudyError
            For missing or negative fields.
        """
        export = (study or {}).get("export") or {}
        raw = export.get("exposure")
        if not raw:
            return None
        raw = dict(raw)
        for key in ("fleet_size", "abuse_events_per_cell_year", "cost_per_event_by_severity"):
            if raw.get(key) is None:
                raise StudyError(f"missing {key} (needed for the insurer exports)",
                                 field=f"export.exposure.{key}")
        costs = {_severity_text(k): float(v) for k, v in raw["cost_per_event_by_severity"].items()}
        numbers = {"fleet_size": float(raw["fleet_size"]),
                   "abuse_events_per_cell_year": float(raw["abuse_events_per_cell_year"]),
                   **{f"cost_per_event_by_severity.{k}": v for k, v in costs.items()}}
        for name, value in numbers.items():
            if not math.isfinite(value) or value < 0:
                raise StudyError(f"must be a finite number >= 0, got {value}",
                                 field=f"export.exposure.{name}")
        seed = raw.get("seed", export.get("seed", (study.get("study") or {}).get("seed", 0)))
        return cls(fleet_size=numbers["fleet_size"],
                   abuse_events_per_cell_year=numbers["abuse_events_per_cell_year"],
                   cost_per_event_by_severity=costs,
                   currency=str(raw.get("currency") or export.get("currency") or "currency units"),
                   scenario_weights={str(k): float(v)
                                     for k, v in (raw.get("scenario_weights") or {}).items()},
                   n_monte_carlo=int(raw.get("n_monte_carlo", DEFAULT_MC_SAMPLES)),
                   seed=int(seed or 0))

    def cost_for(self, severity: str) -> float:
        """Cost of one runaway event for a scenario of this ``severity`` [currency]."""
        for key in (severity, "runaway"):
            if key in self.cost_per_event_by_severity:
                return self.cost_per_event_by_severity[key]
        raise StudyError(f"no cost for severity {severity!r} and no 'runaway' fallback "
                         f"(have {sorted(self.cost_per_event_by_severity)})",
                         field="export.exposure.cost_per_event_by_severity")


def _severity_text(value: Any) -> str:
    """Severity as text: ``5.0`` → ``"5"``, NaN/None → ``""``."""
    if value is None:
        return ""
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return ""
        if float(value).is_integer():
            return str(int(value))
    if isinstance(value, bytes):
        return value.decode()
    return str(value)


def study_name(study: dict) -> str:
    """``study.name`` of a study dict ("" if absent)."""
    return str(((study or {}).get("study") or {}).get("name") or (study or {}).get("name") or "")


def _draws(predictions: xr.Dataset) -> np.ndarray:
    """``p_tr_draws`` as (scenario, draw) float array."""
    da = predictions["p_tr_draws"]
    other = [d for d in da.dims if d != "scenario"]
    if len(other) != 1:
        da = da.stack(draw_flat=other)
    return np.asarray(da.transpose("scenario", ...).values, dtype=float)


def _coord_values(predictions: xr.Dataset, name: str) -> list:
    if name in predictions.coords or name in predictions:
        return list(np.asarray(predictions[name].values).reshape(-1))
    return [None] * predictions.sizes["scenario"]


def risk_table(predictions: xr.Dataset, study: dict) -> pd.DataFrame:
    """One row per scenario: P(TR) summaries and, with an exposure, frequencies and losses.

    Parameters
    ----------
    predictions : the predictions dataset (dim ``scenario``, ``p_tr_draws`` (scenario, draw)).
    study : the study as a dict (``Study.model_dump()``).

    Returns
    -------
    pandas.DataFrame with the columns of :data:`risk.export_schema.RISK_TABLE` (optional columns
    only when their inputs exist).
    """
    draws = _draws(predictions)
    exposure = Exposure.from_study(study)
    rows = []
    for i, (scen, fam, soc, sev) in enumerate(zip(
            _coord_values(predictions, "scenario"), _coord_values(predictions, "cell_family"),
            _coord_values(predictions, "soc"), _coord_values(predictions, "severity"))):
        row: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION, "study": study_name(study),
            "scenario": _severity_text(scen), "cell_family": _severity_text(fam),
            "soc": float(soc) if soc is not None else math.nan,
            "severity": _severity_text(sev),
            **{v: float(predictions[v].values[i])
               for v in ("p_tr_mean", "p_tr_q05", "p_tr_q50", "p_tr_q95")},
            "n_draws": int(np.isfinite(draws[i]).sum()),
        }
        for kind in ("aleatory", "epistemic"):
            if f"p_tr_var_{kind}" in predictions:
                row[f"p_tr_sd_{kind}"] = math.sqrt(max(float(
                    predictions[f"p_tr_var_{kind}"].values[i]), 0.0))
        if exposure is not None:
            row.update(_exposure_columns(draws[i], row["p_tr_mean"], row["severity"], exposure))
        rows.append(row)
    df = pd.DataFrame(rows)
    return df[[c for c in RISK_TABLE.names() if c in df.columns]]


def _exposure_columns(draws: np.ndarray, p_mean: float, severity: str,
                      exposure: Exposure) -> dict[str, Any]:
    """Frequencies and losses of one scenario; bounds are quantiles over the posterior draws."""
    d = draws[np.isfinite(draws)]
    per_million = exposure.abuse_events_per_cell_year * 1e6
    cost = exposure.cost_for(severity)
    loss_factor = exposure.fleet_size * exposure.abuse_events_per_cell_year * cost
    q05, q95 = np.quantile(d, [0.05, 0.95])
    return {"events_per_million_cell_years": per_million * p_mean,
            "events_per_million_cell_years_q05": per_million * q05,
            "events_per_million_cell_years_q95": per_million * q95,
            "cost_per_event": cost,
            "annual_expected_loss": loss_factor * p_mean,
            "annual_expected_loss_q05": loss_factor * q05,
            "annual_expected_loss_q95": loss_factor * q95,
            "currency": exposure.currency}


def simulate_annual_loss(draws: np.ndarray, event_rates: np.ndarray, costs: np.ndarray,
                         n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Monte Carlo annual fleet losses.

    For each sample, one posterior draw ``d`` is chosen uniformly (shared by all scenarios: the
    epistemic uncertainty is common), and runaway counts ``N_s ~ Poisson(rate_s × p_s[d])`` give the
    loss ``Σ_s N_s × cost_s``.

    Parameters
    ----------
    draws : (scenario, draw) P(TR) per posterior draw [1].
    event_rates : (scenario,) abuse events per year over the fleet [1/yr].
    costs : (scenario,) cost per runaway event [currency].
    n_samples : number of simulated years.
    rng : the random generator (seeded by the caller).

    Returns
    -------
    (n_samples,) annual losses [currency/yr].
    """
    idx = rng.integers(draws.shape[1], size=n_samples)
    loss = np.zeros(n_samples)
    for s in range(draws.shape[0]):
        lam = event_rates[s] * np.nan_to_num(draws[s, idx], nan=0.0)
        loss += rng.poisson(lam) * costs[s]
    return loss


def exceedance_table(predictions: xr.Dataset, study: dict) -> pd.DataFrame | None:
    """Annual-loss exceedance curve per scenario (and ``all`` with scenario weights).

    Returns None when the study has no exposure. Each curve lists, for the probabilities in
    :data:`EXCEEDANCE_PROBABILITIES` that at least 10 samples resolve, the smallest annual loss
    exceeded with probability at most ``p`` (inverted-CDF quantile ``1 - p`` of the simulated
    losses). Seeded by ``exposure.seed``: reruns give identical tables.
    """
    exposure = Exposure.from_study(study)
    if exposure is None:
        return None
    draws = _draws(predictions)
    scenarios = [_severity_text(s) for s in _coord_values(predictions, "scenario")]
    severities = [_severity_text(s) for s in _coord_values(predictions, "severity")]
    costs = np.array([exposure.cost_for(s) for s in severities])
    yearly = exposure.fleet_size * exposure.abuse_events_per_cell_year
    n = exposure.n_monte_carlo
    probs = [p for p in EXCEEDANCE_PROBABILITIES if p * n >= 10]
    rng = np.random.default_rng(exposure.seed)
    curves: list[tuple[str, np.ndarray]] = []
    for s, name in enumerate(scenarios):
        loss = simulate_annual_loss(draws[s:s + 1], np.array([yearly]), costs[s:s + 1], n, rng)
        curves.append((name, loss))
    if exposure.scenario_weights:
        unknown = set(exposure.scenario_weights) - set(scenarios)
        if unknown:
            raise StudyError(f"unknown scenarios {sorted(unknown)}",
                             field="export.exposure.scenario_weights")
        w = np.array([exposure.scenario_weights.get(name, 0.0) for name in scenarios])
        curves.append(("all", simulate_annual_loss(draws, yearly * w, costs, n, rng)))
    rows = []
    for name, loss in curves:
        for p in probs:
            rows.append({"schema_version": SCHEMA_VERSION, "study": study_name(study),
                         "scenario": name, "exceedance_probability": p, "return_period": 1.0 / p,
                         "annual_loss": float(np.quantile(loss, 1.0 - p, method="inverted_cdf")),
                         "n_samples": n, "seed": exposure.seed, "currency": exposure.currency})
    return pd.DataFrame(rows, columns=EXCEEDANCE_TABLE.names())


def write_exports(run_dir: str | Path, study: dict,
                  predictions: xr.Dataset | None = None) -> dict[str, Path]:
    """Write ``exports/risk.{parquet,csv,json}`` (+ ``exceedance.{parquet,csv}``) from artefacts.

    Parameters
    ----------
    run_dir : ``runs/<study>/``; must contain ``predictions.nc`` unless ``predictions`` is given.
    study : the study as a dict.
    predictions : already-opened predictions (optional).

    Returns
    -------
    dict file name → path of every file written.
    """
    run_dir = Path(run_dir)
    if predictions is None:
        path = run_dir / "predictions.nc"
        if not path.exists():
            raise FileNotFoundError(f"{path}: no predictions; run `risk predict` first")
        with xr.open_dataset(path) as ds:
            predictions = ds.load()
    out = run_dir / "exports"
    out.mkdir(parents=True, exist_ok=True)
    risk = risk_table(predictions, study)
    exceed = exceedance_table(predictions, study)
    meta = {"study": study_name(study), "study_hash": str(predictions.attrs.get("study_hash", "")),
            "provenance": predictions.attrs.get("provenance", "{}")}
    exposure = Exposure.from_study(study)
    written: dict[str, Path] = {}
    for table, df in ((RISK_TABLE, risk), (EXCEEDANCE_TABLE, exceed)):
        if df is None:
            continue
        validate_frame(df, table)
        written[f"{table.name}.parquet"] = _write_parquet(df, table, out / f"{table.name}.parquet",
                                                          meta)
        df.to_csv(out / f"{table.name}.csv", index=False)
        written[f"{table.name}.csv"] = out / f"{table.name}.csv"
    doc = {"schema": "trisk.risk-export", "schema_version": SCHEMA_VERSION, **meta,
           "units": {t.name: t.units() for t in TABLES.values()},
           "exposure": None if exposure is None else {
               "fleet_size": exposure.fleet_size,
               "abuse_events_per_cell_year": exposure.abuse_events_per_cell_year,
               "cost_per_event_by_severity": exposure.cost_per_event_by_severity,
               "currency": exposure.currency, "scenario_weights": exposure.scenario_weights,
               "n_monte_carlo": exposure.n_monte_carlo, "seed": exposure.seed},
           "risk": _records(risk), "exceedance": None if exceed is None else _records(exceed)}
    (out / "risk.json").write_text(json.dumps(doc, indent=1, allow_nan=False))
    written["risk.json"] = out / "risk.json"
    return written


def _records(df: pd.DataFrame) -> list[dict]:
    """Rows as JSON-ready dicts (NaN → None)."""
    recs = df.astype(object).where(df.notna(), None).to_dict(orient="records")
    return [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in r.items()} for r in recs]


def _write_parquet(df: pd.DataFrame, table: Table, path: Path, meta: dict) -> Path:
    schema = table.arrow_schema(list(df.columns))
    arrow = pa.Table.from_pandas(df, schema=schema, preserve_index=False)
    md = dict(schema.metadata)
    md.update({f"trisk.{k}".encode(): str(v).encode() for k, v in meta.items()})
    pq.write_table(arrow.replace_schema_metadata(md), path)
    return path


def read_export(path: str | Path, table: str | None = None) -> pd.DataFrame:
    """Read an export file back and validate it against its schema.

    Parameters
    ----------
    path : a ``.parquet``, ``.csv`` or ``risk.json`` file written by :func:`write_exports`.
    table : ``"risk"`` or ``"exceedance"``; default from the file stem (for JSON: ``"risk"``).

    Raises
    ------
    risk.export_schema.ExportSchemaError
        If the file's schema version or columns do not match.
    """
    path = Path(path)
    name = table or path.stem
    if name not in TABLES:
        raise ExportSchemaError(f"{path}: unknown table {name!r}; expected one of {list(TABLES)}")
    spec = TABLES[name]
    if path.suffix == ".parquet":
        version = (pq.read_schema(path).metadata or {}).get(METADATA_KEY, b"").decode()
        if version != SCHEMA_VERSION:
            raise ExportSchemaError(f"{path}: schema_version {version!r} != {SCHEMA_VERSION!r}")
        df = pd.read_parquet(path)
    elif path.suffix == ".csv":
        string_cols = {c.name: str for c in spec.columns if pa.types.is_string(c.dtype)}
        df = pd.read_csv(path, dtype=string_cols, keep_default_na=False,
                         na_values={c.name: [""] for c in spec.columns
                                    if not pa.types.is_string(c.dtype)})
    elif path.suffix == ".json":
        doc = json.loads(path.read_text())
        if doc.get("schema_version") != SCHEMA_VERSION:
            raise ExportSchemaError(f"{path}: schema_version {doc.get('schema_version')!r} "
                                    f"!= {SCHEMA_VERSION!r}")
        if doc.get(name) is None:
            raise ExportSchemaError(f"{path}: no {name!r} table in this file")
        df = pd.DataFrame(doc[name])
    else:
        raise ExportSchemaError(f"{path}: unknown export format {path.suffix!r}")
    return validate_frame(df, spec)
