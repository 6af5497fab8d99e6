"""Many NUTS fits of one model that differ only in which tests they see, compiled once (cross-validation folds).

A model built with per-test likelihood weights (``test_weight``, a ``pm.Data`` vector over tests:
`risk.bayes.model.build_hierarchical_model` with ``weighted=True``) has one log density for every subset of
its tests: weight 1 keeps a test's likelihood terms, 0 drops them. `WeightedFits` compiles, once, with the
weights as an argument of every JAX program:

- mean-field ADVI (NumPyro SVI, ``AutoNormal``, Adam; `risk.bayes.sampling.advi_fit` on a fixed graph): each
  fit's chains start from its draws and warm-up starts from its variances (`risk.bayes.sampling.advi_inverse_mass`);
- NumPyro's NUTS through its functional kernels (``numpyro.infer.hmc.hmc``: dual-averaging step size and
  diagonal mass adaptation, as ``numpyro.infer.NUTS``), chains pmapped over CPU devices (vmapped with one);
- the map from unconstrained draws to the model's variables and deterministics (PyMC's JAX graph).

``pm.sample`` rebuilds and recompiles each of these per fit: on a leave-family-out fold of the default study
about 55 of the ≈ 83 s a fold took alone (PyMC's start-up, two ADVI compilations, NumPyro's warm-up and sampling
programs). Here a worker pays them once and each further fold only its iterations.

A weight-0 test's latents, and those of a family none of whose tests is seen, follow their prior: the posterior of
everything else is the posterior given the seen tests alone (the unseen latents integrate out). `WeightedFits.fit`
drops them from the returned tree (``keep``), so prediction treats such a family as new, exactly as for a model
built on the seen tests.
"""
from __future__ import annotations

import json
import time

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import xarray as xr

from risk.bayes.diagnostics import Diagnostics, Thresholds, summarize

WEIGHT = "test_weight"


class WeightedFits:
    """Compile-once ADVI + NUTS of a weighted PyMC ``model`` (see module doc).

    Parameters
    ----------
    model : PyMC model with a ``test_weight`` ``pm.Data`` vector ``(n_tests,)``.
    draws, tune, chains : kept and warm-up iterations per chain, number of chains (≥ 4).
    target_accept : NUTS dual-averaging target.
    advi_steps, learning_rate : the ADVI fit that starts each NUTS run.
    """

    def __init__(self, model: pm.Model, *, draws: int, tune: int, chains: int = 4, target_accept: float = 0.9,
                 advi_steps: int = 5000, learning_rate: float = 0.01):
        if chains < 4:
            raise ValueError(f"need at least 4 chains for R-hat, got {chains}")
        if WEIGHT not in model.named_vars:
            raise ValueError(f"the model has no {WEIGHT!r} data vector (build it with weighted=True)")
        self.model, self.draws, self.tune, self.chains = model, int(draws), int(tune), int(chains)
        self.target_accept, self.advi_steps, self.learning_rate = float(target_accept), int(advi_steps), learning_rate
        self.n_tests = int(model[WEIGHT].get_value().shape[0])
        self._compiled = None
        self._last_draws: list[np.ndarray] | None = None

    # ------------------------------------------------------------------------------------------ compile
    def _compile(self):
        import jax
        import numpyro
        import numpyro.distributions as dist
        from numpyro.infer import SVI, Trace_ELBO
        from numpyro.infer.autoguide import AutoNormal
        from numpyro.infer.hmc import hmc
        from numpyro.infer.initialization import init_to_value
        from pymc.sampling.jax import get_jaxified_graph
        from pytensor.graph.replace import clone_replace

        model = self.model
        values = model.value_vars
        start = model.initial_point(random_seed=0)
        names = [v.name for v in values]
        shapes = [np.shape(start[n]) for n in names]
        w_in = pt.vector("weight_in", dtype=model[WEIGHT].type.dtype)
        with pytensor.config.change_flags(blas__ldflags=""):
            logp_graph = clone_replace([model.logp()], replace={model[WEIGHT]: w_in})
            logp_fn = get_jaxified_graph(inputs=[*values, w_in], outputs=logp_graph)
            outputs = [v for v in model.unobserved_value_vars if not v.name.endswith("__")]
            # the weights too: which family locations are centred depends on the families a fit sees
            post_fn = get_jaxified_graph(inputs=[*values, w_in],
                                         outputs=clone_replace(outputs, replace={model[WEIGHT]: w_in}))

        logp = jax.jit(lambda xs, w: logp_fn(*xs, w)[0])

        def density(w):
            xs = [numpyro.sample(n, dist.ImproperUniform(dist.constraints.real, (), s)) for n, s in zip(names, shapes)]
            numpyro.factor("logp", logp(xs, w))

        guide = AutoNormal(density, init_loc_fn=init_to_value(values={k: np.asarray(v) for k, v in start.items()}),
                           init_scale=0.1)
        svi = SVI(density, guide, numpyro.optim.Adam(self.learning_rate), Trace_ELBO())
        steps = self.advi_steps

        def scan(update):
            return jax.jit(lambda state, w: jax.lax.scan(lambda s, _: (update(s, w)[0], None), state, None,
                                                         length=steps)[0])

        plain, stable = scan(svi.update), scan(svi.stable_update)

        def advi_steps(state, w):  # plain Adam steps; skipping non-finite ones only if they poisoned the fit
            out = plain(state, w)   # (as `risk.bayes.sampling.advi_fit`)
            if all(np.isfinite(np.asarray(v)).all() for v in svi.get_params(out).values()):
                return out
            return stable(state, w)

        init_kernel, sample_kernel = hmc(potential_fn_gen=lambda w: (lambda z: -logp(z, w)), algo="NUTS")
        tune, total, target = self.tune, self.tune + self.draws, self.target_accept

        def chain(key, z0, inverse_mass, w):
            state = init_kernel(z0, tune, inverse_mass_matrix=inverse_mass, target_accept_prob=target,
                                model_args=(w,), rng_key=key)

            def step(s, _):
                s = sample_kernel(s, model_args=(w,))
                return s, (s.z, s.diverging, s.num_steps, s.energy, s.accept_prob, s.adapt_state.step_size,
                           s.potential_energy)

            return jax.lax.scan(step, state, None, length=total)[1]

        # chains in parallel threads when JAX shows a CPU device per chain (`risk.HOST_DEVICES`), else vectorised
        parallel = jax.local_device_count() >= self.chains
        nuts = (jax.pmap(chain, in_axes=(0, 0, 0, None)) if parallel else
                jax.jit(jax.vmap(chain, in_axes=(0, 0, 0, None))))
        self.chain_method = "parallel" if parallel else "vectorized"
        post = jax.jit(jax.vmap(lambda xs, w: post_fn(*xs, w), in_axes=(0, None)))
        self._compiled = (names, shapes, outputs, svi, advi_steps, nuts, post)

    # ---------------------------------------------------------------------------------------------- fit
    def fit(self, weight: np.ndarray, *, seed: int, keep: dict[str, np.ndarray] | None = None,
            attrs: dict | None = None, var_names: list[str] | str = "free",
            thresholds: Thresholds = Thresholds(), resume: bool = False) -> tuple[xr.DataTree, Diagnostics]:
        """One fit with per-test ``weight`` ``(n_tests,)`` (0/1: which tests the fit sees).

        ``resume``: start from the last fit's final draws (one per chain) with the variances of its pooled draws as
        the inverse mass matrix, instead of ADVI — a second warm-up for chains that mixed slowly. Mean-field ADVI's
        variances are those of a ridge's narrow cross-section, so a short warm-up that starts from them can leave
        the chains drifting along it (measured on a leave-family-out fold of the default study: R-hat 1.40 at 300
        + 300 draws from ADVI; the pooled draws' variances give the ridge's length at once).

        ``keep`` maps a dimension (e.g. ``"test"``, ``"family"``) to a bool mask of its entries to keep in the
        returned tree (drop the latents the fit's tests do not inform). ``var_names``: the variables diagnosed
        (``"free"``: the model's free variables). Returns ``(tree, diagnostics)``; the tree has ``posterior`` and
        ``sample_stats`` (``diverging``, ``tree_depth``, ``n_steps``, ``energy``, ``acceptance_rate``,
        ``step_size``, ``lp``) and attrs ``seed``, ``sampler``, ``wall_time_s`` plus ``attrs``.
        """
        import jax
        import jax.numpy as jnp

        weight = np.asarray(weight, float)
        if weight.shape != (self.n_tests,):
            raise ValueError(f"weight has shape {weight.shape}, expected ({self.n_tests},)")
        if resume and self._last_draws is None:
            raise ValueError("resume=True needs an earlier fit to resume from")
        t0 = time.perf_counter()
        if self._compiled is None:
            self._compile()
        names, shapes, outputs, svi, advi_steps, nuts, post = self._compiled
        w = jnp.asarray(weight)
        C = self.chains
        if resume:
            last = self._last_draws
            z0 = [jnp.asarray(v[:, -1]) for v in last]
            variance = np.concatenate([v.reshape(-1, *v.shape[2:]).var(0).ravel() for v in last])
            inverse_mass = jnp.asarray(np.tile(np.maximum(variance, 1e-8), (C, 1)))
        else:
            state = advi_steps(svi.init(jax.random.PRNGKey(seed), w), w)
            params = svi.get_params(state)
            loc = [np.asarray(params[f"{n}_auto_loc"], float) for n in names]
            scale = [np.asarray(params[f"{n}_auto_scale"], float) for n in names]
            rng = np.random.default_rng(seed)
            z0 = [jnp.asarray(m + s * rng.standard_normal((C, *m.shape))) for m, s in zip(loc, scale)]
            inverse_mass = jnp.asarray(np.tile(np.concatenate([s.ravel() ** 2 for s in scale]), (C, 1)))
        keys = jax.random.split(jax.random.PRNGKey(seed + 1), C)
        z, diverging, n_steps, energy, accept, step_size, potential = nuts(keys, z0, inverse_mass, w)
        t = self.tune
        z = [np.asarray(v)[:, t:] for v in z]
        self._last_draws = z  # (chain, draw, ...) per value variable, unconstrained: what `resume` starts from
        D = self.draws
        flat = post([jnp.asarray(v.reshape(C * D, *v.shape[2:])) for v in z], w)
        tree = self._tree([np.asarray(a).reshape(C, D, *np.shape(a)[1:]) for a in flat], outputs, keep)
        n_steps = np.asarray(n_steps)[:, t:]
        stats = {"diverging": np.asarray(diverging)[:, t:], "n_steps": n_steps,
                 "tree_depth": (np.log2(np.maximum(n_steps, 1)).astype(int) + 1), "energy": np.asarray(energy)[:, t:],
                 "acceptance_rate": np.asarray(accept)[:, t:], "step_size": np.asarray(step_size)[:, t:],
                 "lp": -np.asarray(potential)[:, t:]}
        tree["sample_stats"] = xr.Dataset({k: (("chain", "draw"), v) for k, v in stats.items()},
                                          coords={"chain": np.arange(C), "draw": np.arange(D)})
        free = [rv.name for rv in self.model.free_RVs] if var_names == "free" else list(var_names)
        diag = summarize(tree, [v for v in free if v in tree["posterior"].data_vars], thresholds)
        tree.attrs.update(seed=int(seed), sampler="numpyro NUTS (weighted, compiled once)", chain_method=self.chain_method,
                          wall_time_s=float(time.perf_counter() - t0),
                          provenance=json.dumps({"pymc": pm.__version__, "advi_steps": self.advi_steps}),
                          **(attrs or {}))
        return tree, diag

    def _tree(self, arrays: list[np.ndarray], outputs, keep: dict[str, np.ndarray] | None) -> xr.DataTree:
        """The ``posterior`` group from ``(chain, draw, ...)`` arrays of ``outputs``, with PyMC's dims and coords."""
        from pymc.backends.arviz import coords_and_dims_for_inferencedata

        coords, dims = coords_and_dims_for_inferencedata(self.model)
        C, D = arrays[0].shape[:2]
        data = {}
        for var, a in zip(outputs, arrays):
            d = list(dims.get(var.name, [])) or [f"{var.name}_dim_{i}" for i in range(a.ndim - 2)]
            data[var.name] = (("chain", "draw", *d), a)
        used = {d for _, (dd, _) in data.items() for d in dd}
        ds = xr.Dataset(data, coords={"chain": np.arange(C), "draw": np.arange(D),
                                      **{k: np.asarray(v) for k, v in coords.items() if k in used}})
        for dim, mask in (keep or {}).items():
            if dim in ds.dims:
                ds = ds.isel({dim: np.flatnonzero(np.asarray(mask, bool))})
        return xr.DataTree.from_dict({"posterior": ds})
