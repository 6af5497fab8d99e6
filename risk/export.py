"""Insurer exports: per-scenario P(TR), event frequencies with uncertainty, portfolio losses and curves.

Reads ``runs/<study>/predictions.nc`` (see ``docs/contracts.md``, "Predictions") and the study's
``export`` section, and writes ``runs/<study>/exports/``:

- ``risk.parquet``, ``risk.csv`` — one row per scenario (:data:`risk.export_schema.RISK_TABLE`),
- ``exceedance.parquet``, ``exceedance.csv`` — annual loss vs exceedance probability per scenario and
  for the whole fleet (:data:`risk.export_schema.EXCEEDANCE_TABLE`),
- ``portfolio.parquet``, ``portfolio.csv`` — annual events and losses per portfolio entry and in total
  (:data:`risk.export_schema.PORTFOLIO_TABLE`),
- ``portfolio_exceedance.parquet``, ``portfolio_exceedance.csv`` — exceedance curves of the annual count
  and loss with epistemic bands (:data:`risk.export_schema.PORTFOLIO_EXCEEDANCE_TABLE`),
- ``risk.json`` — every table plus units, exposure, the frequency model with its sources, the portfolio.

Frequencies and losses need the three sections ``export.exposure`` (fleet size, costs, currency, seed),
``export.frequency`` (abuse-event rates per class as distributions, each with a ``source`` or
``assumption: true``, mapped onto the tested severities) and ``export.portfolio`` (fleet mix: cell
family, SOC distribution, weight; optional batch common cause). Without them only the probabilities are
exported. The model (rates → severities → fleet states → P(TR)) is in :mod:`risk.frequency`; the schema
in ``docs/exports.md``. Nothing is re-estimated here: probabilities are copied from the predictions and
every bound is a quantile over joint draws of the posterior P(TR) and the rates.

Examples
--------
>>> from risk.export import write_exports                      # doctest: +SKIP
>>> paths = write_exports("runs/demo", study.model_dump(mode="json"))   # doctest: +SKIP
>>> read_export(paths["portfolio.parquet"]).annual_events_mean  # doctest: +SKIP
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import xarray as xr
from pydantic import ValidationError

from risk.errors import StudyError
from risk.export_schema import (EXCEEDANCE_TABLE, METADATA_KEY, PORTFOLIO_EXCEEDANCE_TABLE, PORTFOLIO_TABLE,
                                RISK_TABLE, SCHEMA_VERSION, TABLES, ExportSchemaError, Table, validate_frame)
from risk.frequency import (FrequencyModel, Portfolio, ScenarioState, fleet_shares, scenario_rates,
                            simulate_years, state_weights)

EXCEEDANCE_PROBABILITIES = (0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001, 5e-4, 2e-4, 1e-4)
"""Exceedance probabilities reported (those resolved by at least 10 Monte Carlo samples)."""

MIN_TAIL_SAMPLES = 10
"""Samples beyond a quantile needed to list its exceedance probability."""

DEFAULT_MC_SAMPLES = 200_000

STREAM_RATES, STREAM_SCENARIO_CURVES, STREAM_PORTFOLIO = 0, 1, 2
"""Independent random streams spawned from the export seed (``numpy.random.SeedSequence.spawn``)."""


@dataclass(frozen=True)
class Exposure:
    """The study's ``export`` section parsed for the exports (see the module docstring for units).

    ``abuse_events_per_cell_year`` (Σ_k E[λ_k], every class) and ``scenario_weights`` (the portfolio
    entries' weights) are derived views kept for readers of the former single-rate exposure.
    """

    fleet_size: float
    cost_per_event_by_severity: dict[str, float]
    frequency: FrequencyModel
    portfolio: Portfolio
    currency: str = "currency units"
    n_monte_carlo: int = DEFAULT_MC_SAMPLES
    seed: int = 0

    @property
    def abuse_events_per_cell_year(self) -> float:
        """Mean abuse events of every class per cell-year [1/(cell yr)]."""
        return self.frequency.total_rate_mean()

    @property
    def scenario_weights(self) -> dict[str, float]:
        """Portfolio entry → share of the fleet's cells [1]."""
        return {e.name: e.weight for e in self.portfolio.entries}

    @classmethod
    def from_study(cls, study: dict) -> "Exposure | None":
        """Parse and validate ``study["export"]``; None when it declares no exposure.

        Raises
        ------
        risk.errors.StudyError
            Naming the field (``export.frequency.events.<k>.rate.source``, ``export.portfolio.entries``, ...).
        """
        from risk.study import Export

        export = (study or {}).get("export") or {}
        if not any(export.get(k) for k in ("exposure", "frequency", "portfolio")):
            return None
        try:
            spec = Export.model_validate(export).model_dump(mode="json")
        except ValidationError as err:
            raise _study_error(err) from None
        exp = spec["exposure"]
        costs = {_severity_text(k): float(v) for k, v in exp["cost_per_event_by_severity"].items()}
        seed = exp.get("seed")
        if seed is None:
            seed = (study.get("study") or {}).get("seed", 0)
        return cls(fleet_size=float(exp["fleet_size"]), cost_per_event_by_severity=costs,
                   frequency=FrequencyModel.from_spec(spec["frequency"]),
                   portfolio=Portfolio.from_spec(spec["portfolio"]),
                   currency=str(exp.get("currency") or "currency units"),
                   n_monte_carlo=int(exp.get("n_monte_carlo") or DEFAULT_MC_SAMPLES),
                   seed=int(seed or 0))

    def cost_for(self, severity: str) -> float:
        """Cost of one runaway event for a scenario of this ``severity`` [currency]."""
        for key in (severity, "runaway"):
            if key in self.cost_per_event_by_severity:
                return self.cost_per_event_by_severity[key]
        raise StudyError(f"no cost for severity {severity!r} and no 'runaway' fallback "
                         f"(have {sorted(self.cost_per_event_by_severity)})",
                         field="export.exposure.cost_per_event_by_severity")

    def rng(self, stream: int) -> np.random.Generator:
        """Generator of one independent stream of the export seed."""
        return np.random.default_rng(np.random.SeedSequence(self.seed).spawn(stream + 1)[stream])


def _study_error(err: ValidationError) -> StudyError:
    """The first problem of a validation error of the ``export`` section, as a StudyError naming its field."""
    from risk.study import _FieldError

    e = err.errors()[0]
    ctx = (e.get("ctx") or {}).get("error")
    if isinstance(ctx, _FieldError):
        return StudyError(ctx.msg, field=".".join(str(x) for x in ctx.loc))
    # drop pydantic's union-member tags ("float", "dict[float,float]", "function-after[...]") from the path
    loc = [str(x) for x in e["loc"] if not (isinstance(x, str) and (
        x in ("str", "float", "int", "bool", "none") or x.startswith(("function-", "dict[", "list[", "tagged-", "constrained-"))))]
    msg = e["msg"].removeprefix("Value error, ")
    if e["type"] == "extra_forbidden":
        msg = f"unknown key {loc[-1]!r}"
    elif e["type"] == "missing":
        msg = f"missing required field {loc[-1]!r}"
    return StudyError(msg, field=".".join(["export", *loc]))


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


def scenario_states(predictions: xr.Dataset) -> list[ScenarioState]:
    """The scenarios of the predictions as (name, cell_family, soc, severity) states."""
    return [ScenarioState(_severity_text(n), _severity_text(f), float(s) if s is not None else math.nan,
                          _severity_text(v))
            for n, f, s, v in zip(_coord_values(predictions, "scenario"),
                                  _coord_values(predictions, "cell_family"),
                                  _coord_values(predictions, "soc"), _coord_values(predictions, "severity"))]


@dataclass(frozen=True)
class _Joint:
    """The frequency model applied to the predictions' scenarios.

    A : (entry, scenario) state weights; share : (scenario,) fleet shares π_s [1];
    rate_mean : (scenario,) mapped abuse-event rates E[R_s] [1/(cell yr)];
    rate_draws : (scenario, draw) R_s paired one-to-one with the posterior draws [1/(cell yr)];
    p_draws : (scenario, draw) P(TR) [1]; costs : (scenario,) [currency].
    """

    A: np.ndarray
    share: np.ndarray
    rate_mean: np.ndarray
    rate_draws: np.ndarray
    p_draws: np.ndarray
    costs: np.ndarray


def _joint(predictions: xr.Dataset, exposure: Exposure) -> _Joint:
    scen = scenario_states(predictions)
    draws = _draws(predictions)
    A = state_weights(exposure.frequency, exposure.portfolio, scen)
    rng = exposure.rng(STREAM_RATES)
    rate_draws = scenario_rates(exposure.frequency, scen,
                                exposure.frequency.sample_severity_rates(draws.shape[1], rng))
    return _Joint(A, fleet_shares(exposure.portfolio, A), scenario_rates(exposure.frequency, scen),
                  rate_draws, draws, np.array([exposure.cost_for(s.severity) for s in scen]))


def risk_table(predictions: xr.Dataset, study: dict) -> pd.DataFrame:
    """One row per scenario: P(TR) summaries and, with an exposure, frequencies and losses.

    Parameters
    ----------
    predictions : the predictions dataset (dim ``scenario``, ``p_tr_draws`` (scenario, draw)).
    study : the study as a dict (``Study.model_dump(mode="json")``).

    Returns
    -------
    pandas.DataFrame with the columns of :data:`risk.export_schema.RISK_TABLE` (optional columns
    only when their inputs exist). A scenario's frequency is its share of the fleet's events
    (``fleet_share`` × mapped rate × P(TR)), so the rows add up to the fleet's total.
    """
    draws = _draws(predictions)
    exposure = Exposure.from_study(study)
    joint = _joint(predictions, exposure) if exposure is not None else None
    rows = []
    for i, st in enumerate(scenario_states(predictions)):
        row: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION, "study": study_name(study),
            "scenario": st.name, "cell_family": st.cell_family, "soc": st.soc, "severity": st.severity,
            **{v: float(predictions[v].values[i])
               for v in ("p_tr_mean", "p_tr_q05", "p_tr_q50", "p_tr_q95")},
            "n_draws": int(np.isfinite(draws[i]).sum()),
        }
        for kind in ("aleatory", "epistemic"):
            if f"p_tr_var_{kind}" in predictions:
                row[f"p_tr_sd_{kind}"] = math.sqrt(max(float(
                    predictions[f"p_tr_var_{kind}"].values[i]), 0.0))
        if joint is not None:
            row.update(_exposure_columns(i, row["p_tr_mean"], joint, exposure))
        rows.append(row)
    df = pd.DataFrame(rows)
    return df[[c for c in RISK_TABLE.names() if c in df.columns]]


def _exposure_columns(i: int, p_mean: float, joint: _Joint, exposure: Exposure) -> dict[str, Any]:
    """Frequencies and losses of scenario ``i``; bounds are quantiles over joint (P(TR), rate) draws."""
    ok = np.isfinite(joint.p_draws[i])
    per_cell = joint.share[i] * joint.rate_draws[i, ok] * joint.p_draws[i, ok]   # [1/(cell yr)]
    q05, q95 = np.quantile(per_cell, [0.05, 0.95]) if per_cell.size else (math.nan, math.nan)
    abuse = float(joint.share[i] * joint.rate_mean[i])
    loss = exposure.fleet_size * joint.costs[i]
    return {"fleet_share": float(joint.share[i]), "abuse_events_per_cell_year": abuse,
            "events_per_million_cell_years": 1e6 * abuse * p_mean,
            "events_per_million_cell_years_q05": 1e6 * q05,
            "events_per_million_cell_years_q95": 1e6 * q95,
            "cost_per_event": float(joint.costs[i]),
            "annual_expected_loss": loss * abuse * p_mean,
            "annual_expected_loss_q05": loss * q05,
            "annual_expected_loss_q95": loss * q95,
            "currency": exposure.currency}


def simulate_annual_loss(draws: np.ndarray, event_rates: np.ndarray, costs: np.ndarray,
                         n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Monte Carlo annual fleet losses per scenario.

    For each sample one epistemic draw ``d`` is chosen uniformly (shared by all scenarios: the
    epistemic uncertainty is common), and runaway counts ``N_s ~ Poisson(rate_s[d] × p_s[d])`` give
    the losses ``N_s × cost_s``.

    Parameters
    ----------
    draws : (scenario, draw) P(TR) per posterior draw [1].
    event_rates : (scenario,) or (scenario, draw) abuse events per year over the fleet mapped to each
        scenario [1/yr]; per draw when the rates are uncertain (paired with the posterior draws).
    costs : (scenario,) cost per runaway event [currency].
    n_samples : number of simulated years.
    rng : the random generator (seeded by the caller).

    Returns
    -------
    (scenario, n_samples) annual losses [currency/yr]; their sum over scenarios is the fleet's.
    """
    idx = rng.integers(draws.shape[1], size=n_samples)
    rates = np.asarray(event_rates, dtype=float)
    rates = rates[:, idx] if rates.ndim == 2 else rates[:, None]
    lam = rates * np.nan_to_num(draws[:, idx], nan=0.0)
    return rng.poisson(lam) * np.asarray(costs, dtype=float)[:, None]


def _curve_rows(loss: np.ndarray, n: int) -> list[tuple[float, float]]:
    """(p, smallest loss exceeded with probability ≤ p) for the resolved probabilities."""
    return [(p, float(np.quantile(loss, 1.0 - p, method="inverted_cdf")))
            for p in EXCEEDANCE_PROBABILITIES if p * n >= MIN_TAIL_SAMPLES]


def exceedance_table(predictions: xr.Dataset, study: dict) -> pd.DataFrame | None:
    """Annual-loss exceedance curve per scenario and ``all`` (the whole fleet).

    Returns None when the study has no exposure. One simulation of ``n_monte_carlo`` years: each year
    one joint draw of P(TR) (posterior) and of the rates, counts ``N_s ~ Poisson(fleet_size × π_s × R_s
    × P_s)`` per scenario (its share of the fleet's events) and the fleet's loss ``Σ_s N_s × cost_s``.
    Each curve lists, for the probabilities in :data:`EXCEEDANCE_PROBABILITIES` that at least 10 samples
    resolve, the smallest annual loss exceeded with probability at most ``p`` (inverted-CDF quantile).
    Seeded by ``exposure.seed``: reruns give identical tables.
    """
    exposure = Exposure.from_study(study)
    if exposure is None:
        return None
    joint = _joint(predictions, exposure)
    names = [s.name for s in scenario_states(predictions)]
    n = exposure.n_monte_carlo
    yearly = exposure.fleet_size * joint.share[:, None] * joint.rate_draws      # (scenario, draw) [1/yr]
    loss = simulate_annual_loss(joint.p_draws, yearly, joint.costs, n, exposure.rng(STREAM_SCENARIO_CURVES))
    curves = [*zip(names, loss), ("all", loss.sum(axis=0))]
    rows = [{"schema_version": SCHEMA_VERSION, "study": study_name(study), "scenario": name,
             "exceedance_probability": p, "return_period": 1.0 / p, "annual_loss": q,
             "n_samples": n, "seed": exposure.seed, "currency": exposure.currency}
            for name, curve in curves for p, q in _curve_rows(curve, n)]
    return pd.DataFrame(rows, columns=EXCEEDANCE_TABLE.names())


def portfolio_tables(predictions: xr.Dataset, study: dict) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """The portfolio's annual events and losses (:data:`PORTFOLIO_TABLE`) and its exceedance curves with
    epistemic bands (:data:`PORTFOLIO_EXCEEDANCE_TABLE`); None without an exposure.

    ``n_epistemic`` joint draws (a posterior draw of P(TR) chosen uniformly, one draw of every rate
    λ_k) × ``n_aleatory`` simulated years each (Poisson counts, the batch multiplier of the common cause
    drawn per year): :func:`risk.frequency.simulate_years`. Means are exact (E[λ] E[P] per scenario);
    rate quantiles use every posterior draw paired with a rate draw; count and loss quantiles and
    curves the simulated years. An epistemic band of a curve is the quantile over the epistemic draws
    of the curve given the draw.
    """
    exposure = Exposure.from_study(study)
    if exposure is None:
        return None
    pf = exposure.portfolio
    joint = _joint(predictions, exposure)
    rng = exposure.rng(STREAM_PORTFOLIO)
    pick = rng.integers(joint.p_draws.shape[1], size=pf.n_epistemic)
    scen = scenario_states(predictions)
    R = scenario_rates(exposure.frequency, scen, exposure.frequency.sample_severity_rates(pf.n_epistemic, rng))
    cells = np.array([e.weight for e in pf.entries]) * exposure.fleet_size
    p_mean = np.nanmean(joint.p_draws, axis=1)
    p0 = np.nan_to_num(joint.p_draws, nan=0.0)
    cc = pf.common_cause
    common = {"currency": exposure.currency, "n_epistemic": pf.n_epistemic, "n_aleatory": pf.n_aleatory,
              "seed": exposure.seed}
    head = {"schema_version": SCHEMA_VERSION, "study": study_name(study)}
    rows, curves = [], []
    total_counts = np.zeros((pf.n_epistemic, pf.n_aleatory), dtype=np.int64)
    total_loss = np.zeros((pf.n_epistemic, pf.n_aleatory))
    mean_rate = joint.A @ (joint.rate_mean * p_mean)                       # (entry,) [1/(cell yr)]
    mean_loss = cells * (joint.A @ (joint.rate_mean * p_mean * joint.costs))
    rate_draws = joint.A @ (joint.rate_draws * p0)                          # (entry, draw)
    years = simulate_years(joint.p_draws[:, pick], R, joint.A, cells, joint.costs, pf, rng)
    for i, (e, y) in enumerate(zip(pf.entries, years)):
        total_counts += y.counts
        total_loss += y.loss
        rows.append({**head, "entry": e.name, "cell_family": e.cell_family, "weight": e.weight,
                     "cells": float(cells[i]), "soc_mean": e.soc_mean,
                     **_portfolio_summary(mean_rate[i], rate_draws[i], cells[i], mean_loss[i], y.counts, y.loss),
                     **_common_cause_columns(cc), **common})
        curves += [{**head, "entry": e.name, **c, **common} for c in _band_rows(y.counts, y.loss)]
    w = np.array([e.weight for e in pf.entries])
    soc_mean = float(sum(e.weight * e.soc_mean for e in pf.entries))
    rows.append({**head, "entry": "total", "cell_family": "all", "weight": 1.0,
                 "cells": float(exposure.fleet_size), "soc_mean": soc_mean,
                 **_portfolio_summary(float(w @ mean_rate), w @ rate_draws, exposure.fleet_size,
                                      float(mean_loss.sum()), total_counts, total_loss),
                 **_common_cause_columns(cc), **common})
    curves += [{**head, "entry": "total", **c, **common} for c in _band_rows(total_counts, total_loss)]
    return (pd.DataFrame(rows, columns=PORTFOLIO_TABLE.names()),
            pd.DataFrame(curves, columns=PORTFOLIO_EXCEEDANCE_TABLE.names()))


def _portfolio_summary(rate_mean: float, rate_draws: np.ndarray, cells: float, loss_mean: float,
                       counts: np.ndarray, loss: np.ndarray) -> dict[str, float]:
    q = np.quantile(rate_draws, [0.05, 0.5, 0.95]) * 1e6
    c05, c95 = np.quantile(counts, [0.05, 0.95], method="inverted_cdf")
    l05, l95 = np.quantile(loss, [0.05, 0.95], method="inverted_cdf")
    return {"tr_per_million_cell_years": 1e6 * float(rate_mean), "tr_per_million_cell_years_q05": q[0],
            "tr_per_million_cell_years_q50": q[1], "tr_per_million_cell_years_q95": q[2],
            "annual_events_mean": cells * float(rate_mean), "annual_events_q05": float(c05),
            "annual_events_q95": float(c95), "p_any_event": float(np.mean(counts > 0)),
            "annual_loss_mean": float(loss_mean), "annual_loss_q05": float(l05), "annual_loss_q95": float(l95)}


def _common_cause_columns(cc) -> dict[str, Any]:
    return {"batch_size": 0 if cc is None else cc.batch_size,
            "multiplier_cv": 0.0 if cc is None else cc.multiplier_cv}


def _band_rows(counts: np.ndarray, loss: np.ndarray) -> list[dict[str, float]]:
    """Exceedance rows of (epistemic, aleatory) simulated years: pooled curve and epistemic bands."""
    m = counts.shape[1]
    probs = [p for p in EXCEEDANCE_PROBABILITIES if p * m >= MIN_TAIL_SAMPLES]
    levels = [1.0 - p for p in probs]
    out = [{"exceedance_probability": p, "return_period": 1.0 / p} for p in probs]
    for name, x in (("annual_events", counts), ("annual_loss", loss)):
        pooled = np.quantile(x.ravel(), levels, method="inverted_cdf")
        cond = np.quantile(x, levels, axis=1, method="inverted_cdf")         # (probability, epistemic draw)
        bands = np.quantile(cond, [0.05, 0.5, 0.95], axis=1)                 # (band, probability)
        for i, row in enumerate(out):
            row[name] = float(pooled[i])
            for b, qn in enumerate(("q05", "q50", "q95")):
                row[f"{name}_{qn}"] = float(bands[b, i])
    return out


def write_exports(run_dir: str | Path, study: dict,
                  predictions: xr.Dataset | None = None) -> dict[str, Path]:
    """Write the export tables of ``docs/exports.md`` from the run's predictions.

    Parameters
    ----------
    run_dir : ``runs/<study>/``; must contain ``predictions.nc`` unless ``predictions`` is given.
    study : the study as a dict (``Study.model_dump(mode="json")``).
    predictions : already-opened predictions (optional).

    Returns
    -------
    dict file name → path of every file written: ``risk.{parquet,csv,json}`` always; with an
    exposure also ``exceedance``, ``portfolio`` and ``portfolio_exceedance`` (``.parquet``, ``.csv``).
    """
    run_dir = Path(run_dir)
    if predictions is None:
        path = run_dir / "predictions.nc"
        if not path.exists():
            raise FileNotFoundError(f"{path}: no predictions; run `risk predict` first")
        with xr.open_dataset(path) as ds:
            predictions = ds.load()
    exposure = Exposure.from_study(study)     # validates the export section before anything is written
    risk = risk_table(predictions, study)
    exceed = exceedance_table(predictions, study)
    portfolio, portfolio_curve = portfolio_tables(predictions, study) or (None, None)
    out = run_dir / "exports"
    out.mkdir(parents=True, exist_ok=True)
    meta = {"study": study_name(study), "study_hash": str(predictions.attrs.get("study_hash", "")),
            "provenance": predictions.attrs.get("provenance", "{}")}
    tables = ((RISK_TABLE, risk), (EXCEEDANCE_TABLE, exceed), (PORTFOLIO_TABLE, portfolio),
              (PORTFOLIO_EXCEEDANCE_TABLE, portfolio_curve))
    written: dict[str, Path] = {}
    for table, df in tables:
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
               "cost_per_event_by_severity": exposure.cost_per_event_by_severity,
               "currency": exposure.currency, "n_monte_carlo": exposure.n_monte_carlo,
               "seed": exposure.seed},
           "frequency": None if exposure is None else {
               "mean_abuse_events_per_cell_year": exposure.abuse_events_per_cell_year,
               "events": exposure.frequency.describe()},
           "portfolio": None if exposure is None else _describe_portfolio(exposure),
           **{t.name: None if df is None else _records(df) for t, df in tables}}
    (out / "risk.json").write_text(json.dumps(doc, indent=1, allow_nan=False))
    written["risk.json"] = out / "risk.json"
    return written


def _describe_portfolio(exposure: Exposure) -> dict:
    pf = exposure.portfolio
    return {"entries": [{"name": e.name, "cell_family": e.cell_family, "weight": e.weight,
                         "soc": {f"{k:g}": v for k, v in e.soc.items()}} for e in pf.entries],
            "common_cause": None if pf.common_cause is None else {
                "batch_size": pf.common_cause.batch_size, "multiplier_cv": pf.common_cause.multiplier_cv,
                **pf.common_cause.provenance},
            "n_epistemic": pf.n_epistemic, "n_aleatory": pf.n_aleatory}


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
    table : a name of :data:`risk.export_schema.TABLES`; default from the file stem (JSON: ``"risk"``).

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
