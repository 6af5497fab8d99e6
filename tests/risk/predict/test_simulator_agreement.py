"""The full simulator against its decoder at every scenario's cells (risk.predict.simulator_agreement)."""
from __future__ import annotations

import numpy as np

from risk.predict.rare_events import wilson_interval
from risk.predict.simulator_agreement import check_scenarios


def _runs_away_above(threshold: float, u: np.ndarray) -> bool:  # module level: worker processes unpickle it
    if u[1] > 2.5:
        raise RuntimeError("solver diverged")
    return bool(u[0] > threshold)


def test_a_decoder_that_misrepresents_its_simulator_is_caught_scenario_by_scenario():
    """Two scenarios with a threshold 'simulator': one whose decoder matches it, one whose decoder says runaway where
    the simulator never runs away (the case the default study exposed); failed runs are counted, not fatal."""
    from functools import partial

    rng = np.random.default_rng(0)
    cells = [rng.normal(size=(40, 2)), rng.normal(size=(40, 2)) - 3.0]
    truth = [np.asarray(c[:, 0] > 0.0, float) for c in cells]
    decoder_p = [np.clip(truth[0], 0.05, 0.95), np.full(40, 0.7)]
    sims = [partial(_runs_away_above, 0.0)] * 2
    ds = check_scenarios(cells, decoder_p, sims, workers=2)
    ok = [np.asarray(c[:, 1] <= 2.5) for c in cells]
    for i in range(2):
        k, n = int(truth[i][ok[i]].sum()), int(ok[i].sum())
        assert ds["simulator_runs"].values[i] == n and ds["simulator_runs_failed"].values[i] == 40 - n
        assert ds["simulator_runaway_fraction"].values[i] == k / n
        assert (ds["simulator_runaway_wilson_lo"].values[i], ds["simulator_runaway_wilson_hi"].values[i]) == \
            wilson_interval(k, n)
        assert ds["decoder_runaway_p"].values[i] == np.mean(decoder_p[i][ok[i]])
    assert ds["simulator_runaway_fraction"].values[1] == 0.0
    assert ds["decoder_within_wilson"].values.tolist() == [1.0, 0.0]
    assert all(ds[v].attrs["units"] == "1" for v in ds.data_vars) and ds.attrs["simulator_check_seconds"] > 0
    # in this process, one after another: the same numbers
    serial = check_scenarios(cells, decoder_p, sims, workers=1)
    assert serial.drop_attrs().identical(ds.drop_attrs())
