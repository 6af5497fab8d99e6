"""Hierarchical PyMC models: plain functions of data that return a `pymc.Model`.

Three builders share one structure (family → cell → test):

`build_hierarchical_model`
    The physics-informed model. Per cell family ``f`` a population distribution of the physical
    parameters in the decoder's unconstrained, z-scored space ``u`` (location ``mu_family``,
    cell-to-cell scales, optionally an LKJ correlation, non-centred); per test ``i`` its own cell
    ``u_i = mu_family[f_i] + L z_i``; the surrogate (frozen decoder) maps ``(u_i, c_i)`` to the
    normalised observables (mean, log scale) and to ``logit_runaway``. Likelihoods:

    - observables: ``y_ij ~ Normal(mean_ij, sqrt(exp(2 log_scale_ij) + δ_j²))`` only where observed
      (δ_j the model-discrepancy scale of observable j),
    - hazard level (indentation, 1–7): ``OrderedLogistic(η_i, cutpoints)`` with the latent severity
      ``η_i = logit_runaway_i = a + b · decoder_logit(u_i, c_i)`` (``a = link_shift``,
      ``b = link_scale``: the simulation-to-reality link of the runaway tendency) and the cutpoint between levels 5 and 6 pinned at 0, so that
      ``P(level ≥ 6) = sigmoid(logit_runaway)`` — the ordinal and the binary outcome agree,
    - runaway (bool) for tests without a level: ``Bernoulli(logit_p=logit_runaway)``.

`build_ordinal_model`
    The same latent-severity ordinal likelihood with a metadata regression in place of the decoder
    (family intercept and SOC slope, both partially pooled and predicted for unseen families from the
    log capacity). Fit directly on the real indentation summary table.

`build_heat_model`
    Calorimetry: log total heat per cell type × SOC × trigger (hierarchical over cell types, Student-t
    test-to-test noise) and bottom rupture (hierarchical logistic). Fit directly on the databank.

A *surrogate* is any callable ``surrogate(u, c) -> {"mean", "log_scale", "logit_runaway"}`` on
PyTensor tensors with shapes ``u (n_tests, n_param)``, ``c (n_tests, n_cond)`` → ``mean``,
``log_scale (n_tests, n_obs)``, ``logit_runaway (n_tests,)``; `FrozenDecoder.pytensor_apply` is one.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from simulators.priors import Prior

N_LEVELS = 7
TR_LEVEL = 6  # hazard level ≥ 6 counts as thermal runaway (rupture / fire)

Surrogate = Callable[[pt.TensorVariable, pt.TensorVariable], dict]


# ---------------------------------------------------------------------------------------------- priors
def prior_moments_u(priors: Sequence[Prior], to_unconstrained: Callable[[np.ndarray], np.ndarray] | None = None,
                    n: int = 8192, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Normal approximation of the study priors in the decoder's ``u`` space.

    Parameters
    ----------
    priors : one `Prior` per physical parameter (SI units), length ``n_param``.
    to_unconstrained : maps θ ``(n, n_param)`` [SI] to ``u`` ``(n, n_param)`` [1]
        (`FrozenDecoder.to_unconstrained`). ``None``: log for log-scale priors, identity otherwise,
        then z-scored over the prior draws (so the result is ≈ (0, 1)).
    n, seed : number of Monte-Carlo prior draws and their seed.

    Returns
    -------
    mean, sd : arrays ``(n_param,)`` in ``u`` units.
    """
    rng = np.random.default_rng(seed)
    theta = np.column_stack([p.sample(rng, n) for p in priors])
    if to_unconstrained is None:
        u = np.column_stack([np.log(theta[:, k]) if p.log_scale else theta[:, k] for k, p in enumerate(priors)])
        u = (u - u.mean(0)) / u.std(0)
    else:
        u = np.asarray(to_unconstrained(theta), dtype=float)
    return u.mean(0), u.std(0)


def _cutpoints(name: str = "cutpoints", batch: tuple[int, ...] = ()) -> pt.TensorVariable:
    """Ordered cutpoints c_1 < … < c_6 of a 7-level ordinal with c_5 ≡ 0 (see module doc).

    Gaps between neighbours are Gamma(2, 1) (mean 2 logit units), which keeps all levels reachable.
    ``batch`` prepends independent copies: shape ``batch + (6,)``.
    """
    gaps = pm.Gamma(f"{name}_gaps", alpha=2.0, beta=1.0, shape=(*batch, N_LEVELS - 2))
    lower = -pt.cumsum(gaps[..., :4], axis=-1)[..., ::-1]  # c_1..c_4 below 0
    upper = gaps[..., 4:5]  # c_6 above 0
    return pm.Deterministic(name, pt.concatenate([lower, pt.zeros_like(upper), upper], axis=-1))


def _outcome_likelihoods(eta: pt.TensorVariable, hazard_level: np.ndarray | None,
                         runaway: np.ndarray | None, train_mask: np.ndarray | None = None) -> None:
    """Ordinal hazard-level likelihood where a level is observed, Bernoulli runaway elsewhere.

    ``eta`` is ``(n_tests,)``, or ``(n_folds, n_tests)`` with ``train_mask`` ``(n_folds, n_tests)``
    saying which outcomes copy k sees (each copy has its own cutpoints).
    """
    if hazard_level is None and runaway is None:
        return
    n = np.asarray(hazard_level if hazard_level is not None else runaway).shape[-1]
    batch = () if train_mask is None else (train_mask.shape[0],)
    seen = np.ones((1, n), bool) if train_mask is None else np.asarray(train_mask, bool)
    flat_eta = pt.reshape(eta, (-1,))

    def tiled(values):
        return np.broadcast_to(np.asarray(values, dtype=float), seen.shape).ravel()

    has_level = np.zeros(seen.size, dtype=bool)
    if hazard_level is not None:
        level = tiled(hazard_level)
        has_level = np.isfinite(level)
        if (has_level & seen.ravel()).any():
            idx = np.flatnonzero(has_level & seen.ravel())
            cut = _cutpoints(batch=batch)
            pm.OrderedLogistic("hazard_level", eta=flat_eta[idx], cutpoints=cut[idx // n] if batch else cut,
                               observed=level[idx].astype(int) - 1)
    if runaway is not None:
        tr = tiled(runaway)
        use = np.isfinite(tr) & ~has_level & seen.ravel()
        if use.any():
            idx = np.flatnonzero(use)
            pm.Bernoulli("runaway", logit_p=flat_eta[idx], observed=tr[idx].astype(int))


# --------------------------------------------------------------------------------- hierarchical model
@dataclass(frozen=True)
class CalibrationData:
    """Real tests in the decoder's spaces (all arrays row-aligned on ``test``).

    Attributes
    ----------
    test : ``(n_tests,)`` test ids.
    family : ``(n_tests,)`` cell-family labels.
    conditions : ``(n_tests, n_cond)`` test conditions in the decoder's condition space.
    observables : ``(n_tests, n_obs)`` normalised observables, NaN where not observed.
    hazard_level : ``(n_tests,)`` observed hazard level 1–7 or NaN (optional).
    runaway : ``(n_tests,)`` 1/0 observed thermal runaway or NaN (optional).
    """

    test: np.ndarray
    family: np.ndarray
    conditions: np.ndarray
    observables: np.ndarray
    hazard_level: np.ndarray | None = None
    runaway: np.ndarray | None = None
    observable_names: tuple[str, ...] = ()
    condition_names: tuple[str, ...] = ()
    families: tuple[str, ...] = field(default=())

    def __post_init__(self):
        n = len(self.test)
        for name in ("family", "conditions", "observables"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"CalibrationData.{name} has {len(getattr(self, name))} rows, test has {n}")
        if not self.families:
            object.__setattr__(self, "families", tuple(sorted(set(map(str, self.family)))))

    @property
    def family_index(self) -> np.ndarray:
        lookup = {f: k for k, f in enumerate(self.families)}
        return np.array([lookup[str(f)] for f in self.family], dtype=int)


def build_hierarchical_model(data: CalibrationData, surrogate: Surrogate, *, parameter_names: Sequence[str],
                             prior_mean: np.ndarray, prior_sd: np.ndarray, family_scale: float = 0.5,
                             cell_scale: float = 0.3, discrepancy_scale: float = 0.2, lkj_eta: float = 2.0,
                             cell_correlation: bool = False, name: str = "") -> pm.Model:
    """Hierarchical calibration model with the frozen decoder as surrogate likelihood.

    Parameters
    ----------
    data : the real tests (see `CalibrationData`).
    surrogate : ``surrogate(u, c) -> dict(mean, log_scale, logit_runaway)`` on PyTensor tensors
        (e.g. `FrozenDecoder.pytensor_apply`).
    parameter_names : names of the ``n_param`` physical parameters (coords of ``parameter``).
    prior_mean, prior_sd : ``(n_param,)`` prior of the population location in ``u`` units
        (`prior_moments_u`).
    family_scale : HalfNormal scale of the between-family spread of locations [u].
    cell_scale : HalfNormal scale of the cell-to-cell standard deviations [u].
    discrepancy_scale : prior mean of the model-discrepancy sd per observable [normalised]
        (Gamma(4, 4/scale): 90 % between 0.34 and 1.9 × scale, never 0).
    lkj_eta : LKJ concentration of the cell-to-cell correlation.
    cell_correlation : True adds an LKJ correlation (``cell_cov``) to the cell-to-cell scales. False
        (default): independent scales ``cell_sd`` and ``cell_corr`` = identity. On the ORNL
        indentation tests (one observable + a hazard level per test) the 28 correlations are not
        identified; dropping them cut NUTS time 15 % and R-hat from 1.09 to 1.04 at 250 draws.
    name : PyMC model name (prefix ``name::``), to nest several independent copies in one model
        (used by simulation-based calibration).

    Returns
    -------
    pymc.Model with free variables ``mu_pop (parameter)``, ``tau_family (parameter)``,
    ``z_family (family, parameter)``, ``cell_sd (parameter)`` or ``cell_cov`` (LKJ Cholesky),
    ``z_test (test, parameter)``,
    ``discrepancy (observable)``, ``cutpoints_gaps``, ``link_shift``, ``link_scale`` (when outcomes are observed); deterministics ``mu_family``, ``u_test``,
    ``cell_chol (parameter, parameter_)``, ``cell_sd``, ``cell_corr``, ``logit_runaway (test)``.
    """
    fam = data.family_index
    n_param = len(parameter_names)
    obs = np.asarray(data.observables, dtype=float)
    rows, cols = np.nonzero(np.isfinite(obs))
    coords = {"parameter": list(parameter_names), "parameter_": list(parameter_names),
              "family": list(data.families), "test": [str(t) for t in data.test],
              "observable": list(data.observable_names) or [f"obs_{j}" for j in range(obs.shape[1])],
              "observed_entry": np.arange(rows.size)}
    with pm.Model(coords=coords, name=name) as model:
        # a constant (static shape) rather than pm.Data: surrogates may broadcast over conditions
        c = pt.as_tensor_variable(np.asarray(data.conditions, dtype=float))
        mu_pop = pm.Normal("mu_pop", mu=np.asarray(prior_mean), sigma=np.asarray(prior_sd), dims="parameter")
        tau = pm.HalfNormal("tau_family", sigma=family_scale, dims="parameter")
        z_f = pm.Normal("z_family", 0.0, 1.0, dims=("family", "parameter"))
        mu_family = pm.Deterministic("mu_family", mu_pop + tau * z_f, dims=("family", "parameter"))
        if cell_correlation:
            chol, corr, sd = pm.LKJCholeskyCov("cell_cov", n=n_param, eta=lkj_eta,
                                               sd_dist=pm.HalfNormal.dist(cell_scale, shape=n_param),
                                               compute_corr=True)
            pm.Deterministic("cell_sd", sd, dims="parameter")
        else:
            sd = pm.HalfNormal("cell_sd", cell_scale, dims="parameter")
            chol, corr = pt.diag(sd), pt.eye(n_param)
        pm.Deterministic("cell_chol", chol, dims=("parameter", "parameter_"))
        pm.Deterministic("cell_corr", corr, dims=("parameter", "parameter_"))
        z_t = pm.Normal("z_test", 0.0, 1.0, dims=("test", "parameter"))
        u = pm.Deterministic("u_test", mu_family[fam] + z_t @ chol.T, dims=("test", "parameter"))
        out = surrogate(u, c)
        # simulation-to-reality link of the runaway tendency: the decoder ranks cells by their physics,
        # the real outcomes set the scale (centred on identity; a decoder trained on a few hundred
        # simulations is often under-confident, which no location in u can undo)
        # (only where real outcomes can inform it; otherwise the identity)
        logit = out["logit_runaway"]
        if any(x is not None and np.isfinite(np.asarray(x, dtype=float)).any()
               for x in (data.hazard_level, data.runaway)):
            logit = pm.Normal("link_shift", 0.0, 1.5) + pm.LogNormal("link_scale", 0.0, 0.75) * logit
        logit = pm.Deterministic("logit_runaway", logit, dims="test")
        if rows.size:
            # zero-avoiding Gamma(4, 4/scale) (mean = scale): with one latent cell per test the fit can
            # match every observation exactly, and a discrepancy free to reach 0 turns that into a
            # funnel (NUTS step sizes ~1e-2, depth-10 trees); a floor of real model/measurement error
            # is also the honest prior (Kennedy & O'Hagan 2001; Brynjarsdóttir & O'Hagan 2014)
            delta = pm.Gamma("discrepancy", alpha=4.0, beta=4.0 / discrepancy_scale, dims="observable")
            flat = rows * obs.shape[1] + cols  # flat indices: avoids a PyTensor rewrite bug with 2-D fancy indexing
            log_scale = pt.reshape(out["log_scale"], (-1,))[flat]
            sd_obs = pt.sqrt(pt.exp(2.0 * log_scale) + delta[cols] ** 2)
            pm.Normal("observables", mu=pt.reshape(out["mean"], (-1,))[flat], sigma=sd_obs, observed=obs[rows, cols],
                      dims="observed_entry")
        _outcome_likelihoods(logit, data.hazard_level, data.runaway)
    model.observed_index = (rows, cols)  # for mapping observed entries back to (test, observable)
    return model


# ------------------------------------------------------------------------------------ ordinal model
def build_ordinal_model(family_index: np.ndarray, n_families: int, soc: np.ndarray, log_capacity_family: np.ndarray,
                        hazard_level: np.ndarray | None = None, runaway: np.ndarray | None = None,
                        train_mask: np.ndarray | None = None) -> pm.Model:
    """Latent-severity ordinal model of hazard levels from test metadata (no decoder needed).

    ``η_i = a_f + b_f (soc_i − 0.5) + σ_cell ε_i`` with ``a_f ~ N(α0 + α1 log C_f, τ_a)``,
    ``b_f ~ N(β0, τ_b)`` (non-centred), ``ε_i ~ N(0, 1)`` the cell-to-cell (aleatory) variation;
    ``level_i ~ OrderedLogistic(η_i, c)`` with ``c_5 ≡ 0`` so ``P(TR) = P(level ≥ 6) = E sigmoid(η)``.

    Parameters
    ----------
    family_index : ``(n_tests,)`` int family of each test.
    n_families : number of families (rows of ``log_capacity_family``).
    soc : ``(n_tests,)`` state of charge [1], 0–1.
    log_capacity_family : ``(n_families,)`` log of nominal capacity in A h, centred by the caller.
    hazard_level : ``(n_tests,)`` observed level 1–7 (NaN where unknown).
    runaway : ``(n_tests,)`` 1/0 (used where no level).
    train_mask : ``(n_folds, n_tests)`` bool: fit ``n_folds`` independent copies at once, copy k seeing
        only the outcomes where ``train_mask[k]`` (cross-validation: one JAX compilation for all
        folds). Every variable then has a leading ``fold`` dim.
    """
    batch = () if train_mask is None else (np.shape(train_mask)[0],)
    coords = {"family": np.arange(n_families), "test": np.arange(len(soc))} | ({"fold": np.arange(batch[0])}
                                                                              if batch else {})

    def dims(*d: str) -> tuple[str, ...]:
        return ("fold", *d) if batch else d

    def col(x):  # (…,) → (…, 1): per-copy scalars against per-family / per-test vectors
        return x[..., None]

    with pm.Model(coords=coords) as model:
        alpha = pm.Normal("alpha", 0.0, 2.0, shape=(*batch, 2))
        beta0 = pm.Normal("beta0", 0.0, 5.0, shape=batch)
        tau_a = pm.HalfNormal("tau_a", 2.0, shape=batch)
        tau_b = pm.HalfNormal("tau_b", 2.0, shape=batch)
        z_a = pm.Normal("z_a", 0.0, 1.0, dims=dims("family"))
        z_b = pm.Normal("z_b", 0.0, 1.0, dims=dims("family"))
        a = pm.Deterministic("a_family", alpha[..., 0:1] + alpha[..., 1:2] * log_capacity_family + col(tau_a) * z_a,
                             dims=dims("family"))
        b = pm.Deterministic("b_family", col(beta0) + col(tau_b) * z_b, dims=dims("family"))
        sigma_cell = pm.HalfNormal("sigma_cell", 1.0, shape=batch)
        eps = pm.Normal("eps_test", 0.0, 1.0, dims=dims("test"))
        eta = a[..., family_index] + b[..., family_index] * (np.asarray(soc) - 0.5) + col(sigma_cell) * eps
        pm.Deterministic("eta", eta, dims=dims("test"))
        _outcome_likelihoods(eta, hazard_level, runaway, train_mask)
    return model


# --------------------------------------------------------------------------------------- heat model
def build_heat_model(type_index: np.ndarray, n_types: int, soc: np.ndarray, trigger_index: np.ndarray,
                     n_triggers: int, log_energy_type: np.ndarray, heat_kj: np.ndarray | None,
                     bottom_rupture: np.ndarray | None) -> pm.Model:
    """Hierarchical model of calorimetry outcomes per cell type × SOC × trigger.

    ``log Q_i ~ StudentT(ν, m_t + s_t (soc_i − 1) + γ_trig, σ_t)`` with
    ``m_t ~ N(μ0 + μ1 log E_t, τ_m)``, ``s_t ~ N(s0, τ_s)``, ``log σ_t ~ N(λ, τ_σ)`` (all non-centred);
    ``bottom_rupture_i ~ Bernoulli(logit⁻¹(r_t + ρ_trig))``, ``r_t ~ N(r0, τ_r)``.

    Parameters
    ----------
    type_index : ``(n_tests,)`` int cell type; ``n_types`` their number.
    soc : ``(n_tests,)`` [1].
    trigger_index : ``(n_tests,)`` int trigger mechanism; ``n_triggers`` their number.
    log_energy_type : ``(n_types,)`` log nominal energy [log Wh], centred by the caller (NaN → 0).
    heat_kj : ``(n_tests,)`` total heat [kJ] (NaN = missing), or None.
    bottom_rupture : ``(n_tests,)`` 1/0/NaN, or None.
    """
    log_e = np.nan_to_num(np.asarray(log_energy_type, dtype=float))
    coords = {"cell_type": np.arange(n_types), "trigger": np.arange(n_triggers)}
    with pm.Model(coords=coords) as model:
        mu = pm.Normal("mu", [4.0, 1.0], [1.5, 1.0], shape=2)
        tau_m = pm.HalfNormal("tau_m", 0.5)
        m = pm.Deterministic("m_type", mu[0] + mu[1] * log_e + tau_m * pm.Normal("z_m", 0, 1, dims="cell_type"),
                             dims="cell_type")
        s0 = pm.Normal("s0", 1.0, 1.0)
        tau_s = pm.HalfNormal("tau_s", 0.5)
        s = pm.Deterministic("s_type", s0 + tau_s * pm.Normal("z_s", 0, 1, dims="cell_type"), dims="cell_type")
        g_raw = pm.Normal("gamma_raw", 0.0, 0.3, dims="trigger")
        gamma = pm.Deterministic("gamma_trigger", g_raw - g_raw.mean(), dims="trigger")
        lam = pm.Normal("lambda", -1.5, 1.0)
        tau_sig = pm.HalfNormal("tau_sigma", 0.5)
        sig = pm.Deterministic("sigma_type", pt.exp(lam + tau_sig * pm.Normal("z_sigma", 0, 1, dims="cell_type")),
                               dims="cell_type")
        nu = pm.Gamma("nu", alpha=2.0, beta=0.1)
        r0 = pm.Normal("r0", -2.0, 2.0)
        tau_r = pm.HalfNormal("tau_r", 1.5)
        r = pm.Deterministic("r_type", r0 + tau_r * pm.Normal("z_r", 0, 1, dims="cell_type"), dims="cell_type")
        rho_raw = pm.Normal("rho_raw", 0.0, 1.0, dims="trigger")
        rho = pm.Deterministic("rho_trigger", rho_raw - rho_raw.mean(), dims="trigger")
        if heat_kj is not None:
            q = np.asarray(heat_kj, dtype=float)
            ok = np.flatnonzero(np.isfinite(q) & (q > 0))
            loc = m[type_index[ok]] + s[type_index[ok]] * (np.asarray(soc)[ok] - 1.0) + gamma[trigger_index[ok]]
            pm.StudentT("log_heat", nu=nu, mu=loc, sigma=sig[type_index[ok]], observed=np.log(q[ok]))
        if bottom_rupture is not None:
            br = np.asarray(bottom_rupture, dtype=float)
            ok = np.flatnonzero(np.isfinite(br))
            pm.Bernoulli("bottom_rupture", logit_p=r[type_index[ok]] + rho[trigger_index[ok]],
                         observed=br[ok].astype(int))
    return model
