"""Frequency model: rate distributions, provenance of every rate, validation of the export section."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from risk.errors import StudyError
from risk.export import Exposure
from risk.frequency import BELOW_TESTED, FrequencyModel, Portfolio, Rate, ScenarioState, state_weights
from risk.study import load_study

REPO = Path(__file__).resolve().parents[3]
SHIPPED = sorted((REPO / "studies").glob("*.yaml"))
GOOD = REPO / "tests" / "risk" / "studies" / "good.yaml"


def test_lognormal_rate_follows_the_error_factor_convention(rng):
    r = Rate("lognormal", median=2e-4, error_factor=3.0)
    assert r.quantile(0.5) == pytest.approx(2e-4)
    assert r.quantile(0.95) / r.quantile(0.5) == pytest.approx(3.0)          # EF = q95 / q50
    assert r.quantile(0.5) / r.quantile(0.05) == pytest.approx(3.0)
    x = r.sample(200_000, rng)
    assert abs(x.mean() - r.mean()) < 4 * x.std() / math.sqrt(x.size)
    assert np.quantile(x, 0.95) == pytest.approx(r.quantile(0.95), rel=0.02)


def test_gamma_rate_is_the_jeffreys_posterior_of_a_count(rng):
    r = Rate("gamma", events=3, cell_years=1.5e7)
    # NUREG/CR-6823 §6.2.1.5.1: posterior Gamma(n + 1/2, T)
    assert r.mean() == pytest.approx(3.5 / 1.5e7)
    assert r.quantile(0.95) == pytest.approx(stats.gamma.ppf(0.95, 3.5) / 1.5e7)
    x = r.sample(200_000, rng)
    assert abs(x.mean() - r.mean()) < 4 * x.std() / math.sqrt(x.size)
    zero = Rate("gamma", events=0, cell_years=1e6)      # no event observed still gives a finite rate
    assert zero.mean() == pytest.approx(0.5e-6) and zero.quantile(0.95) > 0


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_studies_cite_a_source_for_every_rate(path):
    study = load_study(path)
    for quick in (False, True):
        dump = load_study(path, quick=quick).model_dump(mode="json")
        exposure = Exposure.from_study(dump)
        if study.export.exposure is None:
            assert exposure is None
            continue
        for ev in exposure.frequency.describe():
            rate = ev["rate"]
            assert rate["source"] and len(rate["source"]) > 40 and not rate["assumption"], ev["event_class"]
            assert rate["note"], f"{path.name}: say how the rate was derived from its source"
            mapping = ev["severities"]
            assert mapping["source"] or mapping["assumption"]
            assert sum(mapping["shares"].values()) == pytest.approx(1.0)
        assert sum(e.weight for e in exposure.portfolio.entries) == pytest.approx(1.0)
        # the portfolio and the mapping meet the study's scenarios
        scen = [ScenarioState(s["name"], s["cell_family"], s["soc"], str(s["severity"])) for s in dump["scenarios"]]
        A = state_weights(exposure.frequency, exposure.portfolio, scen)
        assert A.sum() > 0


def _study(tmp_path, export: str) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(GOOD.read_text() + "\n" + export)
    return p


EXPORT = """export:
  exposure: {fleet_size: 1000, cost_per_event_by_severity: {runaway: 1.0}}
  frequency:
    events:
      drop:
        rate: {distribution: lognormal, median: 1.0e-3, error_factor: 3, RATE}
        severities: {shares: {nominal: 0.5, below_tested: 0.5}, assumption: true}
  portfolio:
    entries:
      - {name: a, cell_family: A, soc: {0.5: 0.5, 1.0: 0.5}, weight: 0.5}
      - {name: b, cell_family: A, soc: 1.0, weight: WEIGHT}
"""


@pytest.mark.parametrize("rate, weight, field, words", [
    ("note: from a survey", "0.5", "export.frequency.events.drop.rate.source", "`source:`"),
    ("source: '   '", "0.5", "export.frequency.events.drop.rate.source", "assumption: true"),
    ("source: a survey", "0.4", "export.portfolio.entries", "sum to 1"),
    ("source: a survey, events: 3", "0.5", "export.frequency.events.drop.rate", "do not belong"),
])
def test_bad_export_section_names_the_field(tmp_path, rate, weight, field, words):
    path = _study(tmp_path, EXPORT.replace("RATE", rate).replace("WEIGHT", weight))
    with pytest.raises(StudyError) as info:
        load_study(path)
    assert info.value.field == field and words in str(info.value), str(info.value)
    assert info.value.line is not None


def test_assumption_flag_stands_in_for_a_source(tmp_path):
    path = _study(tmp_path, EXPORT.replace("RATE", "assumption: true, note: my judgement").replace("WEIGHT", "0.5"))
    exposure = Exposure.from_study(load_study(path).model_dump(mode="json"))
    ev = exposure.frequency.describe()[0]
    assert ev["rate"]["assumption"] is True and ev["rate"]["source"] is None
    assert exposure.abuse_events_per_cell_year == pytest.approx(Rate("lognormal", median=1e-3, error_factor=3).mean())


def test_dict_export_sections_are_validated_too():
    """write_exports takes study dicts: the same validation and field names apply."""
    exp = {"exposure": {"fleet_size": 10, "cost_per_event_by_severity": {"runaway": 1.0}},
           "frequency": {"events": {"k": {"rate": {"distribution": "gamma", "events": 1, "cell_years": 10},
                                          "severities": {"shares": {"x": 1.0}, "source": "s"}}}},
           "portfolio": {"entries": [{"name": "a", "cell_family": "A", "soc": 1.0, "weight": 1.0}]}}
    with pytest.raises(StudyError) as info:
        Exposure.from_study({"export": exp})
    assert info.value.field == "export.frequency.events.k.rate.source"
    with pytest.raises(StudyError) as info:
        Exposure.from_study({"export": {"exposure": exp["exposure"]}})
    assert info.value.field == "export.frequency"
    with pytest.raises(StudyError) as info:
        Exposure.from_study({"export": {**exp, "exposure": {**exp["exposure"], "scenario_weights": {"a": 1}}}})
    assert info.value.field == "export.exposure.scenario_weights" and "moved" in str(info.value)


def test_mapping_and_portfolio_must_meet_the_scenarios():
    freq = FrequencyModel.from_spec({"events": {"k": {
        "rate": {"distribution": "gamma", "events": 1, "cell_years": 10, "source": "s"},
        "severities": {"shares": {"hard": 0.5, BELOW_TESTED: 0.5}, "assumption": True}}}})
    pf = Portfolio.from_spec({"entries": [{"name": "a", "cell_family": "A", "soc": {"0.5": 0.5, "1.0": 0.5},
                                           "weight": 1.0}]})
    both = [ScenarioState("a50", "A", 0.5, "hard"), ScenarioState("a100", "A", 1.0, "hard")]
    np.testing.assert_allclose(state_weights(freq, pf, both), [[0.5, 0.5]])
    with pytest.raises(StudyError) as info:                       # SOC 0.5 has no "hard" scenario
        state_weights(freq, pf, both[1:])
    assert info.value.field == "export.portfolio.entries.0.soc" and "SOC 0.5" in str(info.value)
    with pytest.raises(StudyError) as info:                       # a severity no scenario has
        state_weights(freq, pf, [ScenarioState("x", "A", 0.5, "soft")])
    assert info.value.field == "export.frequency.events.k.severities.shares.hard"
    with pytest.raises(StudyError) as info:                       # a family no scenario has
        state_weights(freq, pf, [ScenarioState("x", "B", 0.5, "hard")])
    assert info.value.field == "export.portfolio.entries.0.cell_family"
    with pytest.raises(StudyError, match="cannot tell them apart"):
        state_weights(freq, pf, [*both, ScenarioState("dup", "A", 1.0, "hard")])
