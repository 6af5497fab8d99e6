"""Versioned schema of the insurer exports (``runs/<study>/exports/``).

One declaration per column (:class:`Column`) is the single source of truth: the pyarrow schemas, the
pydantic row models used to validate reloaded files, and the Markdown tables in ``docs/exports.md``
(:func:`schema_markdown`) are all generated from it.

Versioning follows semantic versioning: adding an optional column bumps the minor version, renaming,
removing or changing the meaning or unit of a column bumps the major version. Every file carries the
version: Parquet in its schema metadata (key ``trisk.schema_version``) and in a ``schema_version``
column, CSV in the ``schema_version`` column, JSON in the top-level ``schema_version`` field.

Examples
--------
>>> from risk.export_schema import RISK_TABLE, SCHEMA_VERSION
>>> RISK_TABLE.column("p_tr_mean").unit
'1'
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

SCHEMA_VERSION = "2.0.0"
"""Version of the export schema written by this code."""

METADATA_KEY = b"trisk.schema_version"
"""Parquet schema-metadata key holding :data:`SCHEMA_VERSION`."""


class ExportSchemaError(ValueError):
    """An export table or file does not match its declared schema."""


@dataclass(frozen=True)
class Column:
    """One column of an export table.

    Parameters
    ----------
    name : column name (snake case, unit-free; the unit is in ``unit``).
    dtype : pyarrow type.
    unit : unit string ("1" dimensionless, "currency" the study's currency, "1/yr" ...).
    description : meaning, shown in ``docs/exports.md``.
    required : False if the column is present only when the study declares an exposure (risk table).
    ge, le : inclusive bounds checked on validation (None: unbounded).
    """

    name: str
    dtype: pa.DataType
    unit: str
    description: str
    required: bool = True
    ge: float | None = None
    le: float | None = None

    def python_type(self) -> type:
        """Python type used by the pydantic row model."""
        if pa.types.is_string(self.dtype):
            return str
        if pa.types.is_integer(self.dtype):
            return int
        return float


@dataclass(frozen=True)
class Table:
    """A named export table: its columns, files and a pydantic row model.

    Parameters
    ----------
    name : table name, also the file stem (``risk`` → ``risk.parquet``/``risk.csv``).
    title : one-line description.
    columns : the columns in file order.
    """

    name: str
    title: str
    columns: tuple[Column, ...]

    def column(self, name: str) -> Column:
        """Return the column called ``name`` (KeyError if absent)."""
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    def names(self, *, with_optional: bool = True) -> list[str]:
        """Column names in file order."""
        return [c.name for c in self.columns if with_optional or c.required]

    def arrow_schema(self, present: list[str] | None = None) -> pa.Schema:
        """pyarrow schema (restricted to ``present`` columns) with the version in its metadata."""
        cols = [c for c in self.columns if present is None or c.name in present]
        return pa.schema([pa.field(c.name, c.dtype, nullable=not c.required)
                          for c in cols],
                         metadata={METADATA_KEY: SCHEMA_VERSION.encode(),
                                   b"trisk.table": self.name.encode()})

    def row_model(self) -> type[BaseModel]:
        """Pydantic model validating one row (unknown columns are rejected)."""
        fields: dict[str, Any] = {}
        for c in self.columns:
            typ = c.python_type()
            extra = {"unit": c.unit}
            if c.required:
                fields[c.name] = (typ, Field(..., ge=c.ge, le=c.le, description=c.description,
                                             json_schema_extra=extra))
            else:
                fields[c.name] = (typ | None, Field(None, ge=c.ge, le=c.le,
                                                    description=c.description,
                                                    json_schema_extra=extra))
        return create_model(f"{self.name.title()}Row",
                            __config__=ConfigDict(extra="forbid", allow_inf_nan=False), **fields)

    def units(self) -> dict[str, str]:
        """Mapping column → unit."""
        return {c.name: c.unit for c in self.columns}


_VERSION = Column("schema_version", pa.string(), "-",
                  f"Version of this schema (currently `{SCHEMA_VERSION}`).")

RISK_TABLE = Table(
    "risk",
    "Thermal-runaway probability per scenario, with exposure-based frequencies and losses.",
    (
        _VERSION,
        Column("study", pa.string(), "-", "Study name (`study.name`)."),
        Column("scenario", pa.string(), "-", "Scenario name from the study."),
        Column("cell_family", pa.string(), "-", "Cell family the scenario applies to."),
        Column("soc", pa.float64(), "1", "State of charge, 0–1.", ge=0.0, le=1.0),
        Column("severity", pa.string(), "-", "Scenario-defined abuse severity (as text)."),
        Column("p_tr_mean", pa.float64(), "1",
               "Posterior mean of P(thermal runaway given one abuse event of this scenario).",
               ge=0.0, le=1.0),
        Column("p_tr_q05", pa.float64(), "1", "5 % posterior quantile of P(TR).", ge=0.0, le=1.0),
        Column("p_tr_q50", pa.float64(), "1", "Posterior median of P(TR).", ge=0.0, le=1.0),
        Column("p_tr_q95", pa.float64(), "1", "95 % posterior quantile of P(TR).", ge=0.0, le=1.0),
        Column("p_tr_sd_aleatory", pa.float64(), "1",
               "Aleatory standard deviation: sqrt(E_post[Var_cell]) (cell-to-cell variability).",
               required=False, ge=0.0),
        Column("p_tr_sd_epistemic", pa.float64(), "1",
               "Epistemic standard deviation: sqrt(Var_post[E_cell]) (parameter uncertainty).",
               required=False, ge=0.0),
        Column("n_draws", pa.int64(), "1", "Number of posterior draws behind the quantiles.", ge=1),
        Column("fleet_share", pa.float64(), "1",
               "Share of the fleet's cell-years in this scenario's state (cell family at this SOC): "
               "Σ over `export.portfolio` entries of the family of weight × P(SOC).", required=False,
               ge=0.0, le=1.0),
        Column("abuse_events_per_cell_year", pa.float64(), "1/(cell yr)",
               "Mean abuse events per fleet cell-year that strike a cell in this scenario's state at its "
               "severity: fleet_share × Σ_k E[λ_k] × share of class k mapped to the severity "
               "(`export.frequency`).", required=False, ge=0.0),
        Column("events_per_million_cell_years", pa.float64(), "1/(1e6 cell yr)",
               "Expected runaway events per million cell-years of the fleet from this scenario: "
               "1e6 × abuse_events_per_cell_year × p_tr_mean. The rows partition the fleet's events: "
               "their sum is the portfolio total (no double counting).", required=False, ge=0.0),
        Column("events_per_million_cell_years_q05", pa.float64(), "1/(1e6 cell yr)",
               "5 % quantile of the above over joint draws of P(TR) (posterior) and the rates λ_k.",
               required=False, ge=0.0),
        Column("events_per_million_cell_years_q95", pa.float64(), "1/(1e6 cell yr)",
               "95 % quantile of the above over joint draws of P(TR) and the rates λ_k.",
               required=False, ge=0.0),
        Column("cost_per_event", pa.float64(), "currency",
               "Cost of one runaway event of this scenario (from "
               "`export.exposure.cost_per_event_by_severity`).", required=False, ge=0.0),
        Column("annual_expected_loss", pa.float64(), "currency/yr",
               "Fleet annual expected loss from this scenario: fleet_size × 1e-6 × "
               "events_per_million_cell_years × cost_per_event.", required=False, ge=0.0),
        Column("annual_expected_loss_q05", pa.float64(), "currency/yr",
               "5 % quantile of the annual expected loss over joint draws of P(TR) and the rates.",
               required=False, ge=0.0),
        Column("annual_expected_loss_q95", pa.float64(), "currency/yr",
               "95 % quantile of the annual expected loss over joint draws of P(TR) and the rates.",
               required=False, ge=0.0),
        Column("currency", pa.string(), "-", "Currency of the cost columns.", required=False),
    ),
)

EXCEEDANCE_TABLE = Table(
    "exceedance",
    "Annual-loss exceedance-probability curve per scenario and for the whole fleet (Monte Carlo: joint "
    "draw of P(TR) and the rates × Poisson event counts).",
    (
        _VERSION,
        Column("study", pa.string(), "-", "Study name."),
        Column("scenario", pa.string(), "-", "Scenario name (its share of the fleet's events only), or "
               "`all` for the whole fleet (every scenario, shared draws)."),
        Column("exceedance_probability", pa.float64(), "1",
               "Probability that the annual loss exceeds `annual_loss`.", ge=0.0, le=1.0),
        Column("return_period", pa.float64(), "yr", "1 / exceedance_probability.", ge=1.0),
        Column("annual_loss", pa.float64(), "currency/yr", "Annual fleet loss at this "
               "exceedance probability (empirical quantile).", ge=0.0),
        Column("n_samples", pa.int64(), "1", "Monte Carlo samples behind the curve.", ge=1),
        Column("seed", pa.int64(), "-", "Seed of the Monte Carlo generator (reproducible).", ge=0),
        Column("currency", pa.string(), "-", "Currency of `annual_loss`."),
    ),
)

_PORTFOLIO_MC = (
    Column("n_epistemic", pa.int64(), "1", "Joint draws of P(TR) (posterior) and the rates λ_k "
           "(`export.portfolio.n_epistemic`).", ge=1),
    Column("n_aleatory", pa.int64(), "1", "Simulated years per epistemic draw "
           "(`export.portfolio.n_aleatory`).", ge=1),
    Column("seed", pa.int64(), "-", "Seed of the Monte Carlo generator (reproducible).", ge=0),
)

PORTFOLIO_TABLE = Table(
    "portfolio",
    "Annual runaway events and losses of the insured fleet per `export.portfolio` entry, and their total.",
    (
        _VERSION,
        Column("study", pa.string(), "-", "Study name."),
        Column("entry", pa.string(), "-", "Portfolio entry name, or `total` for the whole fleet."),
        Column("cell_family", pa.string(), "-", "Cell family of the entry (`all` for the total)."),
        Column("weight", pa.float64(), "1", "Share of the fleet's cells (1 for the total).", ge=0.0, le=1.0),
        Column("cells", pa.float64(), "cell", "Cells of the entry: weight × `export.exposure.fleet_size` "
               "(each in service for the year).", ge=0.0),
        Column("soc_mean", pa.float64(), "1", "Mean SOC of the entry's SOC distribution.", ge=0.0, le=1.0),
        Column("tr_per_million_cell_years", pa.float64(), "1/(1e6 cell yr)",
               "Expected runaway events per million cell-years: 1e6 × Σ_k E[λ_k] Σ_σ m_kσ Σ_SOC "
               "P(SOC) E[P(TR | family, SOC, σ)].", ge=0.0),
        Column("tr_per_million_cell_years_q05", pa.float64(), "1/(1e6 cell yr)",
               "5 % epistemic quantile of the above (joint draws of P(TR) and the rates).", ge=0.0),
        Column("tr_per_million_cell_years_q50", pa.float64(), "1/(1e6 cell yr)",
               "Epistemic median of the above.", ge=0.0),
        Column("tr_per_million_cell_years_q95", pa.float64(), "1/(1e6 cell yr)",
               "95 % epistemic quantile of the above.", ge=0.0),
        Column("annual_events_mean", pa.float64(), "1/yr",
               "Expected runaway events per year: cells × tr_per_million_cell_years / 1e6.", ge=0.0),
        Column("annual_events_q05", pa.float64(), "1/yr",
               "5 % quantile of the annual runaway count (epistemic and aleatory, incl. common cause).",
               ge=0.0),
        Column("annual_events_q95", pa.float64(), "1/yr",
               "95 % quantile of the annual runaway count (epistemic and aleatory, incl. common cause).",
               ge=0.0),
        Column("p_any_event", pa.float64(), "1", "Probability of at least one runaway event in a year.",
               ge=0.0, le=1.0),
        Column("annual_loss_mean", pa.float64(), "currency/yr",
               "Expected annual loss: Σ over scenarios of expected events × cost_per_event.", ge=0.0),
        Column("annual_loss_q05", pa.float64(), "currency/yr", "5 % quantile of the annual loss.",
               ge=0.0),
        Column("annual_loss_q95", pa.float64(), "currency/yr", "95 % quantile of the annual loss.",
               ge=0.0),
        Column("currency", pa.string(), "-", "Currency of the loss columns."),
        Column("batch_size", pa.int64(), "cell", "Cells per batch sharing a runaway-rate multiplier "
               "(`export.portfolio.common_cause`; 0: cells independent).", ge=0),
        Column("multiplier_cv", pa.float64(), "1", "Coefficient of variation of the batch multiplier "
               "(0: cells independent).", ge=0.0),
        *_PORTFOLIO_MC,
    ),
)

PORTFOLIO_EXCEEDANCE_TABLE = Table(
    "portfolio_exceedance",
    "Exceedance-probability curves of the portfolio's annual runaway count and loss, with epistemic "
    "bands (quantiles over the epistemic draws of the curve conditional on each draw).",
    (
        _VERSION,
        Column("study", pa.string(), "-", "Study name."),
        Column("entry", pa.string(), "-", "Portfolio entry name, or `total` for the whole fleet."),
        Column("exceedance_probability", pa.float64(), "1",
               "Probability that the annual count (loss) exceeds `annual_events` (`annual_loss`).",
               ge=0.0, le=1.0),
        Column("return_period", pa.float64(), "yr", "1 / exceedance_probability.", ge=1.0),
        Column("annual_events", pa.float64(), "1/yr", "Annual runaway count at this exceedance "
               "probability, epistemic and aleatory uncertainty pooled (mean curve).", ge=0.0),
        Column("annual_events_q05", pa.float64(), "1/yr", "5 % epistemic band: 5 % quantile over the "
               "epistemic draws of the count at this exceedance probability given the draw.", ge=0.0),
        Column("annual_events_q50", pa.float64(), "1/yr", "Epistemic median of the conditional count.",
               ge=0.0),
        Column("annual_events_q95", pa.float64(), "1/yr", "95 % epistemic band of the conditional count.",
               ge=0.0),
        Column("annual_loss", pa.float64(), "currency/yr", "Annual loss at this exceedance probability, "
               "uncertainties pooled (mean curve).", ge=0.0),
        Column("annual_loss_q05", pa.float64(), "currency/yr", "5 % epistemic band of the conditional "
               "annual loss.", ge=0.0),
        Column("annual_loss_q50", pa.float64(), "currency/yr", "Epistemic median of the conditional "
               "annual loss.", ge=0.0),
        Column("annual_loss_q95", pa.float64(), "currency/yr", "95 % epistemic band of the conditional "
               "annual loss.", ge=0.0),
        Column("currency", pa.string(), "-", "Currency of the loss columns."),
        *_PORTFOLIO_MC,
    ),
)

TABLES: dict[str, Table] = {t.name: t for t in (RISK_TABLE, EXCEEDANCE_TABLE, PORTFOLIO_TABLE,
                                                 PORTFOLIO_EXCEEDANCE_TABLE)}


def validate_frame(df: pd.DataFrame, table: Table) -> pd.DataFrame:
    """Check a DataFrame against ``table``; return it with columns in schema order.

    Parameters
    ----------
    df : the table as read back (Parquet, CSV or the rows of the JSON file).
    table : one of :data:`TABLES`.

    Raises
    ------
    ExportSchemaError
        Naming the missing/unknown column or the first invalid row and field.
    """
    known = set(table.names())
    unknown = [c for c in df.columns if c not in known]
    if unknown:
        raise ExportSchemaError(f"{table.name}: unknown columns {unknown}")
    missing = [c for c in table.names(with_optional=False) if c not in df.columns]
    if missing:
        raise ExportSchemaError(f"{table.name}: missing required columns {missing}")
    model = table.row_model()
    for i, rec in enumerate(df.to_dict(orient="records")):
        clean = {k: (None if _is_missing(v) else v) for k, v in rec.items()}
        try:
            model.model_validate(clean)
        except ValidationError as err:
            first = err.errors()[0]
            raise ExportSchemaError(f"{table.name} row {i} [{'.'.join(map(str, first['loc']))}]: "
                                    f"{first['msg']}") from None
        if clean.get("schema_version") != SCHEMA_VERSION:
            raise ExportSchemaError(f"{table.name} row {i}: schema_version "
                                    f"{clean.get('schema_version')!r} != {SCHEMA_VERSION!r}")
    return df[[c for c in table.names() if c in df.columns]]


def _is_missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def schema_markdown() -> str:
    """The schema as Markdown tables (the generated part of ``docs/exports.md``)."""
    out = [f"Schema version: `{SCHEMA_VERSION}`", ""]
    for table in TABLES.values():
        out += [f"### `{table.name}` — {table.title}", "",
                "| column | type | unit | required | description |",
                "|---|---|---|---|---|"]
        for c in table.columns:
            bounds = ""
            if c.ge is not None or c.le is not None:
                lo = "−∞" if c.ge is None else f"{c.ge:g}"
                hi = "∞" if c.le is None else f"{c.le:g}"
                bounds = f" Range [{lo}, {hi}]."
            out.append(f"| `{c.name}` | {c.dtype} | {c.unit} | {'yes' if c.required else 'no'} "
                       f"| {c.description}{bounds} |")
        out.append("")
    return "\n".join(out)
