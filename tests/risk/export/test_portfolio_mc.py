"""The portfolio aggregation (risk.frequency) against a direct Monte Carlo of the fleet, cell by cell.

The direct simulation below shares no code with the aggregation: for every simulated year it draws one
posterior draw of P(TR) and the rates λ_k (its own lognormal / gamma samplers) and a multiplier Z_b per
batch, lets every cell of the fleet suffer Poisson(λ_k Z_b) abuse events of each class, gives each event a
severity (the class's shares) and a SOC (the cell's entry) and flips a coin with P(TR) per event (scaling
the cell's rate by Z_b is scaling its P(TR) by Z_b, by Poisson thinning, without capping P(TR) Z_b at 1).
The aggregation instead sums expected counts over scenario states and draws one Poisson count per state
with a gamma multiplier per entry. Agreement is checked with z-scores (|z| < 4) on the mean annual count
and on tail probabilities; a negative control shows the tail check detects a missing common cause.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from risk.frequency import (FrequencyModel, Portfolio, ScenarioState, fleet_shares, scenario_rates,
                            simulate_years, state_weights)

SCENARIOS = [ScenarioState("F1-50-mild", "F1", 0.5, "mild"), ScenarioState("F1-50-hard", "F1", 0.5, "hard"),
             ScenarioState("F1-100-mild", "F1", 1.0, "mild"), ScenarioState("F1-100-hard", "F1", 1.0, "hard"),
             ScenarioState("F2-100-mild", "F2", 1.0, "mild"), ScenarioState("F2-100-hard", "F2", 1.0, "hard"),
             ScenarioState("F2-50-oven", "F2", 0.5, "oven")]   # a state no entry or event class reaches
FLEET = 3000          # cells
FREQ = {"events": {
    "drop": {"rate": {"distribution": "lognormal", "median": 0.2, "error_factor": 2.0, "source": "test"},
             "severities": {"shares": {"mild": 0.6, "hard": 0.1, "below_tested": 0.3}, "assumption": True}},
    "heat": {"rate": {"distribution": "gamma", "events": 30, "cell_years": 100.0, "source": "test"},
             "severities": {"shares": {"hard": 0.5, "below_tested": 0.5}, "assumption": True}}}}
ENTRIES = [{"name": "E1", "cell_family": "F1", "soc": {"0.5": 0.3, "1.0": 0.7}, "weight": 0.6},
           {"name": "E2", "cell_family": "F2", "soc": 1.0, "weight": 0.4}]


def p_tr_draws(n_draws: int, seed: int = 5) -> np.ndarray:
    """(scenario, draw) P(TR) ≤ 0.2, spread like a posterior."""
    rng = np.random.default_rng(seed)
    means = np.array([0.03, 0.12, 0.06, 0.18, 0.02, 0.08, 0.15])
    return 0.2 * rng.beta(20 * means / 0.2, 20 * (1 - means / 0.2), size=(n_draws, len(means))).T


def direct_fleet(p: np.ndarray, freq: dict, entries: list[dict], batch: tuple[int, float] | None,
                 n_years: int, seed: int, scenarios: list[ScenarioState] = SCENARIOS, fleet: int = FLEET) -> np.ndarray:
    """Annual runaway counts of the fleet simulated cell by cell and event by event (no aggregation).

    ``p`` (scenario, draw) P(TR) of ``scenarios``; ``entries`` as in ``export.portfolio.entries``; ``batch``
    (batch size [cell], multiplier cv [1]) or None; ``fleet`` cells.
    """
    rng = np.random.default_rng(seed)
    cell_entry = np.repeat(np.arange(len(entries)), [round(e["weight"] * fleet) for e in entries])
    n_cells = len(cell_entry)
    # batches: consecutive cells of one entry
    first = np.searchsorted(cell_entry, np.arange(len(entries)))
    batch_of = (np.arange(n_cells) - first[cell_entry]) // (batch[0] if batch else n_cells)
    batch_of = batch_of + 10_000 * cell_entry
    batches, batch_idx = np.unique(batch_of, return_inverse=True)
    lookup = {(s.cell_family, round(s.soc, 9), s.severity): j for j, s in enumerate(scenarios)}
    counts = np.zeros(n_years, dtype=np.int64)
    for year in range(n_years):
        d = rng.integers(p.shape[1])
        if batch:
            k = batch[1] ** 2
            z = rng.gamma(1 / k, k, size=len(batches))[batch_idx]
        else:
            z = np.ones(n_cells)
        for ev in freq["events"].values():
            r = ev["rate"]
            if r["distribution"] == "lognormal":
                lam = r["median"] * math.exp(math.log(r["error_factor"]) / 1.6448536269514722 * rng.standard_normal())
            else:
                lam = rng.gamma(r["events"] + 0.5) / r["cell_years"]
            n_ev = rng.poisson(lam * z)            # the batch multiplier scales the cell's runaway rate
            cell = np.repeat(np.arange(n_cells), n_ev)
            sev_names = list(ev["severities"]["shares"])
            sev = rng.choice(len(sev_names), p=list(ev["severities"]["shares"].values()), size=cell.size)
            p_event = np.zeros(cell.size)
            for i, e in enumerate(entries):
                soc = e["soc"] if isinstance(e["soc"], dict) else {str(e["soc"]): 1.0}
                # P(TR) of this entry's cells by (SOC, severity); 0 where no scenario (below tested)
                table = np.array([[p[lookup[key], d] if (key := (e["cell_family"], round(float(c), 9), sv)) in lookup
                                   else 0.0 for sv in sev_names] for c in soc])
                mine = np.flatnonzero(cell_entry[cell] == i)
                soc_of = rng.choice(len(soc), p=list(soc.values()), size=mine.size)
                p_event[mine] = table[soc_of, sev[mine]]
            counts[year] += int(np.sum(rng.random(cell.size) < p_event))
    return counts


def aggregate(p: np.ndarray, freq: dict, entries: list[dict], batch: tuple[int, float] | None,
              n_epistemic: int, n_aleatory: int, seed: int):
    """The aggregation code: (epistemic, aleatory) total counts and the exact expected annual count."""
    model = FrequencyModel.from_spec(freq)
    pf = Portfolio.from_spec({"entries": entries, "n_epistemic": n_epistemic, "n_aleatory": n_aleatory,
                              "common_cause": None if batch is None else
                              {"batch_size": batch[0], "multiplier_cv": batch[1], "assumption": True}})
    A = state_weights(model, pf, SCENARIOS)
    rng = np.random.default_rng(seed)
    pick = rng.integers(p.shape[1], size=n_epistemic)
    R = scenario_rates(model, SCENARIOS, model.sample_severity_rates(n_epistemic, rng))
    cells = np.array([e["weight"] for e in entries]) * FLEET
    years = list(simulate_years(p[:, pick], R, A, cells, np.ones(len(SCENARIOS)), pf, rng))
    total = sum(y.counts for y in years)
    mean = float(cells @ (A @ (scenario_rates(model, SCENARIOS) * p.mean(axis=1))))
    return total, mean, A, pf


def tail_z(agg: np.ndarray, direct: np.ndarray, t: float) -> float:
    """z of P(N > t): aggregation (clustered by epistemic draw) against the direct simulation."""
    per_draw = (agg > t).mean(axis=1)
    p_a, se_a = per_draw.mean(), per_draw.std(ddof=1) / math.sqrt(len(per_draw))
    p_d = (direct > t).mean()
    se_d = math.sqrt(max(p_d * (1 - p_d), 1e-12) / len(direct))
    return (p_d - p_a) / math.hypot(se_a, se_d)


def test_expected_events_agree_with_independent_arithmetic():
    p = p_tr_draws(400)
    _, mean, A, pf = aggregate(p, FREQ, ENTRIES, None, 20, 10, seed=1)
    lam_drop = 0.2 * math.exp(0.5 * (math.log(2.0) / 1.6448536269514722) ** 2)
    lam_heat = 30.5 / 100.0
    pm = p.mean(axis=1)
    by = {(s.cell_family, s.soc, s.severity): pm[j] for j, s in enumerate(SCENARIOS)}

    def per_cell(fam, soc):
        return (lam_drop * (0.6 * by[(fam, soc, "mild")] + 0.1 * by[(fam, soc, "hard")])
                + lam_heat * 0.5 * by[(fam, soc, "hard")])
    expected = FLEET * (0.6 * (0.3 * per_cell("F1", 0.5) + 0.7 * per_cell("F1", 1.0)) + 0.4 * per_cell("F2", 1.0))
    assert mean == pytest.approx(expected, rel=1e-12)
    # rows partition the fleet: Σ_s π_s R_s P_s is the fleet's rate, and the oven state gets no share
    share = fleet_shares(pf, A)
    np.testing.assert_allclose(share, [0.18, 0.18, 0.42, 0.42, 0.4, 0.4, 0.0])
    rates = scenario_rates(FrequencyModel.from_spec(FREQ), SCENARIOS)
    assert FLEET * float(np.sum(share * rates * pm)) == pytest.approx(expected, rel=1e-12)


def test_aggregated_annual_events_match_direct_fleet_monte_carlo():
    p = p_tr_draws(400)
    agg, mean, _, _ = aggregate(p, FREQ, ENTRIES, (300, 0.5), n_epistemic=400, n_aleatory=500, seed=11)
    direct = direct_fleet(p, FREQ, ENTRIES, (300, 0.5), n_years=1500, seed=12)
    z_mean = (direct.mean() - mean) / (direct.std(ddof=1) / math.sqrt(direct.size))
    per_draw = agg.mean(axis=1)
    z_sim = (per_draw.mean() - mean) / (per_draw.std(ddof=1) / math.sqrt(per_draw.size))
    z_tail = [tail_z(agg, direct, np.quantile(agg, q)) for q in (0.1, 0.5, 0.9, 0.99)]
    print(f"mean events/yr {mean:.2f}; direct {direct.mean():.2f}; z_mean {z_mean:.2f}, z_sim {z_sim:.2f}, "
          f"z_tail {np.round(z_tail, 2)}")
    assert 50 < mean < 400, "test fleet should see tens to hundreds of runaways a year"
    assert abs(z_mean) < 4 and abs(z_sim) < 4
    assert max(abs(z) for z in z_tail) < 4


def test_common_cause_spreads_the_count_as_the_direct_simulation_does():
    # rates and P(TR) fixed: the spread is Poisson + batch frailty only, so the tail sees the frailty
    freq = {"events": {"drop": {"rate": {"distribution": "lognormal", "median": 0.5, "error_factor": 1.0,
                                         "assumption": True},
                                "severities": {"shares": {"mild": 0.5, "hard": 0.5}, "assumption": True}}}}
    p = p_tr_draws(1)
    batch = (150, 0.6)
    direct = direct_fleet(p, freq, ENTRIES, batch, n_years=1500, seed=21)
    agg, mean, _, _ = aggregate(p, freq, ENTRIES, batch, n_epistemic=4, n_aleatory=20_000, seed=22)
    independent, _, _, _ = aggregate(p, freq, ENTRIES, None, n_epistemic=4, n_aleatory=20_000, seed=23)
    t = np.quantile(agg, 0.95)
    z = tail_z(agg, direct, t)
    z_mean = (direct.mean() - mean) / (direct.std(ddof=1) / math.sqrt(direct.size))
    z_ignored = tail_z(independent, direct, t)
    print(f"var direct {direct.var():.1f}, aggregated {agg.var():.1f}, independent {independent.var():.1f}; "
          f"z {z:.2f}, z_mean {z_mean:.2f}, z if the common cause were ignored {z_ignored:.1f}")
    assert abs(z) < 4 and abs(z_mean) < 4
    assert z_ignored > 4, "the check must be able to see a missing common cause"
    assert agg.var() > 1.5 * independent.var()
