"""Simulation rounds where the real cells live (the seed's loop: "more data can be collected through simulation
with updated parameters").

After calibration the decoder has been trained on simulations spread over the prior, while the real cells
sit in a small part of it. A round draws new simulations from the calibrated posterior — each one a
posterior draw's new cell of a real test's family under that test's conditions
(`risk.bayes.physics` `_new_cells`, the cells `risk predict` reasons about) —, runs them with the study's
simulator, retrains the decoder on the prior ensemble plus every round so far, and recalibrates. The
study's ``sim2real.rounds`` asks for N rounds (`risk.stages.calibrate` runs them); the run's reported
numbers come from the last round.

What a round buys is measured on one set of fresh simulations drawn from the *final* posterior, the same
for every round's decoder (`decoder_error`): its NRMSE per observable and Brier score of runaway there,
and the scenarios' P(TR) per round (→ ``rounds.json``, `round_record`). Active learning of emulators
where the posterior concentrates: Rasmussen, Bayesian Statistics 7 (2003) 651; Wang & Li, Neural
Computation 30 (2018) 3072; the sequential sbi rounds of Greenberg, Nonnenmacher & Macke, ICML 2019.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from simulators.ensemble import Design


def posterior_design(tree: xr.DataTree, decoder, data, condition_values: Mapping[str, float | tuple[float, float]],
                     n: int, *, seed: int) -> Design:
    """``n`` simulations where the calibrated cells live.

    Each is one posterior draw's new cell of a real test's family (`risk.bayes.physics._new_cells`; the
    directions the tests do not inform drawn from the prior) under that test's conditions; draws and tests
    are picked at random without replacement.

    Parameters
    ----------
    tree : physics posterior (`risk.bayes.physics.fit_physics`).
    decoder : its `sim2real.FrozenDecoder` (``from_unconstrained``, condition names).
    data : the `CalibrationData` it was fitted on (families and conditions of the real tests).
    condition_values : the study's conditions (`risk.study.Study.condition_values`), in the simulator's
        order: a decoder condition takes the test's value, a fixed one its value.
    n : number of simulations; seed : picks draws, tests and cells.
    """
    from risk.bayes.physics import _new_cells

    rng = np.random.default_rng(seed)
    conditions = np.asarray(data.conditions, float)
    u, _, _ = _new_cells(tree, [str(f) for f in data.family], conditions, rng=rng, n_cells=1, max_draws=None)
    S, n_tests = u.shape[:2]
    pick = rng.choice(S * n_tests, size=min(n, S * n_tests), replace=False)
    draw, test = pick // n_tests, pick % n_tests
    theta = decoder.from_unconstrained(u[draw, test, 0])
    names = list(decoder.condition_names)
    cols = []
    for name, value in condition_values.items():
        if name in names:
            cols.append(conditions[test, names.index(name)])
        elif isinstance(value, tuple):
            raise ValueError(f"condition {name!r} is sampled in the study's design but not a decoder condition")
        else:
            cols.append(np.full(test.size, float(value)))
    return Design(theta, tuple(decoder.parameter_names), np.column_stack(cols), tuple(condition_values))


def decoder_error(decoder, ensemble: xr.Dataset) -> dict:
    """A decoder's error on simulations ``ensemble`` (store layout): ``{"nrmse": {observable: float}, "r2":
    {observable: float}, "brier", "coverage90": {observable: float}, "n"}`` (`sim2real.validation.decoder_metrics`,
    on each observable's modelled scale; NRMSE over the range of these simulations, so decoders scored on the same
    set compare)."""
    from sim2real.bridge import ensemble_to_batch
    from sim2real.validation import decoder_metrics

    m = decoder_metrics(decoder, ensemble_to_batch(ensemble, decoder.layout, decoder.transform))
    return {"nrmse": m["nrmse"], "r2": m["r2"], "brier": m["brier"], "coverage90": m["coverage90"], "n": int(ensemble.sizes["sample"])}


def scenario_p_tr(tree: xr.DataTree, decoder, scenarios: Sequence, *, seed: int) -> dict[str, float]:
    """Posterior-mean P(TR) of a new cell per scenario name (`risk.predict.scenarios.new_cell_p_tr`)."""
    from risk.predict.scenarios import new_cell_p_tr

    def logit_fn(u, c):
        return decoder.torch_apply(np.asarray(u, float).reshape(-1, u.shape[-1]),
                                   np.asarray(c, float).reshape(-1, c.shape[-1]))["logit_runaway"].reshape(u.shape[:-1])

    p = new_cell_p_tr(tree, logit_fn, scenarios, n_cells=32, seed=seed, max_draws=500)
    return {sc.name: float(p[k].mean()) for k, sc in enumerate(scenarios)}


def round_record(rounds: list[dict], errors: list[dict], evaluation: dict) -> dict:
    """``rounds.json``: per round (0 = the prior ensemble) its simulations, diagnostics, the scenarios' P(TR)
    and its decoder's error on the evaluation set drawn from the final posterior."""
    return {"rounds": [r | {"decoder_error_posterior_region": e} for r, e in zip(rounds, errors)],
            "evaluation": evaluation}
