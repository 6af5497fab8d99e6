"""A small but genuine run directory for the report/export tests.

Synthetic "real" indentation tests are drawn from a known truth (seeded); a hierarchical logistic
model of thermal runaway plus a force-curve model is fitted with NumPyro NUTS; predictions
(P(TR) per scenario, law-of-total-variance split), Sobol sensitivities (SALib), cross-validation
scores, diagnostics, provenance, an ensemble store and a mesh-convergence study are computed from it
and written in the formats of docs/contracts.md.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

SEED = 20260
FAMILIES = ("NMC-21700", "LFP-prism")
SOCS = (0.25, 0.5, 0.75, 1.0)
DISP = np.linspace(0.0, 4e-3, 25)  # m
GH_Z, GH_W = np.polynomial.hermite_e.hermegauss(24)
GH_W = GH_W / GH_W.sum()


def make_study() -> dict:
    """The study dict (shape of ``Study.model_dump()``)."""
    return {
        "study": {"name": "tiny-nail", "description": "Nail penetration of two cell families "
                  "(test fixture).", "seed": SEED},
        "cell": {"families": list(FAMILIES)},
        "simulator": {"name": "force_power_law", "n_displacement": len(DISP)},
        "parameters": {
            "intercept_NMC-21700": {"prior": {"dist": "normal", "mu": 0.0, "sigma": 2.0},
                                    "unit": "1", "reference": "weakly informative"},
            "intercept_LFP-prism": {"prior": {"dist": "normal", "mu": 0.0, "sigma": 2.0},
                                    "unit": "1", "reference": "weakly informative"},
            "soc_slope": {"prior": {"dist": "normal", "mu": 0.0, "sigma": 5.0}, "unit": "1",
                          "reference": "logit change per unit SOC"},
            "sigma_cell": {"prior": {"dist": "lognormal", "mu": -1.0, "sigma": 0.5}, "unit": "1",
                           "reference": "cell-to-cell spread"},
            "stiffness": {"prior": {"dist": "uniform", "low": 1e6, "high": 4e6},
                          "unit": "N/m^1.5", "reference": "Hertz contact, fixture"},
        },
        "scenarios": [{"name": f"{f}@{int(s * 100)}", "cell_family": f, "soc": s,
                       "severity": "nail"} for f in FAMILIES for s in SOCS],
        "report": {"limitations": ["Fixture data: synthetic tests drawn from a known truth."]},
        "export": {"exposure": {"fleet_size": 2_000_000, "abuse_events_per_cell_year": 1e-4,
                                "cost_per_event_by_severity": {"runaway": 250_000.0},
                                "currency": "EUR", "n_monte_carlo": 40_000,
                                "scenario_weights": {f"{f}@{int(s * 100)}": 0.125
                                                     for f in FAMILIES for s in SOCS}}},
    }


def _truth_tests(rng: np.random.Generator) -> xr.Dataset:
    n = 24
    fam = rng.integers(0, 2, n)
    soc = rng.choice(SOCS, n)
    eta = rng.normal(0, 0.6, n)
    logit = np.array([-0.5, -2.5])[fam] + 4.0 * (soc - 0.5) + eta
    tr = rng.random(n) < 1 / (1 + np.exp(-logit))
    force = 2.2e6 * DISP[None, :] ** 1.5 + rng.normal(0, 8.0, (n, DISP.size))
    ds = xr.Dataset(
        {"cell_family": ("test", np.array(FAMILIES)[fam]),
         "soc": ("test", soc, {"units": "1", "long_name": "state of charge"}),
         "capacity_nominal": ("test", np.full(n, 4.8 * 3600), {"units": "A s",
                                                                "long_name": "nominal capacity"}),
         "hazard_level": ("test", np.where(tr, 5.0, 2.0), {"units": "1",
                                                           "long_name": "EUCAR hazard level"}),
         "force_indenter": (("test", "displacement"), force,
                            {"units": "N", "long_name": "indenter force"})},
        coords={"test": [f"T{i:03d}" for i in range(n)],
                "displacement": ("displacement", DISP, {"units": "m",
                                                        "long_name": "indenter displacement"})})
    return ds


def _fit(real: xr.Dataset):
    import jax
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS, Predictive

    fam = np.array([FAMILIES.index(f) for f in real["cell_family"].values])
    soc = real["soc"].values
    tr = (real["hazard_level"].values >= 5).astype(float)
    force = real["force_indenter"].values

    def model(fam, soc, tr=None, force=None):
        a = numpyro.sample("intercept", dist.Normal(0, 2).expand([2]))
        b = numpyro.sample("soc_slope", dist.Normal(0, 5))
        s = numpyro.sample("sigma_cell", dist.LogNormal(-1.0, 0.5))
        k = numpyro.sample("stiffness", dist.Uniform(1e6, 4e6))
        noise = numpyro.sample("sigma_force", dist.HalfNormal(20.0))
        z = numpyro.sample("z", dist.Normal(0, 1).expand([fam.size]))
        numpyro.sample("thermal_runaway", dist.Bernoulli(logits=a[fam] + b * (soc - 0.5) + s * z),
                       obs=tr)
        with numpyro.plate("test", fam.size, dim=-2), numpyro.plate("grid", DISP.size, dim=-1):
            numpyro.sample("force_indenter", dist.Normal(k * DISP ** 1.5, noise), obs=force)

    mcmc = MCMC(NUTS(model), num_warmup=200, num_samples=200, num_chains=2,
                chain_method="sequential", progress_bar=False)
    mcmc.run(jax.random.PRNGKey(SEED), fam, soc, tr, force)
    samples = mcmc.get_samples(group_by_chain=True)
    flat = mcmc.get_samples()
    pp = Predictive(model, flat, return_sites=["thermal_runaway", "force_indenter"])(
        jax.random.PRNGKey(SEED + 1), fam, soc)
    extra = mcmc.get_extra_fields(group_by_chain=True)
    return samples, pp, extra, tr, force


def _posterior_tree(samples, pp, extra, tr, force, real) -> xr.DataTree:
    import arviz as az

    post = {f"intercept_{f}": np.asarray(samples["intercept"])[..., i]
            for i, f in enumerate(FAMILIES)}
    post.update({k: np.asarray(samples[k]) for k in ("soc_slope", "sigma_cell", "stiffness",
                                                      "sigma_force")})
    shape = post["soc_slope"].shape
    ppd = {"thermal_runaway": np.asarray(pp["thermal_runaway"]).reshape(*shape, -1),
           "force_indenter": np.asarray(pp["force_indenter"]).reshape(*shape, *force.shape)}
    dt = az.from_dict(
        {"posterior": post, "posterior_predictive": ppd,
         "observed_data": {"thermal_runaway": tr, "force_indenter": force},
         "sample_stats": {"diverging": np.asarray(extra["diverging"])}},
        dims={"thermal_runaway": ["test"], "force_indenter": ["test", "displacement"]},
        coords={"test": real["test"].values, "displacement": DISP})
    dt["posterior"]["stiffness"].attrs.update(units="N/m^1.5", long_name="contact stiffness")
    dt["posterior"]["sigma_force"].attrs.update(units="N", long_name="force noise")
    for g in ("posterior_predictive", "observed_data"):
        dt[g]["force_indenter"].attrs.update(units="N", long_name="indenter force")
        dt[g]["thermal_runaway"].attrs.update(units="1", long_name="thermal runaway (0/1)")
        dt[g]["displacement"].attrs.update(units="m", long_name="indenter displacement")
    return dt


def _cell_moments(a, b, s, soc):
    """E_cell and Var_cell of P(TR) over the cell effect (Gauss-Hermite), per posterior draw."""
    logit = a[:, None] + b[:, None] * (soc - 0.5) + s[:, None] * GH_Z[None, :]
    p = 1 / (1 + np.exp(-logit))
    mean = p @ GH_W
    return mean, (p ** 2) @ GH_W - mean ** 2


def _predictions(dt: xr.DataTree, study: dict, provenance: dict) -> xr.Dataset:
    post = dt["posterior"].to_dataset()
    b = post["soc_slope"].values.ravel()
    s = post["sigma_cell"].values.ravel()
    draws, ale, epi = [], [], []
    for sc in study["scenarios"]:
        a = post[f"intercept_{sc['cell_family']}"].values.ravel()
        m, v = _cell_moments(a, b, s, sc["soc"])
        draws.append(m)
        ale.append(v.mean())
        epi.append(m.var())
    draws = np.array(draws)
    u1 = {"units": "1"}
    ds = xr.Dataset(
        {"p_tr_mean": ("scenario", draws.mean(1), {**u1, "long_name": "P(TR) posterior mean"}),
         "p_tr_q05": ("scenario", np.quantile(draws, 0.05, 1), u1),
         "p_tr_q50": ("scenario", np.quantile(draws, 0.5, 1), u1),
         "p_tr_q95": ("scenario", np.quantile(draws, 0.95, 1), u1),
         "p_tr_var_aleatory": ("scenario", np.array(ale), u1),
         "p_tr_var_epistemic": ("scenario", np.array(epi), u1),
         "p_tr_draws": (("scenario", "draw"), draws, {**u1, "long_name": "P(TR) per draw"})},
        coords={"scenario": [sc["name"] for sc in study["scenarios"]],
                "cell_family": ("scenario", [sc["cell_family"] for sc in study["scenarios"]]),
                "soc": ("scenario", [sc["soc"] for sc in study["scenarios"]],
                        {"units": "1", "long_name": "state of charge"}),
                "severity": ("scenario", [sc["severity"] for sc in study["scenarios"]])},
        attrs={"provenance": json.dumps(provenance), "study_hash": provenance["study_hash"]})
    return ds


def _sensitivity(dt: xr.DataTree) -> xr.Dataset:
    from SALib.analyze import sobol
    from SALib.sample import sobol as sobol_sample

    post = dt["posterior"].to_dataset()
    names = ["intercept_NMC-21700", "soc_slope", "sigma_cell"]
    bounds = [list(np.quantile(post[n].values, [0.05, 0.95])) for n in names]
    problem = {"num_vars": 3, "names": names, "bounds": bounds}
    x = sobol_sample.sample(problem, 256, seed=SEED)
    y = np.array([_cell_moments(np.array([r[0]]), np.array([r[1]]), np.array([r[2]]), 0.75)[0][0]
                  for r in x])
    res = sobol.analyze(problem, y, seed=SEED)
    u1 = {"units": "1"}
    return xr.Dataset({"S1": ("parameter", res["S1"], {**u1, "long_name": "first-order S1"}),
                       "S1_conf": ("parameter", res["S1_conf"], u1),
                       "ST": ("parameter", res["ST"], {**u1, "long_name": "total-order ST"}),
                       "ST_conf": ("parameter", res["ST_conf"], u1)},
                      coords={"parameter": names})


def _diagnostics(dt: xr.DataTree) -> dict:
    import arviz as az

    summ = az.summary(dt, group="posterior", kind="diagnostics")
    div = int(dt["sample_stats"]["diverging"].values.sum())
    rhat, ess_b, ess_t = (float(summ["r_hat"].max()), float(summ["ess_bulk"].min()),
                          float(summ["ess_tail"].min()))
    msgs = []
    if rhat > 1.05:
        msgs.append(f"r_hat max {rhat:.3f} > 1.05")
    if div:
        msgs.append(f"{div} divergent transitions")
    return {"ok": not msgs, "rhat_max": rhat, "ess_bulk_min": ess_b, "ess_tail_min": ess_t,
            "divergences": div, "bfmi_min": None, "messages": msgs}


def _crossval(dt: xr.DataTree, tr: np.ndarray) -> dict:
    p = dt["posterior_predictive"]["thermal_runaway"].values.reshape(-1, tr.size).mean(0)
    p = np.clip(p, 1e-6, 1 - 1e-6)
    base = np.full_like(p, np.clip(tr.mean(), 1e-6, 1 - 1e-6))

    def scores(q):
        return {"log_loss": float(-np.mean(tr * np.log(q) + (1 - tr) * np.log(1 - q))),
                "brier": float(np.mean((q - tr) ** 2)),
                "reliability": [{"p_mean": float(q.mean()), "freq": float(tr.mean()), "n": int(tr.size)}]}
    return {"leave_family_out": {"physics": scores(p), "metadata": scores(base), "family_frequency": scores(base),
                                 "n_tests": int(tr.size), "n_folds": 2, "fold_diagnostics": {}}, "quick": False}


def _ensemble(path: Path, rng: np.random.Generator) -> None:
    n = 12
    theta = np.column_stack([rng.uniform(1e6, 4e6, n), rng.uniform(-2, 2, n)])
    force = theta[:, :1] * DISP[None, :] ** 1.5
    ds = xr.Dataset({"theta": (("sample", "parameter"), theta),
                     "force_indenter": (("sample", "displacement"), force,
                                        {"units": "N", "long_name": "indenter force"}),
                     "wall_time": ("sample", rng.uniform(0.1, 0.3, n), {"units": "s"})},
                    coords={"sample": np.arange(n), "parameter": ["stiffness", "intercept"],
                            "displacement": DISP},
                    attrs={"parameter_units": json.dumps({"stiffness": "N/m^1.5",
                                                          "intercept": "1"}),
                           "simulator": "force_power_law"})
    ds.to_zarr(path, mode="w", consolidated=False)


def _mesh_convergence() -> dict:
    """Trapezoid-rule integral of sin on [0, π] on refined grids (exact 2): observed order."""
    levels = []
    for n in (8, 16, 32, 64):
        x = np.linspace(0, np.pi, n + 1)
        levels.append({"n_cells": n, "h": float(np.pi / n),
                       "value": float(np.trapezoid(np.sin(x), x))})
    err = [abs(lv["value"] - 2.0) for lv in levels]
    order = float(np.log2(err[-2] / err[-1]))
    return {"observable": "heat_released_total", "unit": "J", "levels": levels,
            "observed_order": order, "ok": order > 1.8}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_run(run: Path) -> tuple[Path, dict]:
    """Write every artefact of a small genuine run into ``run``; return (run, study)."""
    study = make_study()
    rng = np.random.default_rng(SEED)
    run.mkdir(parents=True, exist_ok=True)
    (run / "study.yaml").write_text(yaml.safe_dump(study, sort_keys=False))
    real = _truth_tests(rng)
    xr.DataTree.from_dict({"/indentation": real}).to_netcdf(run / "real.nc")
    _ensemble(run / "ensemble.zarr", rng)
    (run / "failures.jsonl").write_text(json.dumps(
        {"sample": 12, "theta": {"stiffness": 3.9e6}, "condition": {}, "error":
         "ConvergenceError: SNES diverged (reason -3)", "traceback": "", "wall_time": 1.2,
         "time": "2026-11-22T03:00:00Z"}) + "\n")
    samples, pp, extra, tr, force = _fit(real)
    dt = _posterior_tree(samples, pp, extra, tr, force, real)
    dt.to_netcdf(run / "posterior.nc")
    study_hash = hashlib.sha256((run / "study.yaml").read_bytes()).hexdigest()
    versions = {p: metadata.version(p) for p in ("numpy", "xarray", "arviz", "numpyro")}
    provenance = {"study_hash": study_hash, "git_revision": "0" * 40, "versions": versions,
                  "data_hashes": {"real.nc": _sha256(run / "real.nc")},
                  "seeds": {"study": SEED, "mcmc": SEED}}
    (run / "provenance.json").write_text(json.dumps(provenance, indent=1))
    (run / "stages.json").write_text(json.dumps({
        "ingest": {"input_hash": _sha256(run / "real.nc"), "finished": "2026-11-22T03:01:00Z"},
        "calibrate": {"input_hash": _sha256(run / "posterior.nc"),
                      "finished": "2026-11-22T03:02:00Z"}}))
    (run / "diagnostics.json").write_text(json.dumps(_diagnostics(dt)))
    _predictions(dt, study, provenance).to_netcdf(run / "predictions.nc")
    _sensitivity(dt).to_netcdf(run / "sensitivity.nc")
    (run / "crossval.json").write_text(json.dumps(_crossval(dt, tr)))
    (run / "mesh_convergence.json").write_text(json.dumps(_mesh_convergence()))
    with xr.open_dataset(run / "predictions.nc") as pred:
        d = pred["p_tr_draws"].values[0]
        (run / "rare_events.json").write_text(json.dumps({
            pred["scenario"].values[0]: {"estimator": "posterior mean over draws",
                                         "p_tr": float(d.mean()),
                                         "std_error": float(d.std() / np.sqrt(d.size))}}))
    return run, study


@pytest.fixture(scope="session")
def genuine_run(tmp_path_factory) -> tuple[Path, dict]:
    """A complete run directory (built once per session; copy it before modifying)."""
    return build_run(tmp_path_factory.mktemp("runs") / "tiny-nail")


@pytest.fixture
def run_copy(genuine_run, tmp_path) -> tuple[Path, dict]:
    """A private copy of the genuine run that a test may modify."""
    src, study = genuine_run
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    for p in ("report.html", "report.pdf", "exports"):
        target = dst / p
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
    return dst, study
