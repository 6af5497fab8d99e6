"""The discretisation-error check (`risk.convergence`): Richardson extrapolation on known sequences, and the real FE
chain on three refined discretisations."""
import math

import numpy as np
import pytest

from risk.convergence import FS_OBSERVED, FS_UNKNOWN, RATIO, check, ensemble_spread, estimate, refinable


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
def test_a_sequence_of_known_order_extrapolates_to_its_limit(p):
    """φ(h) = φ* + C h^p on h = 1, 1/r, 1/r²: the apparent order is p and the extrapolation φ* exactly."""
    exact, c = 7.0, 0.3
    phi = tuple(exact + c * RATIO ** (-p * k) for k in range(3))
    est = estimate(phi)
    assert est["state"] == "monotone"
    assert est["order"] == pytest.approx(p, rel=1e-9)
    assert est["extrapolated"] == pytest.approx(exact, rel=1e-12)
    assert est["uncertainty"] == pytest.approx(FS_OBSERVED * c, rel=1e-9)  # the study level's true error × Fs


def test_unclear_orders_get_the_conservative_estimate_and_constant_outputs_none():
    osc = estimate((1.0, 1.2, 1.1))
    assert osc["state"] == "oscillatory" and math.isnan(osc["order"])
    assert osc["uncertainty"] == pytest.approx(FS_UNKNOWN * 0.2)
    slow = estimate((1.0, 1.1, 1.19))  # p = ln(0.1 / 0.09) / ln 1.5 = 0.26 < 0.5: not in the asymptotic range
    assert slow["state"] == "not asymptotic" and slow["uncertainty"] == pytest.approx(FS_UNKNOWN * 0.19)
    assert estimate((2.0, 2.0, 2.0)) == {"state": "converged", "order": pytest.approx(float("nan"), nan_ok=True),
                                         "extrapolated": 2.0, "uncertainty": 0.0}
    assert estimate((1.0, float("nan"), 1.0))["state"] == "missing"


def test_only_simulators_with_a_discretisation_are_refinable():
    assert refinable("fe_indentation_coupled") and refinable("indentation_lumped") and refinable("fe_thermal_18650")
    assert not refinable("lumped_thermal")


def test_refinability_is_read_from_the_source_without_importing_the_fe_stack():
    """`simulators.registry.overrides` reads a module that is not imported yet from its source: the same answer as
    the imported class gives, for every registered simulator, with dolfinx and PyBaMM still unloaded."""
    import subprocess
    import sys

    script = ("import sys, simulators\n"
              "from simulators.registry import available, load, overrides\n"
              "names = available()\n"
              "source = {n: overrides(n, 'refined') for n in names}\n"
              "assert not {'dolfinx', 'pybamm'} & set(sys.modules), sorted({'dolfinx', 'pybamm'} & set(sys.modules))\n"
              "loaded = {n: load(n).refined is not simulators.base.Simulator.refined for n in names}\n"
              "assert source == loaded, (source, loaded)\n"
              "print(sorted(n for n in names if source[n]))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "fe_thermal_18650" in out.stdout and "lumped_thermal" not in out.stdout


SCRIPT = """
import json, sys
from risk.convergence import check
from risk.study import load_study

study = load_study("studies/oven_18650.yaml", quick=True)
ref = study.reference
res = check(ref.simulator, ref.options, study.priors(), study.condition_values(), study.condition_sets(), n=1, seed=5,
            input_spread={"temperature_peak": 30.0}, workers=1, observables=("temperature_peak",),
            reduced_from=(study.simulator.name, study.simulator.options))
res["fe_stack_here"] = "dolfinx" in sys.modules
print(json.dumps(res, default=float))
"""


def test_a_mesh_free_studys_fe_reference_on_three_discretisations():
    """The oven study's lumped draws mapped onto its FE 18650 (`risk.fidelity`): the FE mesh and step controls
    refine together; the draw's parameters are the FE cylinder's, the lumped-only ones held at their medians. The
    runs happen in a worker process even for one draw: the stage's own process later trains and samples with torch
    and JAX, and with dolfinx/PETSc loaded beside them the quick default study's train stage crashed (SIGSEGV)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=repo, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert not res["fe_stack_here"]
    assert res["reduced_from"] == "lumped_thermal" and set(res["held"]) == {"c_sei0", "enthalpy_factor"}
    assert res["n_complete"] == 1 and not res["failures"] and res["runaway_changes"] == 0
    levels = res["level_options"]
    assert levels[0]["resolution"] == "coarse" and [tuple(o["resolution"]) for o in levels[1:]] == [(9, 24), (14, 36)]
    assert levels[2]["dT_step"] == pytest.approx(levels[0]["dT_step"] / RATIO**2)
    peaks = [lv["outputs"]["temperature_peak"] for lv in res["rows"][0]["levels"]]
    assert np.isfinite(peaks).all() and res["outputs"]["temperature_peak"]["negligible"] is not None


def test_the_fe_chain_on_three_discretisations():
    """The real chain (dolfinx punch, ring thermal model) on one draw at the study's level and refined twice: the
    levels' options refine together, the runaway agrees and the force at the short's onset converges."""
    from risk.study import load_study

    study = load_study("studies/indentation_pouch.yaml", quick=True)
    obs = tuple(study.sim2real.observables)
    res = check(study.simulator.name, {}, study.priors(), study.condition_values(), study.condition_sets(), n=1,
                seed=3, input_spread={"force_short_onset": 1.0e3}, workers=1, observables=obs)
    assert res["n_complete"] == 1 and not res["failures"] and res["runaway_changes"] == 0
    levels = res["level_options"]
    assert levels[0]["resolution"] == "coarse" and [tuple(o["resolution"]) for o in levels[1:]] == [(24, 12), (36, 18)]
    assert all(o["thermal"] == "lumped" and o["n_time"] == levels[0]["n_time"] for o in levels)  # only the discretisation
    assert [o["n_rings"] for o in levels[1:]] == [36, 54]
    assert levels[2]["temperature_step"] == pytest.approx(5.0 / RATIO**2)
    force = [lv["outputs"]["force_short_onset"] for lv in res["rows"][0]["levels"]]
    assert np.isfinite(force).all() and abs(force[0] - force[2]) / force[2] < 0.02  # the coarse punch mesh is close
    f = res["outputs"]["force_short_onset"]
    assert f["units"] == "N" and f["n"] == 1 and f["ratio_to_input"] == pytest.approx(f["uncertainty_rms"] / 1.0e3)
    assert set(obs) <= set(res["outputs"]) and res["outputs"]["voltage_drop"]["negligible"] is None  # no spread given


def test_the_ensemble_spread_skips_missing_values():
    import xarray as xr

    ens = xr.Dataset({"a": ("sample", [1.0, 3.0, np.nan]), "b": ("sample", [np.nan, np.nan, 2.0]),
                      "c": (("sample", "time"), np.zeros((3, 2)))})
    spread = ensemble_spread(ens, ("a", "b", "c", "d"))
    assert spread["a"] == pytest.approx(np.std([1.0, 3.0], ddof=1)) and math.isnan(spread["b"])
    assert set(spread) == {"a", "b"}
