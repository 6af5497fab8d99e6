"""The calibrated physics model as a stochastic simulator: synthetic tests of a cell family (``risk sample``).

Each synthetic test is one posterior draw (epistemic uncertainty) and one new cell of the family (cell-to-cell
variation) under the family's conditions (`risk.predict.scenarios.family_conditions`): its scalar observables
with the decoder's aleatory scale and the calibrated discrepancy, and its outcome from the same cell — jointly
drawn (`risk.bayes.physics.sample_tests`). A family the posterior does not know is a new family drawn from the
population over families.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from risk.errors import InputError

MAX_TESTS = 1_000_000


def synthetic_tests(run_dir: str | Path, family: str, soc: float, n: int, *, conditions: dict[str, float] | None = None,
                    seed: int = 0) -> pd.DataFrame:
    """``n`` synthetic tests of ``family`` at ``soc`` [1] (other ``conditions`` [SI] override the family's).

    Columns: ``test``, ``cell_family``, ``family_known``, ``posterior_draw``, one ``<condition> [unit]`` per
    decoder condition, one ``<observable> [unit]`` per scalar observable (SI), ``hazard_level`` (1–7; empty
    when the model has no ordinal outcome) and ``thermal_runaway`` (0/1; TR ≡ hazard level ≥ 6).
    """
    import yaml

    import simulators
    from risk.bayes.physics import sample_tests
    from risk.bayes.sampling import load_posterior
    from risk.data.registry import read_real
    from risk.predict.scenarios import family_conditions
    from risk.rundir import decoder_dir
    from sim2real import load_decoder

    run_dir = Path(run_dir)
    if not 1 <= n <= MAX_TESTS:
        raise InputError(f"-n must be between 1 and {MAX_TESTS}, got {n}", field="n")
    if not 0.0 <= soc <= 1.0:
        raise InputError(f"--soc must be a fraction in [0, 1], got {soc}", field="soc")
    for need in ("posterior.nc", "model", "study.yaml"):
        if not (run_dir / need).exists():
            raise InputError(f"not a calibrated run directory: {need} missing (run calibrate first)", path=run_dir / need)
    decoder = load_decoder(decoder_dir(run_dir))
    layout = decoder.layout
    unknown = set(conditions or {}) - set(layout.condition_names)
    if unknown:
        raise InputError(f"unknown condition(s) {sorted(unknown)}; the model's conditions are {list(layout.condition_names)}",
                         field="condition")
    tree = load_posterior(run_dir / "posterior.nc")
    real = read_real(run_dir / "real.nc") if (run_dir / "real.nc").exists() else None
    try:
        cond = np.asarray(family_conditions(layout, real, family, {"soc": soc, **(conditions or {})}), float)
    except ValueError as err:
        raise InputError(str(err), field="family") from None
    res = sample_tests(tree, decoder.numpy_apply(), family, cond, n, seed=seed)
    study = yaml.safe_load((run_dir / "study.yaml").read_text())
    units = {c.name: c.unit for c in simulators.load(study["simulator"]["name"]).conditions}
    known = family in set(map(str, tree["posterior"]["family"].values))
    out = {"test": [f"synthetic_{k + 1:06d}" for k in range(n)], "cell_family": family, "family_known": known,
           "posterior_draw": res["draw"]}
    for name, value in zip(layout.condition_names, cond):
        out[f"{name} [{units.get(name, 'SI')}]"] = value
    y = layout.denormalise(res["observables"])
    for ch, sl in layout.slices().items():
        channel = next(c for c in layout.channels if c.name == ch)
        if channel.dim is None:
            out[f"{ch} [{channel.units}]"] = y[:, sl.start]
    out["hazard_level"] = pd.array(np.where(np.isfinite(res["hazard_level"]), res["hazard_level"], np.nan), dtype="Int64") \
        if np.isfinite(res["hazard_level"]).any() else pd.array([pd.NA] * n, dtype="Int64")
    out["thermal_runaway"] = res["runaway"].astype(int)
    return pd.DataFrame(out)
