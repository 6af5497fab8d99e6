"""Portfolio exports of a real quick run against a direct Monte Carlo of the fleet drawn cell by cell.

The real ``predictions.nc`` of the quick indentation study supplies P(TR) per scenario and posterior draw;
the study's portfolio and frequency sections are scaled to a 3000-cell fleet with frequent abuse so that a
direct simulation (tests/risk/export/test_portfolio_mc.py: every cell, every event, a coin per event) is
cheap and sees hundreds of runaways a year. The exported ``portfolio.csv`` must agree with it (|z| < 4).
"""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import xarray as xr

from risk.export import read_export, scenario_states, write_exports
from tests.risk.export.test_portfolio_mc import direct_fleet

FLEET = 3000


def _small_fleet(study: dict, batch: tuple[int, float] | None, n_aleatory: int = 400) -> dict:
    study = copy.deepcopy(study)
    export = study["export"]
    export["exposure"]["fleet_size"] = FLEET
    (name, ev), = export["frequency"]["events"].items()
    ev["rate"].update(median=0.5, error_factor=1.5)
    ev["severities"]["shares"] = {"6 mm punch": 0.3, "below_tested": 0.7}
    export["portfolio"].update(n_epistemic=400, n_aleatory=n_aleatory, common_cause=None if batch is None else
                               {"batch_size": batch[0], "multiplier_cv": batch[1], "assumption": True,
                                "note": "test"})
    return study


@pytest.mark.parametrize("batch", [None, (150, 0.5)], ids=["independent", "batch_common_cause"])
def test_portfolio_events_match_direct_fleet_monte_carlo(run_copy, batch):
    run, study = run_copy
    study = _small_fleet(study, batch)
    paths = write_exports(run, study)
    pf = read_export(paths["portfolio.csv"]).set_index("entry")
    pred = xr.open_dataset(run / "predictions.nc")
    p = pred["p_tr_draws"].transpose("scenario", ...).values
    export = study["export"]
    direct = direct_fleet(p, export["frequency"], export["portfolio"]["entries"], batch, n_years=600, seed=31,
                          scenarios=scenario_states(pred), fleet=FLEET)
    total = pf.loc["total"]
    se = direct.std(ddof=1) / math.sqrt(direct.size)
    z = (direct.mean() - total["annual_events_mean"]) / se
    # the exported 5 % / 95 % count quantiles hold 5 % / 95 % of the direct years (discrete counts). Both sides are
    # Monte Carlo estimates: the direct years' binomial se and the export's own, whose years cluster in its
    # n_epistemic posterior-and-rate draws (its effective size lies between n_epistemic and n_epistemic x n_aleatory;
    # n_epistemic is the conservative end). Measured on a quick run: six export seeds put their q95 at the 0.936-0.957
    # quantile of 6000 direct years (sd 0.008); the direct years' se alone (0.009 at 600 years) failed one run at z 4.3.
    n_epistemic = export["portfolio"]["n_epistemic"]
    z_q = []
    for q, col in ((0.05, "annual_events_q05"), (0.95, "annual_events_q95")):
        below, at_or_below = np.mean(direct < total[col]), np.mean(direct <= total[col])
        se_q = math.sqrt(q * (1 - q) * (1 / direct.size + 1 / n_epistemic))
        z_q.append(0.0 if below <= q <= at_or_below else min(abs(q - below), abs(q - at_or_below)) / se_q)
    print(f"{batch}: exported {total['annual_events_mean']:.1f} events/yr, direct {direct.mean():.1f} ± {se:.1f}; "
          f"z {z:.2f}; quantile z {np.round(z_q, 2)}")
    assert 30 < total["annual_events_mean"], "the scaled fleet must see many runaways a year"
    assert abs(z) < 4 and max(z_q) < 4
    assert total["batch_size"] == (0 if batch is None else batch[0])


def test_portfolio_curves_have_ordered_bands_and_see_the_common_cause(run_copy):
    run, study = run_copy
    base = _small_fleet(study, None, n_aleatory=2000)       # resolves exceedance probabilities down to 0.005
    curves = read_export(write_exports(run, base)["portfolio_exceedance.csv"])
    for _, part in curves.groupby("entry"):
        part = part.sort_values("exceedance_probability", ascending=False)
        for col in ("annual_events", "annual_loss"):
            assert np.all(np.diff(part[col].to_numpy()) >= 0)
            assert (part[f"{col}_q05"] <= part[f"{col}_q50"]).all() and (part[f"{col}_q50"] <= part[f"{col}_q95"]).all()
    assert {"total"} | {e["name"] for e in base["export"]["portfolio"]["entries"]} == set(curves["entry"])
    correlated = _small_fleet(study, (750, 1.0), n_aleatory=2000)
    cc = read_export(write_exports(run, correlated)["portfolio_exceedance.csv"])
    at = lambda df: df[(df.entry == "total") & (df.exceedance_probability == 0.01)].iloc[0]  # noqa: E731
    assert at(cc)["annual_events"] > 1.2 * at(curves)["annual_events"], "batches sharing a multiplier fatten the tail"
    mean_cc = read_export(run / "exports" / "portfolio.csv").set_index("entry").loc["total", "annual_events_mean"]
    mean = read_export(write_exports(run, base)["portfolio.csv"]).set_index("entry").loc["total", "annual_events_mean"]
    assert mean_cc == pytest.approx(mean, rel=1e-12), "the batch multiplier has mean 1: same expected count"
