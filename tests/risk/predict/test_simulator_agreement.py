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


def _batch_runs_away_above(threshold: float, us: np.ndarray) -> list:  # module level: picklable by reference
    return [(None, "RuntimeError: solver diverged", 0.0) if u[1] > 2.5 else (bool(u[0] > threshold), None, 0.0)
            for u in us]


def test_batched_runs_give_the_one_by_one_table():
    """Chunks of a scenario's cells through a batch runner (the simulator's vectorised path): the same table as one
    run per cell, in worker processes and here; a batch runner that raises records its chunk as failed runs."""
    from functools import partial

    rng = np.random.default_rng(1)
    cells = [rng.normal(size=(37, 2)), rng.normal(size=(5, 2)) - 1.0]
    decoder_p = [np.full(37, 0.4), np.full(5, 0.2)]
    one = check_scenarios(cells, decoder_p, [partial(_runs_away_above, 0.0)] * 2, workers=2)
    for workers in (1, 2):
        batched = check_scenarios(cells, decoder_p, [None, None], workers=workers, batch_size=8,
                                  batch_simulators=[partial(_batch_runs_away_above, 0.0)] * 2)
        assert batched.drop_attrs().identical(one.drop_attrs()), workers
    broken = check_scenarios(cells, decoder_p, [None, None], batch_size=8,
                             batch_simulators=[partial(_batch_runs_away_above, 0.0), _wrong_length])
    assert broken["simulator_runs_failed"].values.tolist() == [one["simulator_runs_failed"].values[0], 5]


def _wrong_length(us: np.ndarray) -> list:
    return [(True, None, 0.0)]


def test_the_studies_batched_simulator_runs_equal_the_single_runs():
    """`risk.stages._simulated_runaways` (a chunk through `simulators.ensemble.run_chunk`, the coupled chain's
    batched ring thermal model) gives each cell's `_simulated_runaway` outcome; real simulator, 4 cells."""
    from risk.stages import _simulated_runaway, _simulated_runaways
    from sim2real.bridge import ThetaTransform
    from simulators.registry import load

    sim = load("indentation_lumped")()
    names = sim.parameter_names
    transform = ThetaTransform.from_priors(names, [p.prior for p in sim.parameters])
    us = np.random.default_rng(4).normal(size=(4, len(names)))
    cond = {"soc": 1.0, "capacity_nominal": 10 * 3600.0}
    batched = _simulated_runaways("indentation_lumped", {}, transform, cond, 300.0, us)
    single = [_simulated_runaway("indentation_lumped", {}, transform, cond, 300.0, u) for u in us]
    assert [o for o, _, _ in batched] == single and all(e is None for _, e, _ in batched)
