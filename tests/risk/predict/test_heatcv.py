"""The scores and the baseline of the heat-interval cross-validation (risk.predict.heatcv), on known answers.
The physics arm runs in the calorimetry quick study (tests/integration/test_studies_quick.py)."""
import numpy as np
import pandas as pd
from scipy import stats

from risk.predict.heatcv import group_normal_intervals, interval_scores


def test_interval_score_is_width_plus_penalty():
    y = np.array([5.0, 0.0, 12.0])
    lo, hi = np.full(3, 2.0), np.full(3, 10.0)
    s = interval_scores(y, lo, hi)
    assert s["coverage_90"] == 1 / 3 and s["width_90"] == 8.0
    # misses by 2 below and 2 above: 8 + 20·2 each (Gneiting & Raftery 2007, alpha = 0.1)
    assert np.isclose(s["interval_score_90"], (8 + 48 + 48) / 3)


def test_a_calibrated_normal_interval_covers_90_percent():
    rng = np.random.default_rng(0)
    m, sd = 40.0, 7.0
    y = rng.normal(m, sd, 200_000)
    z = stats.norm.ppf(0.95)
    assert abs(interval_scores(y, np.full(y.size, m - z * sd), np.full(y.size, m + z * sd))["coverage_90"] - 0.9) < 0.005


def test_group_baseline_uses_its_group_then_falls_back():
    train = pd.DataFrame({"family": ["A", "A", "A", "B", "C", "C"], "soc": [1.0, 1.0, 1.0, 1.0, 0.5, 0.5],
                          "trigger": ["heater"] * 4 + ["nail"] * 2, "heat_kj": [10.0, 12.0, 14.0, 30.0, 5.0, 7.0]})
    test = pd.DataFrame({"family": ["A", "B", "D", "E"], "soc": [1.0, 1.0, 1.0, 0.2],
                         "trigger": ["heater", "heater", "heater", "oven"]})
    lo, hi = group_normal_intervals(train, test)
    z = stats.norm.ppf(0.95)
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    # A: its own mean and sd (2)
    assert np.isclose(mid[0], 12.0) and np.isclose(half[0], z * 2.0)
    # B: one test, so the pooled within-group sd: sqrt((4 + 0 + 4 + 0 + 1 + 1) / (6 - 3))
    assert np.isclose(mid[1], 30.0) and np.isclose(half[1], z * np.sqrt(10 / 3))
    # D: unseen type, falls back to SOC 1 × heater (A and B together)
    ab = np.array([10.0, 12.0, 14.0, 30.0])
    assert np.isclose(mid[2], ab.mean()) and np.isclose(half[2], z * ab.std(ddof=1))
    # E: nothing shares SOC and trigger, falls back to every training test
    assert np.isclose(mid[3], train["heat_kj"].mean()) and np.isclose(half[3], z * train["heat_kj"].std(ddof=1))
