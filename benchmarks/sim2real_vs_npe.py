"""Frozen-decoder cVAE vs sbi's NPE and NLE + MCMC on the coupled indentation chain, at two simulation budgets.

Task: ``indentation_lumped`` (abuse_fe.coupled: punch → separator strain → internal short → ring thermal model
→ runaway), its 8 parameters over their priors, SOC and nominal capacity over the default study's ranges
(`ensembles.INDENTATION`), observed as that study observes a real test: force at short onset, voltage drop,
log temperature-rise rate and the runaway flag. Measurement noise (σ = 5 % of the force, 20 mV, 0.1 in the
log rate; `NOISE`) is added to every simulation, training and test alike, so the posterior is proper; runs
without a short (no onset force) are left out for every method. Training simulations are the first
``budget`` samples of one Sobol design (seed 1), the test cases the first 100 of another (seed 2); both from the
project's ensemble runner, cached (benchmarks/ensembles.py).

Every method gets the same simulations and the same inputs (3 observables, the runaway flag, 2 conditions);
there are no curve observables, so no embedding net:

- cVAE: `sim2real.FrozenDecoderCVAE` decoder on the budget, its encoder fitted by the ELBO on the test
  cases (θ unknown to it), posterior importance-corrected;
- NPE (sbi ``NPE``, default MAF) of logit q, q = prior CDF(θ) ∈ [0, 1]⁸ (a standard-logistic prior: the
  uniform prior of q on an unbounded support, so no posterior mass leaks out of it), given the observables
  and the flag (z-scored on the budget) and the conditions (scaled to [0, 1]);
- NLE (sbi ``MNLE``: a flow for the observables, a Bernoulli net for the flag) of the observations given
  (q, conditions) on [0, 1]¹⁰; posterior of q at each test case's known conditions by vectorised slice
  sampling (``MCMCPosterior.sample_batched``, ``slice_np_vectorized``, settings `MCMC` and `SLICE_WIDTH`;
  10 chains per case, all cases at once).

Metrics in u, the project's prior-unconstrained z-scored coordinates (`sim2real.ThetaTransform`): expected
coverage of central 50 % / 90 % intervals pooled over parameters and test cases, RMSE of posterior means in
prior-sd units (averaged over the parameters; a prior-mean guess scores ≈ 1), wall time of training +
inference on one thread. Budgets 1e3 and 1e4: the simulations run batched (`Simulator.run_batch`, 128 per task on
2 workers, ~0.05–0.1 s per run amortised, against 0.7 s one by one).

C2ST (`sbi.utils.metrics.c2st`, random forest, 5 folds) between the methods' posteriors at the largest budget on
the first `C2ST_CASES` test cases: 0.5 = indistinguishable. It compares the estimators with each other, not with
the true posterior: a reference posterior needs the true simulator inside SMC-ABC or MCMC over 8 parameters at the
case's conditions, ~1e5 runs per case (~1.5 h per case even batched), which this benchmark does not afford.

Prints a table and writes benchmarks/results/sim2real_vs_npe.json (``--quick``: 256 simulations, 24 cases,
short training; a development check, not recorded).

Run: ``nice -n 19 .venv/bin/python benchmarks/sim2real_vs_npe.py [--quick]``
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import xarray as xr  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ensembles import INDENTATION, cached_ensemble  # noqa: E402
from record import write_result  # noqa: E402

from simulators.registry import load  # noqa: E402
from sim2real import DecoderConfig, EncoderConfig, FrozenDecoderCVAE, ThetaTransform  # noqa: E402
from sim2real.validation import recovery_rmse, sample_coverage  # noqa: E402

OBSERVABLES = ("force_short_onset_log", "voltage_drop", "temperature_rise_rate_log")
NOISE = {"force_short_onset_log": 0.05, "voltage_drop": 0.02, "temperature_rise_rate_log": 0.1}  # ln N, V, 1
MCMC = {"method": "slice_np_vectorized", "num_chains": 10, "warmup_steps": 50, "thin": 1,
        "init_strategy": "proposal"}
SLICE_WIDTH = 0.5  # initial slice-bracket width in logit q (the prior's sd there is 1.8)
C2ST_CASES = 10
RUN = {"workers": 2, "batch_size": 128}  # how the ensembles run (not part of their cache key: same results)
FULL = {"budgets": (1000, 10000), "n_design": 10000, "n_test": 128, "cases": 100, "draws": 500, "epochs": 400,
        "encoder": EncoderConfig(restarts=2, steps=400)}
QUICK = {"budgets": (256,), "n_design": 256, "n_test": 24, "cases": 24, "draws": 200, "epochs": 100,
         "encoder": EncoderConfig(restarts=1, pretrain_steps=300, steps=100)}


def observe(ens: xr.Dataset, seed: int) -> xr.Dataset:
    """Noisy observations of the runs that had a short, in the ensemble-store layout."""
    ens = ens[["theta", "condition", "force_short_onset", "voltage_drop", "temperature_rise_rate_log",
               "thermal_runaway"]].load()
    ens = ens.isel(sample=np.flatnonzero(np.isfinite(ens["force_short_onset"].values)))
    rng = np.random.default_rng(seed)
    exact = {"force_short_onset_log": np.log(ens["force_short_onset"].values),
             "voltage_drop": ens["voltage_drop"].values,
             "temperature_rise_rate_log": ens["temperature_rise_rate_log"].values}
    obs = {k: ("sample", v + NOISE[k] * rng.standard_normal(v.shape)) for k, v in exact.items()}
    return xr.Dataset({"theta": ens["theta"], "condition": ens["condition"], **obs,
                       "thermal_runaway": ens["thermal_runaway"]})


def as_tests(obs: xr.Dataset) -> xr.Dataset:
    """Observations as real tests (docs/contracts.md "Real data"): dim ``test``, conditions as variables."""
    real = xr.Dataset({k: ("test", obs[k].values) for k in OBSERVABLES})
    real["thermal_runaway"] = ("test", obs["thermal_runaway"].values.astype(float))
    for j, c in enumerate(map(str, obs["condition_name"].values)):
        real[c] = ("test", obs["condition"].values[:, j])
    return real.assign_coords(test=[f"T{i:03d}" for i in range(obs.sizes["sample"])])


class Inputs:
    """The shared inputs of NPE and NLE: q = prior CDF(θ), conditions scaled to [0, 1], observables z-scored
    on the training budget, the runaway flag."""

    def __init__(self, sim, train: xr.Dataset):
        self.priors = [p.prior for p in sim.parameters]
        lo_hi = np.array([INDENTATION["conditions"][str(c)] for c in train["condition_name"].values])
        self.c_lo, self.c_span = lo_hi[:, 0], lo_hi[:, 1] - lo_hi[:, 0]
        X = self.raw_x(train)
        self.x_loc, self.x_scale = X.mean(0), X.std(0)

    @staticmethod
    def raw_x(obs: xr.Dataset) -> np.ndarray:
        return np.column_stack([obs[k].values for k in OBSERVABLES])

    def q(self, obs: xr.Dataset) -> np.ndarray:
        th = obs["theta"].values
        return np.column_stack([p.frozen.cdf(th[:, i]) for i, p in enumerate(self.priors)])

    def theta(self, q: np.ndarray) -> np.ndarray:
        q = np.clip(q, 1e-9, 1 - 1e-9)
        return np.stack([p.ppf(q[..., i]) for i, p in enumerate(self.priors)], -1)

    def c01(self, obs: xr.Dataset) -> np.ndarray:
        return (obs["condition"].values - self.c_lo) / self.c_span

    def x(self, obs: xr.Dataset) -> np.ndarray:
        """Z-scored observables then the flag (last: MNLE's discrete column)."""
        return np.column_stack([(self.raw_x(obs) - self.x_loc) / self.x_scale, obs["thermal_runaway"].values])


def f32(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float32))


def run_cvae(sim, train, test, cfg) -> np.ndarray:
    """Posterior draws of θ (test, draw, parameter) from the frozen-decoder cVAE."""
    dec = FrozenDecoderCVAE(sim, observables=OBSERVABLES, config=DecoderConfig(epochs=cfg["epochs"])) \
        .append_simulations(train).train(generator=torch.Generator().manual_seed(0))
    fit = dec.fit_encoder(as_tests(test), cfg["encoder"], generator=torch.Generator().manual_seed(0))
    return fit.posterior(cfg["draws"], torch.Generator().manual_seed(1), importance=True)["theta"].values


def run_npe(inp: Inputs, train, test, cfg) -> np.ndarray:
    from torch.distributions import Independent, SigmoidTransform, TransformedDistribution, Uniform
    from sbi.inference import NPE

    n_par = train.sizes["parameter"]
    # logit q ~ standard logistic: the BoxUniform prior on q without a bounded support for the flow to leak out of
    prior = Independent(TransformedDistribution(Uniform(torch.zeros(n_par), torch.ones(n_par)),
                                                [SigmoidTransform().inv]), 1)
    torch.manual_seed(0)  # sbi draws initialisation and validation split from torch's global RNG
    npe = NPE(prior=prior, show_progress_bars=False)
    xs = lambda o: f32(np.column_stack([inp.x(o), inp.c01(o)]))  # noqa: E731
    npe.append_simulations(torch.logit(f32(inp.q(train)).clamp(1e-6, 1 - 1e-6)), xs(train)) \
        .train(max_num_epochs=cfg["epochs"])
    post = npe.build_posterior()
    xt = xs(test)
    z = np.stack([post.sample((cfg["draws"],), x=xt[i], show_progress_bars=False).numpy() for i in range(len(xt))])
    return inp.theta(1 / (1 + np.exp(-z)))


def run_nle(inp: Inputs, train, test, cfg) -> np.ndarray:
    from sbi.inference import MCMCPosterior, MNLE, likelihood_estimator_based_potential
    from sbi.inference.potentials.base_potential import BasePotential
    from sbi.utils import BoxUniform, mcmc_transform

    class AtConditions(BasePotential):
        """log p(x | q, c) + log p(q, c) at known conditions c, carried as the last columns of x: sbi's
        batched slice sampler then runs every test case's chains at once (x repeated per chain)."""

        def __init__(self, inner, prior_q, n_cond):
            self.inner, self.n_cond = inner, n_cond
            super().__init__(prior_q)

        def set_x(self, x_o, x_is_iid=True):
            super().set_x(x_o, x_is_iid)
            if x_o is not None:
                self.inner.set_x(self.x_o[:, :-self.n_cond], x_is_iid=x_is_iid)

        def __call__(self, theta, track_gradients=True):
            return self.inner(torch.cat([theta, self.x_o[:, -self.n_cond:]], 1), track_gradients)

    class WideSlice(MCMCPosterior):
        """Slice brackets start `SLICE_WIDTH` wide: sbi's 0.01 (not a constructor argument) steps out
        linearly, hundreds of likelihood calls per coordinate before the widths adapt."""

        def _slice_np_mcmc(self, *args, **kwargs):
            return super()._slice_np_mcmc(*args, **kwargs, init_width=SLICE_WIDTH)

    n_par, n_cond = train.sizes["parameter"], train.sizes["condition_name"]
    prior = BoxUniform(torch.zeros(n_par + n_cond), torch.ones(n_par + n_cond))
    torch.manual_seed(0)
    nle = MNLE(prior=prior, show_progress_bars=False)
    est = nle.append_simulations(f32(np.column_stack([inp.q(train), inp.c01(train)])), f32(inp.x(train))) \
        .train(max_num_epochs=cfg["epochs"])
    potential, _ = likelihood_estimator_based_potential(est, prior, None)
    prior_q = BoxUniform(torch.zeros(n_par), torch.ones(n_par))
    mcmc = WideSlice(AtConditions(potential, prior_q, n_cond), prior_q, mcmc_transform(prior_q), **MCMC)
    xc = f32(np.column_stack([inp.x(test), inp.c01(test)]))
    q = mcmc.sample_batched((cfg["draws"],), x=xc, show_progress_bars=False).numpy()  # (draw, test, parameter)
    return inp.theta(q.transpose(1, 0, 2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small budget and few test cases (not recorded)")
    cfg = QUICK if ap.parse_args().quick else FULL
    torch.set_num_threads(1)
    sim = load(INDENTATION["simulator"])()
    transform = ThetaTransform.from_priors(sim.parameter_names, [p.prior for p in sim.parameters])
    t0 = time.perf_counter()
    design = cached_ensemble(**INDENTATION, n=cfg["n_design"], seed=1, **RUN)
    test = observe(cached_ensemble(**INDENTATION, n=cfg["n_test"], seed=2, **RUN), seed=12) \
        .isel(sample=slice(0, cfg["cases"]))
    print(f"ensembles ready in {time.perf_counter() - t0:.0f} s; simulator "
          f"{float(design['wall_time'].mean()):.2f} s per run (mean)", flush=True)
    u_true = transform.to_unconstrained(test["theta"].values)
    methods = {"frozen-decoder cVAE (ELBO + IS)": lambda tr, inp: run_cvae(sim, tr, test, cfg),
               "sbi NPE": lambda tr, inp: run_npe(inp, tr, test, cfg),
               "sbi NLE (MNLE) + slice MCMC": lambda tr, inp: run_nle(inp, tr, test, cfg)}
    rows, draws = [], {}
    c2st = []
    for budget in cfg["budgets"]:
        train = observe(design.isel(sample=slice(0, budget)), seed=11)
        inp = Inputs(sim, train)
        for name, method in methods.items():
            t1 = time.perf_counter()
            u = transform.to_unconstrained(method(train, inp))
            wall = time.perf_counter() - t1
            draws[budget, name] = u
            cov, rmse = sample_coverage(u_true, u), recovery_rmse(u_true, u.mean(1))
            rows.append({"budget": budget, "used": train.sizes["sample"], "method": name,
                         "coverage_50": float(cov[0.5].mean()), "coverage_90": float(cov[0.9].mean()),
                         "rmse_u": float(rmse.mean()),
                         "rmse_u_per_parameter": dict(zip(sim.parameter_names, rmse.tolist())),
                         "wall_s": round(wall, 1)})
            print(f"  {budget} {name}: {wall:.0f} s", flush=True)
        if budget == max(cfg["budgets"]):
            c2st = pairwise_c2st({name: draws[budget, name] for name in methods}, min(C2ST_CASES, len(u_true)))
        if cfg is FULL:  # recorded after each budget: a budget that finished is never lost
            out = write_result("sim2real_vs_npe", {
                "simulator": INDENTATION, "observables": list(OBSERVABLES), "noise": NOISE,
                "test_cases": test.sizes["sample"], "draws": cfg["draws"], "mcmc": MCMC, "ensemble_run": RUN,
                "simulator_s_per_run": float(design["wall_time"].mean()),
                "simulator_s_per_run_note": "amortised over batches of 128 (Simulator.run_batch), 2 workers",
                "c2st": c2st, "c2st_cases": C2ST_CASES,
                "c2st_note": "between the methods' posteriors at the largest budget (0.5: indistinguishable); not "
                             "against the true posterior, which needs ~1e5 true-simulator runs per case",
                "rows": rows})
    print(f"\nindentation_lumped; {test.sizes['sample']} simulated test cases; u = prior-unconstrained")
    print(f"{'budget':>6} {'used':>5}  {'method':<30}{'cov50':>7}{'cov90':>7}{'RMSE_u':>8}{'wall s':>8}")
    for r in rows:
        print(f"{r['budget']:>6} {r['used']:>5}  {r['method']:<30}{r['coverage_50']:>7.2f}{r['coverage_90']:>7.2f}"
              f"{r['rmse_u']:>8.3f}{r['wall_s']:>8.0f}")
    print(f"\nC2ST at budget {max(cfg['budgets'])} (first {min(C2ST_CASES, len(u_true))} cases; 0.5 = same posterior)")
    for c in c2st:
        print(f"  {c['a']} vs {c['b']}: median {c['median']:.3f} (range {c['min']:.3f}-{c['max']:.3f})")
    if cfg is FULL:
        print(f"wrote {out}")


def pairwise_c2st(draws: dict[str, np.ndarray], cases: int) -> list[dict]:
    """C2ST accuracy (sbi, random forest, 5 folds) between every pair of methods' posterior draws in u, per test
    case (the first ``cases``): median, min and max over the cases."""
    from itertools import combinations

    from sbi.utils.metrics import c2st

    out = []
    for a, b in combinations(draws, 2):
        acc = [float(c2st(f32(draws[a][i]), f32(draws[b][i]), seed=i)) for i in range(cases)]
        out.append({"a": a, "b": b, "median": float(np.median(acc)), "min": min(acc), "max": max(acc),
                    "per_case": acc})
    return out

if __name__ == "__main__":
    main()
