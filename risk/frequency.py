"""Abuse-event frequencies with uncertainty, and their propagation with P(TR) to a fleet.

The chain from a field abuse event to a runaway, each link with its own uncertainty (the probabilistic
risk assessment layout of NUREG/CR-6823, "Handbook of Parameter Estimation for Probabilistic Risk
Assessment", US NRC 2003):

====================================  =====================================  ==============================
link                                  symbol                                 from
====================================  =====================================  ==============================
abuse events of class k per cell-yr   λ_k [1/(cell yr)], epistemic draws      ``export.frequency.events.<k>.rate``
class k → tested severity σ           m_kσ [1], Σ_σ m_kσ = 1                  ``...<k>.severities.shares``
fleet entry e: family, SOC, share     w_e [1], p_e(s) [1]                     ``export.portfolio.entries``
runaway given the event               P(TR | f, s, σ) [1], posterior draws    ``predictions.nc`` ``p_tr_draws``
====================================  =====================================  ==============================

The share of class k judged milder than every tested severity (key ``below_tested``) is counted with
P(TR) = 0. A scenario ``s`` of the study is one state (family f_s, SOC s_s, severity σ_s); the rate of runaway
events per cell-year of entry ``e`` is

    r_e = Σ_s A_es R_s P_s,       A_es = [f_e = f_s] p_e(s_s),   R_s = Σ_k λ_k m_kσ_s,

and per cell-year of the whole fleet each scenario contributes π_s R_s P_s with π_s = Σ_e w_e A_es (its
``fleet_share``): the scenario rows partition the fleet's events, so they add up without double counting.
Epistemic draws pair one posterior draw of P(TR) with one joint draw of the rates λ_k (independent
sources of uncertainty).

Annual counts (aleatory, given an epistemic draw) are Poisson: N_es ~ Poisson(n_e A_es R_s P_s) with
n_e = w_e × fleet_size cells. With a batch common cause (``export.portfolio.common_cause``) the n_e/B
batches of B cells each share a multiplier Z_b ~ Gamma(1/κ, κ) (mean 1, variance κ = cv²) of their cells'
runaway rate; the entry's count is then Σ_b Poisson(Z_b μ_e/n_b) = Poisson(μ_e S̄) with
S̄ = (1/n_b) Σ_b Z_b ~ Gamma(n_b/κ, κ/n_b) — the gamma-Poisson (negative-binomial) frailty model drawn
exactly in one step. Batches of different entries are independent.

Examples
--------
>>> import numpy as np
>>> from risk.frequency import Rate
>>> r = Rate("gamma", events=4, cell_years=2e6)     # 4 events observed in 2e6 cell-years
>>> round(r.mean() * 1e6, 3)                        # Jeffreys posterior mean (4 + 1/2) / 2e6, per 1e6 cell yr
2.25
>>> Rate("lognormal", median=1e-4, error_factor=3).quantile(0.95) / 1e-4  # doctest: +ELLIPSIS
3.000...
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from risk.errors import StudyError

BELOW_TESTED = "below_tested"
"""Mapping key: share of a class's events judged milder than every tested severity (P(TR) = 0)."""

Z95 = float(stats.norm.ppf(0.95))
"""Standard-normal 95th percentile: a lognormal's error factor is q95/q50 = exp(Z95 σ) (NUREG/CR-6823 §6.2.3)."""

JEFFREYS_SHAPE = 0.5
"""Jeffreys prior Gamma(1/2, 0) of a Poisson rate: posterior Gamma(n + 1/2, T) (NUREG/CR-6823 §6.2.1.5.1)."""

SOC_TOL = 1e-9
"""Tolerance when matching a portfolio SOC with a scenario's SOC [1]."""


@dataclass(frozen=True)
class Rate:
    """Epistemic distribution of an abuse-event rate λ [1/(cell yr)].

    Parameters
    ----------
    distribution : ``"lognormal"`` (``median`` [1/(cell yr)], ``error_factor`` = q95/q50 [1]) or ``"gamma"``
        (``events`` observed [1] in ``cell_years`` [cell yr]; Jeffreys posterior Gamma(events + 1/2, cell_years)).
    """

    distribution: str
    median: float | None = None
    error_factor: float | None = None
    events: float | None = None
    cell_years: float | None = None

    @property
    def sigma(self) -> float:
        """Log-space standard deviation of a lognormal rate [1]."""
        return math.log(self.error_factor) / Z95

    @property
    def shape(self) -> float:
        """Gamma shape n + 1/2 [1]."""
        return self.events + JEFFREYS_SHAPE

    def mean(self) -> float:
        """E[λ] [1/(cell yr)]."""
        if self.distribution == "lognormal":
            return self.median * math.exp(0.5 * self.sigma ** 2)
        return self.shape / self.cell_years

    def quantile(self, q: float) -> float:
        """The ``q`` quantile of λ [1/(cell yr)]."""
        if self.distribution == "lognormal":
            return self.median * math.exp(self.sigma * float(stats.norm.ppf(q)))
        return float(stats.gamma.ppf(q, self.shape, scale=1.0 / self.cell_years))

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` independent draws of λ [1/(cell yr)]."""
        if self.distribution == "lognormal":
            return self.median * np.exp(self.sigma * rng.standard_normal(n))
        return rng.gamma(self.shape, 1.0 / self.cell_years, size=n)


@dataclass(frozen=True)
class EventClass:
    """One class of field abuse events: rate, mapping onto tested severities, and where both come from."""

    name: str
    rate: Rate
    shares: dict[str, float]
    rate_provenance: dict[str, Any] = field(default_factory=dict)
    mapping_provenance: dict[str, Any] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class FrequencyModel:
    """The event classes of ``export.frequency`` (see the module docstring)."""

    classes: tuple[EventClass, ...]

    @classmethod
    def from_spec(cls, spec: dict) -> "FrequencyModel":
        """From the validated ``export.frequency`` section as a dict (``risk.study.Frequency``)."""
        classes = []
        for name, ev in spec["events"].items():
            rate = ev["rate"]
            sev = ev["severities"]
            classes.append(EventClass(
                name=str(name),
                rate=Rate(rate["distribution"], median=rate.get("median"),
                          error_factor=rate.get("error_factor"), events=rate.get("events"),
                          cell_years=rate.get("cell_years")),
                shares={str(k): float(v) for k, v in sev["shares"].items()},
                rate_provenance=_provenance(rate), mapping_provenance=_provenance(sev),
                description=str(ev.get("description") or "")))
        return cls(tuple(classes))

    def severities(self) -> list[str]:
        """Tested severities that receive a positive share of some class (first-seen order)."""
        out: list[str] = []
        for ev in self.classes:
            out += [s for s, m in ev.shares.items() if s != BELOW_TESTED and m > 0 and s not in out]
        return out

    def total_rate_mean(self) -> float:
        """Σ_k E[λ_k]: mean abuse events of every class per cell-year [1/(cell yr)]."""
        return float(sum(ev.rate.mean() for ev in self.classes))

    def severity_rate_means(self) -> dict[str, float]:
        """σ → Σ_k E[λ_k] m_kσ [1/(cell yr)] (tested severities only)."""
        return {s: float(sum(ev.rate.mean() * ev.shares.get(s, 0.0) for ev in self.classes))
                for s in self.severities()}

    def sample_severity_rates(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """σ → (n,) joint draws of R_σ = Σ_k λ_k m_kσ [1/(cell yr)] (one λ_k draw per class and sample)."""
        out = {s: np.zeros(n) for s in self.severities()}
        for ev in self.classes:
            lam = ev.rate.sample(n, rng)
            for s, m in ev.shares.items():
                if s in out:
                    out[s] += m * lam
        return out

    def describe(self) -> list[dict]:
        """JSON-ready summary: per class its rate (mean, 5 %/95 % quantiles), mapping and provenance."""
        return [{"event_class": ev.name, "description": ev.description,
                 "rate": {"distribution": ev.rate.distribution,
                          **{k: getattr(ev.rate, k) for k in ("median", "error_factor", "events", "cell_years")
                             if getattr(ev.rate, k) is not None},
                          "mean": ev.rate.mean(), "q05": ev.rate.quantile(0.05), "q95": ev.rate.quantile(0.95),
                          "units": "1/(cell yr)", **ev.rate_provenance},
                 "severities": {"shares": ev.shares, **ev.mapping_provenance}}
                for ev in self.classes]


def _provenance(spec: dict) -> dict[str, Any]:
    return {"source": spec.get("source"), "assumption": bool(spec.get("assumption")),
            "note": spec.get("note") or ""}


@dataclass(frozen=True)
class Entry:
    """A portfolio entry: ``cell_family``, SOC distribution {soc [1]: probability [1]} and fleet ``weight`` [1]."""

    name: str
    cell_family: str
    soc: dict[float, float]
    weight: float

    @property
    def soc_mean(self) -> float:
        """Mean SOC [1]."""
        return float(sum(s * p for s, p in self.soc.items()))


@dataclass(frozen=True)
class CommonCause:
    """Batch frailty: ``batch_size`` [cell], ``multiplier_cv`` [1] of the shared gamma multiplier."""

    batch_size: int
    multiplier_cv: float
    provenance: dict[str, Any] = field(default_factory=dict)

    def fleet_multiplier(self, cells: float, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """Draws of S̄ = mean over the ``cells / batch_size`` batches of Z_b ~ Gamma(1/κ, κ), κ = cv² [1].

        The number of batches is taken as ``cells / batch_size`` (a partial batch counts by its size).
        """
        kappa = self.multiplier_cv ** 2
        if kappa == 0 or cells <= 0:
            return np.ones(shape)
        n_batches = cells / self.batch_size
        return rng.gamma(n_batches / kappa, kappa / n_batches, size=shape)

    def pair_correlation(self, rate_per_cell_year: float) -> float:
        """Correlation [1] of two cells' annual runaway counts in one batch: κ r / (1 + κ r)."""
        kr = self.multiplier_cv ** 2 * rate_per_cell_year
        return kr / (1.0 + kr)


@dataclass(frozen=True)
class Portfolio:
    """``export.portfolio``: entries (weights sum to 1), optional common cause, Monte Carlo sizes."""

    entries: tuple[Entry, ...]
    common_cause: CommonCause | None = None
    n_epistemic: int = 200
    n_aleatory: int = 10_000

    @classmethod
    def from_spec(cls, spec: dict) -> "Portfolio":
        """From the validated ``export.portfolio`` section as a dict (``risk.study.Portfolio``)."""
        entries = []
        for e in spec["entries"]:
            soc = e["soc"]
            dist = {float(k): float(v) for k, v in soc.items()} if isinstance(soc, dict) else {float(soc): 1.0}
            entries.append(Entry(str(e["name"]), str(e["cell_family"]), dist, float(e["weight"])))
        cc = spec.get("common_cause")
        return cls(tuple(entries),
                   None if not cc else CommonCause(int(cc["batch_size"]), float(cc["multiplier_cv"]),
                                                   _provenance(cc)),
                   int(spec.get("n_epistemic") or 200), int(spec.get("n_aleatory") or 10_000))


@dataclass(frozen=True)
class ScenarioState:
    """A scenario's state: ``name``, ``cell_family``, ``soc`` [1], ``severity`` (text)."""

    name: str
    cell_family: str
    soc: float
    severity: str


def state_weights(freq: FrequencyModel, portfolio: Portfolio,
                  scenarios: list[ScenarioState]) -> np.ndarray:
    """A_es = [f_e = f_s] p_e(soc_s): (entry, scenario) weight of each scenario's state in each entry [1].

    Raises
    ------
    risk.errors.StudyError
        Naming the field when a mapped severity has no scenario, an entry's family has none, or an
        entry's (family, SOC) lacks a scenario for a mapped severity (or has two: ambiguous).
    """
    known_sev = {s.severity for s in scenarios}
    for ev in freq.classes:
        for sev, m in ev.shares.items():
            if sev != BELOW_TESTED and m > 0 and sev not in known_sev:
                raise StudyError(f"no scenario has severity {sev!r} (scenario severities: {sorted(known_sev)}); "
                                 f"map field events onto tested severities or '{BELOW_TESTED}'",
                                 field=f"export.frequency.events.{ev.name}.severities.shares.{sev}")
    mapped = freq.severities()
    families = {s.cell_family for s in scenarios}
    A = np.zeros((len(portfolio.entries), len(scenarios)))
    for i, e in enumerate(portfolio.entries):
        if e.cell_family not in families:
            raise StudyError(f"no scenario of cell family {e.cell_family!r} (families: {sorted(families)})",
                             field=f"export.portfolio.entries.{i}.cell_family")
        for soc, p in e.soc.items():
            if p <= 0:
                continue
            for sev in mapped:
                hits = [j for j, s in enumerate(scenarios) if s.cell_family == e.cell_family
                        and abs(s.soc - soc) <= SOC_TOL and s.severity == sev]
                if not hits:
                    raise StudyError(f"entry {e.name!r}: no scenario of {e.cell_family!r} at SOC {soc:g} with "
                                     f"severity {sev!r}, which export.frequency maps field events onto; add that "
                                     "scenario or change the SOC distribution", field=f"export.portfolio.entries.{i}.soc")
                if len(hits) > 1:
                    raise StudyError(f"scenarios {[scenarios[j].name for j in hits]} share cell family, SOC "
                                     f"{soc:g} and severity {sev!r}: the portfolio cannot tell them apart; give "
                                     "them distinct severities", field=f"export.portfolio.entries.{i}.soc")
            for j, s in enumerate(scenarios):
                if s.cell_family == e.cell_family and abs(s.soc - soc) <= SOC_TOL:
                    A[i, j] += p
    return A


def fleet_shares(portfolio: Portfolio, A: np.ndarray) -> np.ndarray:
    """π_s = Σ_e w_e A_es: share of the fleet's cell-years in each scenario's (family, SOC) state [1]."""
    w = np.array([e.weight for e in portfolio.entries])
    return w @ A


def scenario_rates(freq: FrequencyModel, scenarios: list[ScenarioState],
                   draws: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """R_s = Σ_k λ_k m_kσ_s per scenario [1/(cell yr)]: (scenario,) means, or (scenario, n) from ``draws``."""
    if draws is None:
        means = freq.severity_rate_means()
        return np.array([means.get(s.severity, 0.0) for s in scenarios])
    n = len(next(iter(draws.values()))) if draws else 0
    return np.stack([draws.get(s.severity, np.zeros(n)) for s in scenarios]) if scenarios else np.zeros((0, n))


@dataclass
class EntryYears:
    """Simulated years of one portfolio entry (or of the total).

    counts, loss : (n_epistemic, n_aleatory) annual runaway events [1/yr] and losses [currency/yr].
    tr_rate : (n_epistemic,) runaway events per cell-year of the entry [1/(cell yr)] of each epistemic draw.
    """

    name: str
    counts: np.ndarray
    loss: np.ndarray
    tr_rate: np.ndarray


def simulate_years(p_draws: np.ndarray, R: np.ndarray, A: np.ndarray, cells: np.ndarray, costs: np.ndarray,
                   portfolio: Portfolio, rng: np.random.Generator):
    """Annual runaway counts and losses of each entry, epistemic draw by epistemic draw.

    Parameters
    ----------
    p_draws : (scenario, n_epistemic) P(TR) of the chosen posterior draws [1].
    R : (scenario, n_epistemic) mapped abuse-event rates of the paired rate draws [1/(cell yr)].
    A : (entry, scenario) state weights (:func:`state_weights`).
    cells : (entry,) cells of each entry [cell] (one year of service each).
    costs : (scenario,) cost of one runaway event [currency].
    portfolio : sizes (``n_aleatory``) and the optional common cause.
    rng : seeded generator.

    Yields
    ------
    EntryYears per entry, in order (batches of different entries are independent).
    """
    m = portfolio.n_aleatory
    J = p_draws.shape[1]
    P = np.nan_to_num(p_draws, nan=0.0)
    for i, e in enumerate(portfolio.entries):
        # expected counts per scenario state and epistemic draw: n_e A_es R_s P_s  (scenario, J)
        mu = cells[i] * A[i][:, None] * R * P
        frailty = (portfolio.common_cause.fleet_multiplier(cells[i], (J, m), rng)
                   if portfolio.common_cause is not None else None)
        counts = np.zeros((J, m), dtype=np.int64)
        loss = np.zeros((J, m))
        for s in np.flatnonzero(mu.sum(axis=1) > 0):
            lam = mu[s][:, None] if frailty is None else mu[s][:, None] * frailty
            n = rng.poisson(np.broadcast_to(lam, (J, m)))
            counts += n
            loss += costs[s] * n
        tr_rate = (A[i][:, None] * R * P).sum(axis=0)
        yield EntryYears(e.name, counts, loss, tr_rate)
