"""The study schema (pydantic v2): what a safety engineer writes in ``studies/*.yaml``.

`load_study(path, quick=False)` validates a YAML file and returns a `Study`. Every validation error
becomes a `StudyError` whose one-line message names the file, the YAML line and the field path;
unknown keys get a "did you mean" suggestion. Units are checked with pint: a parameter's unit must be
dimensionally compatible with the unit its simulator declares, and prior numbers given in another
unit are converted to SI. Condition values may be quantities (``"155 degC"``) and are stored in SI.

Sections: study, cell, simulator, parameters, conditions, ensemble, reference, convergence, data, sim2real,
inference, scenarios, report, export, quick (overrides applied by ``--quick``).
"""
from __future__ import annotations

import copy
import difflib
import hashlib
import json
import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from risk import units
from risk.errors import StudyError
from risk.yaml_lines import load_with_lines
from simulators.priors import Prior


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StudyMeta(_Section):
    """``study:`` — identity and the master seed."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=100,
                               description="run folder name: runs/<name>/ (letters, digits, _ . -; "
                                           "starts with a letter or digit)")]
    description: str = ""
    seed: Annotated[int, Field(ge=0, description="master seed; every stage derives its own from it")]

    @field_validator("name")
    @classmethod
    def _folder_name(cls, v):
        # a name of dots ("..") or starting with one would put runs/<name>/ at or above runs/, or hide it
        if not v[0].isalnum():
            raise ValueError(f"study name {v!r} must start with a letter or digit: it names the run folder "
                             "runs/<name>/, and '.', '..' or a leading '-' would escape or hide it")
        return v


class Cell(_Section):
    """``cell:`` — the cell under study."""

    chemistry: Literal["LCO", "NMC", "NCA", "LFP", "LMO", "NMC-LMO", "LMO-LNO", "mixed"]
    format: Literal["pouch", "18650", "21700", "D", "prismatic"]
    capacity: Annotated[str | float, Field(description="nominal capacity, a quantity such as '2 A h'")]
    geometry: dict[str, str | float] = Field(default_factory=dict, description=(
        "name → length, e.g. thickness: '5 mm': what the simulator's condition cell_<name> simulates (its default, "
        "or the study's conditions.cell_<name>); a dimension it does not simulate is an error"))
    families: list[str] = Field(default_factory=list, description="cell families (as in the real data) covered")

    @field_validator("capacity")
    @classmethod
    def _capacity(cls, v):
        value, unit = units.parse_quantity(v, "A*h")
        if not units.compatible(unit, "A*s"):
            raise ValueError(f"capacity must be a charge (e.g. '2 A h'), got unit {unit!r}")
        if value <= 0:
            raise ValueError(f"capacity must be > 0, got {v!r}")
        return v

    @field_validator("geometry")
    @classmethod
    def _geometry(cls, v):
        for key, q in v.items():
            value, unit = units.parse_quantity(q, "m")
            if not units.compatible(unit, "m"):
                raise ValueError(f"geometry.{key} must be a length, got unit {unit!r}")
            if value <= 0:
                raise ValueError(f"geometry.{key} must be > 0, got {q!r}")
        return v

    @property
    def capacity_si(self) -> float:
        """Nominal capacity [A s]."""
        value, unit = units.parse_quantity(self.capacity, "A*h")
        return units.to_si(value, unit)


class SimulatorSpec(_Section):
    """``simulator:`` — a registered simulator name and its options (mesh size, grid, end time)."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _known(cls, v):
        import simulators

        names = simulators.available()
        if ":" in v:  # "module:Class" plugin path
            try:
                simulators.load(v)
            except (ImportError, AttributeError) as err:
                raise ValueError(f"cannot import simulator {v!r}: {err}") from None
            return v
        if v not in names:
            hint = difflib.get_close_matches(v, names, n=1)
            raise ValueError(f"unknown simulator {v!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")
                             + f" (available: {', '.join(names)})")
        return v


class PriorSpec(_Section):
    dist: Literal["uniform", "loguniform", "normal", "lognormal", "truncnormal"]
    low: float | None = None
    high: float | None = None
    mu: float | None = None
    sigma: float | None = None

    @model_validator(mode="after")
    def _consistent(self):
        Prior(**self.model_dump())  # raises ValueError with the reason
        return self


class ParameterSpec(_Section):
    """One entry of ``parameters:`` — overrides a simulator parameter's prior."""

    prior: PriorSpec
    unit: str | None = None
    reference: str = ""

    @field_validator("unit")
    @classmethod
    def _unit(cls, v):
        if v is not None:
            units.parse_unit(v)
        return v


class ConditionRange(_Section):
    low: float | str
    high: float | str

    @model_validator(mode="after")
    def _ordered(self):
        lo, hi = _quantity_si(self.low), _quantity_si(self.high)
        if not lo < hi:
            raise ValueError(f"condition range inverted or empty: low={self.low} >= high={self.high}")
        return self


def _condition_values(conditions: dict) -> dict[str, float | tuple[float, float]]:
    return {name: (_quantity_si(v.low), _quantity_si(v.high)) if isinstance(v, ConditionRange) else _quantity_si(v)
            for name, v in conditions.items()}


def _quantity_si(v: float | str) -> float:
    """A quantity in SI; a level of a categorical condition (``LFP``) → its code (`simulators.chemistry`)."""
    from simulators.chemistry import categorical_code

    level_code = categorical_code(v)
    if level_code is not None:
        return level_code
    value, unit = units.parse_quantity(v, "1")
    return units.to_si(value, unit)


def _check_condition(field: tuple, name: str, v, unit: str) -> None:
    """A condition value must be a level of a categorical condition, else a quantity of a compatible unit."""
    from simulators.chemistry import CATEGORICAL_CONDITIONS

    if name in CATEGORICAL_CONDITIONS:
        levels = CATEGORICAL_CONDITIONS[name]
        if not (isinstance(v, str) and v.strip() in levels):
            raise _FieldError(field, f"{name} is categorical: one of {', '.join(levels)}, got {v!r}")
        return
    _, u = units.parse_quantity(v, unit)
    if not units.compatible(u, unit):
        raise _FieldError(field, f"unit {u!r} is not compatible with {unit!r}")


class ConditionSet(_Section):
    """One block of the design: a share of the samples with some conditions overridden (e.g. the nail-triggered
    tests: no heater, an internal short)."""

    name: str
    share: Annotated[float, Field(gt=0, le=1)]
    conditions: dict[str, float | str | ConditionRange] = Field(
        default_factory=dict, description="conditions that differ in this set (each also in the study's conditions)")


class Ensemble(_Section):
    """``ensemble:`` — the simulation design and where it runs."""

    size: Annotated[int, Field(gt=0, le=1_000_000)]
    design: Literal["sobol", "lhs"] = "sobol"
    condition_sets: list[ConditionSet] = Field(
        default_factory=list, description="split the design between condition sets whose shares sum to 1 "
                                          "(simulators.ensemble.design_sets); default one set, the study's conditions")
    cluster: str = Field("local", description="'local' or a Dask scheduler address tcp://host:port")
    workers: Annotated[int, Field(gt=0)] = 2
    threads_per_worker: Annotated[int, Field(gt=0)] = 1
    timeout: Annotated[float, Field(gt=0, description="seconds per simulation before it is recorded as failed")] = 600.0
    mpi_ranks: Annotated[int, Field(ge=1, description="MPI processes per simulation (mpiexec -n); workers × mpi_ranks ≤ cores")] = 1
    batch_size: Annotated[int, Field(ge=1, le=4096, description=(
        "simulations per worker task, run through the simulator's vectorised run_batch (abuse_fe.coupled: one ring "
        "thermal model for the batch); the results do not depend on it"))] = 1

    @field_validator("condition_sets")
    @classmethod
    def _shares(cls, v):
        if v and abs(sum(s.share for s in v) - 1.0) > 1e-9:
            raise ValueError(f"condition_sets shares must sum to 1, got {sum(s.share for s in v):g}")
        names = [s.name for s in v]
        if len(set(names)) != len(names):
            raise ValueError(f"condition set names must be unique, got {names}")
        return v

    @field_validator("cluster")
    @classmethod
    def _address(cls, v):
        if v != "local" and not any(v.startswith(p) for p in ("tcp://", "tls://", "inproc://", "ucx://")):
            raise ValueError(f"cluster must be 'local' or a scheduler address like tcp://host:8786, got {v!r}")
        return v


class Reference(_Section):
    """``reference:`` — the higher-fidelity simulator the study's simulator reduces, run beside it on ``runs`` fresh
    draws across the study's prior (stage ``fidelity`` → ``fidelity.json``, `risk.fidelity`; seeded by the
    stage's own seed, run on the ensemble's workers; the report states the reduction's error). The pair needs a map
    of inputs (`risk.fidelity.REDUCTIONS`)."""

    simulator: str
    options: dict[str, Any] = Field(default_factory=dict, description="options of the reference simulator (mesh)")
    runs: Annotated[int, Field(ge=1, le=10_000, description=(
        "fresh draws run through both simulators; ≥ 30 to measure a runaway agreement of 90 % "
        "(risk.fidelity.MIN_RUNS)"))] = 32


class Convergence(_Section):
    """``convergence:`` — the study's simulator on its own discretisation and two systematically refined ones, on
    ``runs`` fresh draws across the study's prior (stage ``convergence`` → ``mesh_convergence.json``,
    `risk.convergence`: Richardson extrapolation and the grid convergence index, ASME V&V 20-2009; seeded by the
    stage's own seed, run on the ensemble's workers). The simulator must have a discretisation to refine."""

    runs: Annotated[int, Field(ge=1, le=1000, description=(
        "fresh draws, each run on three discretisations (the finest costs ~3.5x the study's own)"))] = 6
    model: Literal["simulator", "reference"] = Field("simulator", description=(
        "whose discretisation: the study's simulator, or the reference it reduces (a mesh-free simulator's FE "
        "reference, whose agreement the fidelity stage measures)"))


class DataSpec(_Section):
    """``data:`` — real tests: a registered kind and a path (relative to the study file)."""

    kind: Literal["indentation", "ftrc"]
    path: str
    families: list[str] | None = Field(None, description="keep only these cell families")
    runaway_triggers: list[str] | None = Field(
        None, description="trigger mechanisms whose runaway outcome the simulator models: other tests keep their "
                          "observables, their outcome is not used (listed by the ingest stage)")
    rename: dict[str, str] = Field(default_factory=dict, description="real variable → simulator variable name")
    conditions: dict[str, float | str] = Field(default_factory=dict,
                                               description="known test conditions not in the data (quantities)")
    trigger_conditions: dict[str, dict[str, float | str]] = Field(
        default_factory=dict, description="trigger mechanism → the simulator conditions that represent it, set on "
                                          "that trigger's tests (e.g. Nail: {heater_power: 0 W, short_resistance: "
                                          "20 mOhm}); needs a trigger column in the data")


class Sim2Real(_Section):
    observables: list[str] | None = Field(None, description="simulator variables to model (default: all float observables)")
    hidden: Annotated[int, Field(gt=0)] = 64
    layers: Annotated[int, Field(gt=0, le=8)] = 2
    epochs_decoder: Annotated[int, Field(gt=0)] = 300
    restarts: Annotated[int, Field(gt=0)] = 3
    encoder_steps: Annotated[int, Field(gt=0)] = 800
    holdout_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2
    learning_rate: Annotated[float, Field(gt=0)] = 1e-3
    gp_observables: list[str] = Field(default_factory=list, description=(
        "scalar observables emulated by a Gaussian process fitted on the simulations (sim2real.gp) instead of the "
        "decoder MLP's heads; each must be one of `observables`"))
    decoder_loss: Literal["nll", "faithful"] = Field("nll", description=(
        "training loss of the decoder: 'nll' (mean and scale by their joint Gaussian likelihood) or 'faithful' (the "
        "mean by squared error, the scale by the likelihood with the mean held fixed; sim2real.decoder)"))
    weight_decay: Annotated[float, Field(ge=0, description="L2 penalty of the decoder's Adam optimiser")] = 0.0
    batch_size: Annotated[int, Field(gt=0, description="simulations per decoder training step")] = 128
    rounds: Annotated[int, Field(ge=0, le=5, description=(
        "simulation rounds after calibration: simulate new cells drawn from the posterior, retrain the decoder "
        "on every simulation so far, recalibrate (risk.rounds); the reported numbers come from the last round"))] = 0
    round_size: Annotated[int, Field(gt=0, description="simulations per round (and of the evaluation set)")] = 64


class Inference(_Section):
    chains: Annotated[int, Field(ge=4, description="≥ 4 for R-hat")] = 4
    draws: Annotated[int, Field(gt=0)] = 1000
    tune: Annotated[int, Field(ge=0)] = 1000
    target_accept: Annotated[float, Field(gt=0, lt=1)] = 0.9
    allow_bad_diagnostics: bool = False
    rare_event_check_runs: Annotated[int, Field(ge=0, description="failure-region samples re-run with the full simulator (≥ 50 in a full study; 0 turns the check off)")] = 50
    scenario_check_runs: Annotated[int, Field(ge=0, le=200, description=(
        "full-simulator runs at new cells of every scenario, against the decoder's P(runaway) at the same cells "
        "(risk.predict.simulator_agreement; --quick runs at most 2; 0 turns the check off)"))] = 12
    next_test_cells: Annotated[int, Field(ge=1, le=50, description="cells per candidate test in the next-test ranking")] = 1
    subspace_max_dim: Annotated[int, Field(ge=1, le=16, description="most directions of the physical-parameter "
                                           "space calibrated per family and cell (the data-informed subspace, "
                                           "risk.bayes.subspace); the others stay at the prior")] = 3
    family_scale: Annotated[float, Field(gt=0, le=3, description=(
        "prior mean [prior sd of u] of the between-family spread of the cell families' physical-parameter "
        "locations, tau_family ~ Gamma(2, 2 / family_scale) (risk.bayes.model.build_hierarchical_model)"))] = 0.5
    family_discrepancy_scale: Annotated[float | None, Field(gt=0, description=(
        "half-t(3) scale [normalised observable units] of a family-level discrepancy of the observables "
        "(what the simulator misses about a cell design; risk.bayes.model): null = none"))] = None
    family_logit_scale: Annotated[float | None, Field(gt=0, description=(
        "HalfNormal scale [logit] of a family-level discrepancy of the runaway logit (what the simulator misses "
        "about a design's runaway tendency; risk.bayes.model): null = none"))] = None
    family_link_scale: Annotated[float | None, Field(gt=0, description=(
        "HalfNormal scale [log] of the family-to-family spread of the sim-to-real scale of the runaway logit (how "
        "steeply a design's runaway follows the simulator's, e.g. in SOC; risk.bayes.model): null = one scale for "
        "all families"))] = None
    emulator_error_length: Annotated[float | None, Field(gt=0, description=(
        "distance [the decoder's z-scored condition units] within which a cell family's tests share the decoder's "
        "error (the decoder emulates a deterministic simulator: replicates of a condition see the same error; "
        "risk.bayes.physics.emulator_groups): null = the decoder's scale is independent per test"))] = None
    crossval_draws: Annotated[int, Field(gt=0, description="draws per chain of each cross-validation fit")] = 300
    crossval_tune: Annotated[int, Field(ge=0, description="warm-up draws per chain of each cross-validation fit")] = 300


class Scenario(_Section):
    """One P(TR) question: a cell family at a SOC under an abuse severity."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    cell_family: str
    soc: Annotated[float, Field(ge=0, le=1, description="state of charge, 0–1")]

    @field_validator("name")
    @classmethod
    def _export_name(cls, v):
        # scenario names key the export tables and may name files: no path parts, no control characters
        if any(c in v for c in "/\\") or v.strip(".") == "" or any(ord(c) < 32 for c in v):
            raise ValueError(f"scenario name {v!r} must not contain '/', '\\' or control characters, "
                             "nor be made only of dots: it names rows and files of the exports")
        return v
    severity: str | float = "nominal"
    conditions: dict[str, float | str] = Field(default_factory=dict)


class Report(_Section):
    title: str = "Thermal-runaway risk assessment"
    formats: list[Literal["html", "pdf"]] = ["html", "pdf"]
    limitations: list[str] = Field(default_factory=list, description="study-specific limitations to state")
    use_history: list[str] = Field(default_factory=list, description=(
        "documented earlier uses of this model for decisions (what, when, outcome): the credibility "
        "assessment's use-history evidence"))


class Exposure(_Section):
    """``export.exposure`` — the insured fleet's size, the cost of a runaway event and the Monte Carlo settings.

    Abuse-event rates live in ``export.frequency`` (with their sources) and the fleet mix in
    ``export.portfolio``; the former ``abuse_events_per_cell_year`` / ``scenario_weights`` moved there.
    """

    fleet_size: Annotated[int, Field(gt=0, description="cells in service [cell]; one year of service each")]
    cost_per_event_by_severity: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default_factory=dict, description="severity (scenario severity or hazard level) or 'runaway' → cost per "
                                          "runaway event [currency]")
    currency: str = "USD"
    n_monte_carlo: Annotated[int, Field(gt=0, description="simulated years of the per-scenario exceedance curves")] = 200_000
    seed: Annotated[int, Field(ge=0, description="seed of every export Monte Carlo (default: study.seed)")] | None = None

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, data):
        moved = {"abuse_events_per_cell_year": "export.frequency.events.<class>.rate (a distribution with a "
                                               "source: or assumption: true)",
                 "scenario_weights": "export.portfolio.entries (cell family, SOC distribution, weight)"}
        for key, where in moved.items():
            if isinstance(data, dict) and key in data:
                raise _FieldError(("export", "exposure", key), f"{key!r} moved to {where}; see docs/exports.md")
        return data


class _Provenance(_Section):
    """Where a number comes from: a citation (``source``) or an explicit ``assumption: true``."""

    assumption: bool = Field(False, description="true: the value is the user's assumption (no published source)")
    source: Annotated[str | None, Field(validate_default=True, description="citation of the value (report, "
                                                                             "table, year)")] = None
    note: str = Field("", description="how the value was derived from the source, or why it is assumed")

    @field_validator("source")
    @classmethod
    def _cited_or_assumed(cls, v, info):
        text = (v or "").strip()
        if not text and not info.data.get("assumption"):
            raise ValueError("needs a `source:` (citation of the number) or `assumption: true` (with a `note:`)")
        return text or None


class RateSpec(_Provenance):
    """Epistemic distribution of one abuse-event rate λ [1/(cell yr)] (risk.frequency.Rate)."""

    distribution: Literal["lognormal", "gamma"] = Field(
        description="lognormal: median × error_factor (95th/50th percentile, NUREG/CR-6823 §6.2.3); gamma: the "
                    "Jeffreys posterior Gamma(events + 1/2, cell_years) of an observed count (NUREG/CR-6823 §6.2.1)")
    median: Annotated[float, Field(gt=0, description="lognormal median [1/(cell yr)]")] | None = None
    error_factor: Annotated[float, Field(ge=1, description="lognormal 95th/50th percentile ratio [1]")] | None = None
    events: Annotated[float, Field(ge=0, description="gamma: events observed [1]")] | None = None
    cell_years: Annotated[float, Field(gt=0, description="gamma: exposure of the count [cell yr]")] | None = None

    @model_validator(mode="after")
    def _parameters(self):
        params = {"lognormal": ("median", "error_factor"), "gamma": ("events", "cell_years")}
        need = params[self.distribution]
        missing = [k for k in need if getattr(self, k) is None]
        if missing:
            raise ValueError(f"a {self.distribution} rate needs {' and '.join(need)} (missing {', '.join(missing)})")
        other = [k for dist, keys in params.items() if dist != self.distribution for k in keys
                 if getattr(self, k) is not None]
        if other:
            raise ValueError(f"{', '.join(other)} do not belong to a {self.distribution} rate")
        return self


class SeverityMapping(_Provenance):
    """Field events of one class → the tested severities (scenario ``severity`` values), shares summing to 1."""

    shares: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(
        description="scenario severity → share of this class's events that load a cell like that test; the key "
                    "'below_tested' takes the share judged milder than every tested severity (P(TR) = 0)")

    @field_validator("shares")
    @classmethod
    def _partition(cls, v):
        total = sum(v.values())
        if not v or abs(total - 1.0) > 1e-6:
            raise ValueError(f"shares must sum to 1 (they partition the class's events), got {total:.6g}; put the "
                             "share milder than every tested severity under 'below_tested'")
        return v


class EventClass(_Section):
    """One class of field abuse events: its rate and its mapping onto the tested severities."""

    description: str = ""
    rate: RateSpec
    severities: SeverityMapping


class Frequency(_Section):
    """``export.frequency`` — abuse-event rates per class with sources, mapped to the tested severities."""

    events: dict[str, EventClass] = Field(min_length=1, description="event class name → rate and mapping")


class PortfolioEntry(_Section):
    """One part of the insured fleet: a cell family, its SOC distribution and its share of the fleet."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    cell_family: str
    soc: float | dict[float, float] = Field(
        description="SOC [1] of the cells when an abuse event strikes: one value or {soc: probability}")
    weight: Annotated[float, Field(ge=0, le=1, description="share of the fleet's cells [1]; weights sum to 1")]

    @field_validator("soc")
    @classmethod
    def _distribution(cls, v):
        dist = v if isinstance(v, dict) else {v: 1.0}
        bad = [s for s in dist if not 0 <= s <= 1]
        if bad:
            raise ValueError(f"SOC must lie in 0–1 (a fraction, not %), got {bad}")
        if any(p < 0 for p in dist.values()):
            raise ValueError(f"SOC probabilities must be >= 0, got {list(dist.values())}")
        total = sum(dist.values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"SOC probabilities must sum to 1, got {total:.6g}")
        return v


class CommonCause(_Provenance):
    """Batch common cause: cells of a batch share a gamma-distributed multiplier (mean 1) of their runaway rate."""

    batch_size: Annotated[int, Field(gt=0, description="cells per manufacturing batch [cell]")]
    multiplier_cv: Annotated[float, Field(ge=0, description="coefficient of variation of the batch multiplier [1] "
                                                             "(0: independent cells)")]


class Portfolio(_Section):
    """``export.portfolio`` — the insured fleet as a mix of entries whose weights sum to 1."""

    entries: list[PortfolioEntry] = Field(min_length=1)
    common_cause: CommonCause | None = None
    n_epistemic: Annotated[int, Field(gt=0, description="joint draws of P(TR) and the rates")] = 200
    n_aleatory: Annotated[int, Field(gt=0, description="simulated years per epistemic draw")] = 10_000

    @field_validator("entries")
    @classmethod
    def _weights(cls, v):
        total = sum(e.weight for e in v)
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"the entries' weights must sum to 1 (shares of the fleet), got {total:.6g}")
        names = [e.name for e in v]
        if len(set(names)) != len(names):
            raise ValueError(f"entry names must be unique, got {names}")
        return v


class Export(_Section):
    formats: list[Literal["parquet", "csv", "json"]] = ["parquet", "csv", "json"]
    exposure: Exposure | None = None
    frequency: Frequency | None = None
    portfolio: Portfolio | None = None

    @model_validator(mode="after")
    def _together(self):
        given = {k: getattr(self, k) is not None for k in ("exposure", "frequency", "portfolio")}
        if any(given.values()) and not all(given.values()):
            missing = [k for k, v in given.items() if not v]
            raise _FieldError(("export", missing[0]), f"export.{missing[0]} is missing: frequencies and losses need "
                              "export.exposure, export.frequency and export.portfolio together (docs/exports.md)")
        return self


class Study(_Section):
    """A whole study. ``source`` is the YAML path (set by `load_study`)."""

    study: StudyMeta
    cell: Cell
    simulator: SimulatorSpec
    parameters: dict[str, ParameterSpec] = Field(default_factory=dict)
    conditions: dict[str, float | str | ConditionRange] = Field(default_factory=dict)
    ensemble: Ensemble
    reference: Reference | None = None
    convergence: Convergence | None = None
    data: DataSpec | None = None
    sim2real: Sim2Real = Sim2Real()
    inference: Inference = Inference()
    scenarios: list[Scenario] = Field(default_factory=list)
    report: Report = Report()
    export: Export = Export()
    quick: dict[str, Any] = Field(default_factory=dict, description="overrides applied by --quick")
    source: str | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _against_simulator(self):
        """Parameters and conditions must be ones the simulator declares, with compatible units."""
        import simulators

        sim = simulators.load(self.simulator.name)
        declared = {p.name: p for p in sim.parameters}
        for name, spec in self.parameters.items():
            if name not in declared:
                hint = difflib.get_close_matches(name, declared, n=1)
                raise _FieldError(("parameters", name), f"simulator {sim.name!r} has no parameter {name!r}"
                                  + (f"; did you mean {hint[0]!r}?" if hint else "")
                                  + f" (declared: {', '.join(declared)})")
            if spec.unit is not None and not units.compatible(spec.unit, declared[name].unit):
                raise _FieldError(("parameters", name, "unit"),
                                  f"unit {spec.unit!r} is not compatible with {declared[name].unit!r}")
        cond_units = {c.name: c.unit for c in sim.conditions}
        for name, value in self.conditions.items():
            if name not in cond_units:
                hint = difflib.get_close_matches(name, cond_units, n=1)
                raise _FieldError(("conditions", name), f"simulator {sim.name!r} has no condition {name!r}"
                                  + (f"; did you mean {hint[0]!r}?" if hint else ""))
            for v in ([value.low, value.high] if isinstance(value, ConditionRange) else [value]):
                _check_condition(("conditions", name), name, v, cond_units[name])
        for trig, conds in (self.data.trigger_conditions if self.data else {}).items():
            for name, v in conds.items():
                if name not in cond_units:
                    raise _FieldError(("data", "trigger_conditions", trig, name),
                                      f"simulator {sim.name!r} has no condition {name!r}")
                _check_condition(("data", "trigger_conditions", trig, name), name, v, cond_units[name])
        for k, cs in enumerate(self.ensemble.condition_sets):
            for name, value in cs.conditions.items():
                if name not in self.conditions:
                    raise _FieldError(("ensemble", "condition_sets", k, "conditions", name),
                                      f"condition set {cs.name!r} overrides {name!r}, which the study's conditions do "
                                      f"not set (declare its value for the other sets there)")
                for v in ([value.low, value.high] if isinstance(value, ConditionRange) else [value]):
                    _check_condition(("ensemble", "condition_sets", k, "conditions", name), name, v,
                                     cond_units[name])
        self._geometry_against_simulator(sim)
        if self.reference is not None:
            from risk.fidelity import reduction

            try:
                red = reduction(self.simulator.name, self.reference.simulator)
            except KeyError as err:
                raise _FieldError(("reference", "simulator"), str(err.args[0])) from None
            for key, value in red.requires.items():
                if self.reference.options.get(key) != value:
                    raise _FieldError(("reference", "options"), f"the reference of {self.simulator.name!r} is "
                                                                f"{red.reference!r} with {key}: {value}")
        if self.convergence is not None:
            from risk.convergence import refinable

            if self.convergence.model == "reference" and self.reference is None:
                raise _FieldError(("convergence", "model"), "model: reference needs the study's reference: section")
            name = self.simulator.name if self.convergence.model == "simulator" else self.reference.simulator
            if not refinable(name):
                hint = " (model: reference checks the FE reference it reduces)" if self.reference else ""
                raise _FieldError(("convergence",), f"simulator {name!r} has no discretisation to refine (it does not "
                                                    f"implement Simulator.refined): remove convergence:{hint}")
        return self

    def _geometry_against_simulator(self, sim) -> None:
        """``cell.geometry.<key>`` is what the simulator's condition ``cell_<key>`` simulates: its value where the
        study's conditions set one, else its declared default. A dimension the simulator does not simulate, or one
        that differs from what it simulates, is an error (it would be ignored)."""
        defaults, unit = {c.name: c.default for c in sim.conditions}, {c.name: c.unit for c in sim.conditions}
        for key, q in self.cell.geometry.items():
            field, name, value = ("cell", "geometry", key), f"cell_{key}", _quantity_si(q)
            if name not in defaults:
                raise _FieldError(field, f"simulator {sim.name!r} simulates no {name!r}: cell.geometry.{key} would be "
                                         f"ignored (remove it, or use a simulator with that condition)")
            given = self.conditions.get(name)
            if isinstance(given, ConditionRange):
                lo, hi = _quantity_si(given.low), _quantity_si(given.high)
                if not lo <= value <= hi:
                    raise _FieldError(field, f"cell.geometry.{key} = {q!r} lies outside conditions.{name} "
                                             f"[{given.low!r}, {given.high!r}]")
                continue
            simulated = defaults[name] if given is None else _quantity_si(given)
            if not math.isclose(value, simulated, rel_tol=1e-9):
                where = f"conditions.{name}" if given is not None else f"the default of {sim.name!r}'s {name!r}"
                raise _FieldError(field, f"cell.geometry.{key} = {q!r} is not what is simulated ({simulated:g} "
                                         f"{unit[name]}, {where}); set conditions.{name}: {q!r} to simulate it")

    @model_validator(mode="after")
    def _export_against_scenarios(self):
        """The frequency mapping, the costs and the portfolio must refer to scenarios that exist (checked at
        `risk validate`, not first at export time): every mapped severity has a scenario and a cost, every
        portfolio entry's family and SOC states have one scenario per mapped severity."""
        if not self.scenarios or not (self.export.frequency and self.export.portfolio):
            return self
        from risk.errors import StudyError
        from risk.export import Exposure, _severity_text
        from risk.frequency import ScenarioState, state_weights

        try:
            exposure = Exposure.from_study(self.model_dump(mode="json"))
            if exposure is None:
                return self
            states = [ScenarioState(sc.name, sc.cell_family, float(sc.soc), _severity_text(sc.severity))
                      for sc in self.scenarios]
            state_weights(exposure.frequency, exposure.portfolio, states)
            for sev in {st.severity for st in states}:  # the export prices every scenario's runaway
                exposure.cost_for(sev)
        except StudyError as err:
            raise _FieldError(tuple(int(k) if k.isdigit() else k for k in (err.field or "export").split(".")),
                              err.problem) from None
        return self

    # ---- derived views -------------------------------------------------------------------------
    def priors(self) -> dict[str, Prior]:
        """θ name → Prior in SI: the simulator's defaults, overridden by the study."""
        import simulators

        sim = simulators.load(self.simulator.name)
        out = {p.name: p.prior for p in sim.parameters}
        for name, spec in self.parameters.items():
            out[name] = _prior_si(spec, next(p.unit for p in sim.parameters if p.name == name))
        return out

    def condition_values(self) -> dict[str, float | tuple[float, float]]:
        """Condition name → SI value, or (low, high) for ranges sampled in the design."""
        return _condition_values(self.conditions)

    def trigger_conditions(self) -> dict[str, dict[str, float]]:
        """``data.trigger_conditions`` in SI (trigger → {condition: value})."""
        return {t: {k: _quantity_si(v) for k, v in c.items()} for t, c in (self.data.trigger_conditions if self.data else {}).items()}

    def condition_sets(self) -> list[tuple[float, dict[str, float | tuple[float, float]]]]:
        """``(share, overrides in SI)`` per ``ensemble.condition_sets`` (`simulators.ensemble.design_sets`)."""
        return [(cs.share, _condition_values(cs.conditions)) for cs in self.ensemble.condition_sets]

    def condition_bounds(self) -> dict[str, tuple[float, float]]:
        """(low, high) [SI] of every study condition over all condition sets: the simulated design's extent."""
        out: dict[str, tuple[float, float]] = {}
        for _, over in self.condition_sets() or [(1.0, {})]:
            for k, v in {**self.condition_values(), **over}.items():
                lo, hi = v if isinstance(v, tuple) else (v, v)
                out[k] = (min(out[k][0], lo), max(out[k][1], hi)) if k in out else (lo, hi)
        return out

    @property
    def base_dir(self) -> Path:
        return Path(self.source).parent if self.source else Path.cwd()

    def data_path(self) -> Path | None:
        return None if self.data is None else (self.base_dir / self.data.path).resolve()

    def section_hash(self, *sections: str) -> str:
        """SHA-256 of the named sections (canonical JSON), for stage caching."""
        dump = self.model_dump(mode="json")
        blob = json.dumps({s: dump.get(s) for s in sections}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    @property
    def hash(self) -> str:
        return self.section_hash(*[k for k in type(self).model_fields if k != "source"])


def _prior_si(spec: ParameterSpec, declared_unit: str) -> Prior:
    """Prior of a parameter spec in the simulator's declared unit (converting location/scale numbers)."""
    p = spec.prior
    if spec.unit is None or units.parse_unit(spec.unit) == units.parse_unit(declared_unit):
        return Prior(**p.model_dump())
    conv = lambda x: None if x is None else units.convert(x, spec.unit, declared_unit)  # noqa: E731
    scale = units.convert(1.0, spec.unit, declared_unit) - units.convert(0.0, spec.unit, declared_unit)
    if p.dist == "lognormal":
        import math

        return Prior("lognormal", mu=p.mu + math.log(scale), sigma=p.sigma)
    return Prior(p.dist, low=conv(p.low), high=conv(p.high), mu=conv(p.mu),
                 sigma=None if p.sigma is None else p.sigma * abs(scale))


class _FieldError(ValueError):
    def __init__(self, loc: tuple, msg: str):
        self.loc, self.msg = loc, msg
        super().__init__(msg)


def _apply_quick(data: dict) -> dict:
    """Deep-merge the study's ``quick:`` overrides into the other sections."""
    out = copy.deepcopy(data)

    def merge(dst: dict, src: dict):
        for k, v in src.items():
            if isinstance(v, dict) and isinstance(dst.get(k), dict):
                merge(dst[k], v)
            else:
                dst[k] = v

    merge(out, data.get("quick") or {})
    return out


def _suggest(loc: tuple, data: dict) -> str:
    """'did you mean' for an unknown key at ``loc`` given the model's fields at its parent."""
    model: Any = Study
    for key in loc[:-1]:
        field = getattr(model, "model_fields", {}).get(key)
        if field is None:
            return ""
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        model = next((a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if model is None:
            return ""
    hint = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1)
    return f"; did you mean {hint[0]!r}?" if hint else f"; allowed: {', '.join(model.model_fields)}"


def _describe(e: dict, data: dict) -> tuple[tuple, str, str]:
    """A pydantic error → (field path, one-line message, error type)."""
    loc = tuple(x for x in e["loc"] if not (isinstance(x, str) and x.startswith(
        ("function-", "str", "float", "int", "ConditionRange", "tagged"))))
    ctx_err = (e.get("ctx") or {}).get("error")
    if isinstance(ctx_err, _FieldError):
        return ctx_err.loc, ctx_err.msg, e["type"]
    if e["type"] == "extra_forbidden":
        msg = f"unknown key {loc[-1]!r}" + _suggest(loc, data)
    elif e["type"] == "missing":
        msg = f"missing required {'section' if len(loc) == 1 else 'field'} {loc[-1]!r}"
    else:
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] not in ("value_error", "assertion_error") and not isinstance(e.get("input"), dict):
            msg += f" (got {e.get('input')!r})"
    return loc, msg, e["type"]


def load_study(path: str | Path, *, quick: bool = False) -> Study:
    """Validate a study YAML file. Raises `StudyError` naming file, line and field path."""
    path = Path(path)
    data, lines = load_with_lines(path)
    effective = _apply_quick(data) if quick else data
    try:
        return Study.model_validate({**effective, "source": str(path.resolve())})
    except ValidationError as err:
        problems = [_describe(e, data) for e in err.errors()]
        # unknown keys first (a misspelt key also makes its field "missing"), then in document order
        problems.sort(key=lambda p: (p[2] != "extra_forbidden", lines.line(p[0]) or 0))
        loc, msg, _ = problems[0]
        if len(problems) > 1:
            msg += f" (+{len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})"
        field = ".".join(str(x) for x in loc)
        raise StudyError(msg, path=path, field=field or None, line=lines.line(loc)) from None


def json_schema() -> dict:
    """JSON Schema of the study format (shipped as risk/schema/study.schema.json)."""
    schema = Study.model_json_schema(mode="validation")
    schema["properties"].pop("source", None)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "trisk study"
    return schema
