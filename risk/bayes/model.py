"""The physics-informed hierarchical PyMC model (family → cell → test), a plain function of data.

`build_hierarchical_model`
    The physics-informed model. The physical parameters live in the decoder's unconstrained, z-scored
    space ``u``; the real tests inform only a few directions of it (`risk.bayes.subspace`: the
    expected Fisher information of the decoder), so family locations and cell-to-cell variation are
    calibrated in that span, ``u = anchor + W a``, and the other directions stay at the prior mean.
    Per cell family ``f`` a population distribution of ``a`` (location ``a_pop``, scales
    ``tau_family``; a family location centred where its tests pin it, non-centred elsewhere); per test ``i``
    its own cell ``a_i = a_f + cell_sd ⊙ z_i``; the
    surrogate (frozen decoder) maps ``(u_i, c_i)`` to the normalised observables (mean, log scale)
    and to the runaway logit. Likelihoods:

    - observables: ``y_ij ~ Normal(mean_ij, sqrt(exp(2 log_scale_ij) + δ_j²))`` where observed,
      ``P(Y_ij > y_ij)`` where the value is a lower bound (censored: saturated thermocouples),
    - hazard level (indentation, 1–7): ``OrderedLogistic(η_i, cutpoints)`` with the latent severity
      ``η_i = logit_runaway_i = s · decoder_logit(u_i, c_i)`` (``s = link_scale``, the
      simulation-to-reality scale of the runaway tendency) and the cutpoint between levels 5 and 6
      pinned at 0, so that ``P(level ≥ 6) = sigmoid(logit_runaway)`` — the ordinal and the binary
      outcome agree,
    - runaway (bool) for tests without a level: ``Bernoulli(logit_p=logit_runaway)``.

The metadata baselines (ordinal regression, calorimetry heat model) live in `risk.bayes.baselines`.

A *surrogate* is any callable ``surrogate(u, c) -> {"mean", "log_scale", "logit_runaway"}`` on
PyTensor tensors with shapes ``u (n_tests, n_param)``, ``c (n_tests, n_cond)`` → ``mean``,
``log_scale (n_tests, n_obs)``, ``logit_runaway (n_tests,)``; `FrozenDecoder.pytensor_apply` is one.
"""
from __future__ import annotations

import inspect

from collections.abc import Callable, Mapping, Sequence
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


def censor_sign(censored: np.ndarray | None, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Censoring as int8 signs: +1 the value is a lower bound (``P(Y > y)``: a saturated thermocouple, bool True),
    -1 an upper bound (``P(Y < y)``: no casing breach, a margin below 0), 0 exact. ``None`` → zeros of ``shape``."""
    if censored is None:
        return np.zeros(shape, np.int8)
    c = np.asarray(censored)
    return c.astype(np.int8) if c.dtype == bool else np.sign(c).astype(np.int8)


def _normal_logsf(z):
    """log P(Z > z) of a standard normal, finite with finite gradients for every z.

    ``pm.logccdf(pm.Normal)`` switches between two erfc branches; under JAX the branch not taken still
    enters the gradient, and ``log1p(-erfc(z/√2)/2)`` is −inf once z < −5.9, so a censored value far
    below its prediction (P ≈ 1, no information) made the whole gradient NaN. Here each branch sees its
    argument clipped to its own range; beyond z = 20 the asymptotic series (Abramowitz & Stegun 7.1.23,
    relative error < 1e-7 there) replaces erfc, which underflows at z ≈ 38.
    """
    # clipped by switch (min/max/clip split the gradient in half at a tie)
    lo, hi = pt.switch(z < 0.0, z, 0.0), pt.switch(z < 20.0, 20.0, z)
    mid = pt.switch(z < 0.0, 0.0, pt.switch(z < 20.0, z, 20.0))
    below = pt.log1p(-0.5 * pt.erfc(-lo / np.sqrt(2.0)))
    middle = pt.log(0.5 * pt.erfc(mid / np.sqrt(2.0)))
    tail = -0.5 * hi**2 - pt.log(hi) - 0.5 * np.log(2.0 * np.pi) + pt.log1p(-1.0 / hi**2 + 3.0 / hi**4)
    return pt.switch(z < 0.0, below, pt.switch(z < 20.0, middle, tail))


def _ordered_logistic_logp(value, eta, cut):
    """log P(level index = value) of an ordered logistic, stable for any |η| (PyMC's OrderedLogistic
    takes differences of sigmoids, which round to 0 — a −inf log likelihood — once |η − c| > 37).

    ``value`` ``(m,)`` in 0..6, ``eta`` ``(m,)``, ``cut`` ``(m, 6)`` increasing. With ``a = c_value − η``
    (upper) and ``b = c_{value−1} − η`` (lower): ``σ(a) − σ(b) = e^b expm1(a − b) / ((1 + e^a)(1 + e^b))``.
    """
    m = pt.arange(value.shape[0])
    pad = pt.concatenate([pt.zeros((cut.shape[0], 1)), cut, pt.zeros((cut.shape[0], 1))], axis=1)
    a = pad[m, value + 1] - eta  # upper cutpoint (unused for the top level)
    b = pad[m, value] - eta  # lower cutpoint (unused for the bottom level)
    softplus = pt.softplus
    middle = b + pt.log(pt.expm1(pt.maximum(a - b, 1e-12))) - softplus(a) - softplus(b)
    return pt.switch(pt.eq(value, 0), -softplus(-a), pt.switch(pt.eq(value, N_LEVELS - 1), -softplus(b), middle))


def _ordered_logistic_random(eta, cut, rng=None, size=None):
    """Draws of the level index (0..6) for posterior/prior predictive checks."""
    eta, cut = np.asarray(eta, float), np.asarray(cut, float)
    size = eta.shape if size is None else size
    latent = eta + rng.logistic(size=size)
    return (latent[..., None] > cut).sum(axis=-1).astype("int64")


def _outcome_likelihoods(eta: pt.TensorVariable, hazard_level: np.ndarray | None,
                         runaway: np.ndarray | None, train_mask: np.ndarray | None = None,
                         weight: pt.TensorVariable | None = None) -> None:
    """Ordinal hazard-level likelihood where a level is observed, Bernoulli runaway elsewhere.

    ``eta`` is ``(n_tests,)``, or ``(n_folds, n_tests)`` with ``train_mask`` ``(n_folds, n_tests)``
    saying which outcomes copy k sees (each copy has its own cutpoints). ``weight`` ``(n_tests,)`` (a
    ``pm.Data``, not with ``train_mask``): each test's log likelihood enters times its weight, as potentials
    named like the observed variables (`risk.bayes.weighted`).
    """
    if hazard_level is None and runaway is None:
        return
    n = np.asarray(hazard_level if hazard_level is not None else runaway).shape[-1]
    batch = () if train_mask is None else (train_mask.shape[0],)
    seen = np.ones((1, n), bool) if train_mask is None else np.asarray(train_mask, bool)
    flat_eta = eta.flatten()

    def tiled(values):
        return np.broadcast_to(np.asarray(values, dtype=float), seen.shape).ravel()

    has_level = np.zeros(seen.size, dtype=bool)
    if hazard_level is not None:
        level = tiled(hazard_level)
        has_level = np.isfinite(level)
        if (has_level & seen.ravel()).any():
            idx = np.flatnonzero(has_level & seen.ravel())
            cut = _cutpoints(batch=batch)
            cut_i = cut[idx // n] if batch else pt.broadcast_to(cut, (idx.size, N_LEVELS - 1))
            value = level[idx].astype("int64") - 1
            if weight is None:
                pm.CustomDist("hazard_level", flat_eta[idx], cut_i, logp=_ordered_logistic_logp,
                              random=_ordered_logistic_random, signature="(),(c)->()", observed=value, dtype="int64")
            else:
                pm.Potential("hazard_level", (weight[idx] * _ordered_logistic_logp(
                    pt.as_tensor_variable(value), flat_eta[idx], cut_i)).sum())
    if runaway is not None:
        tr = tiled(runaway)
        use = np.isfinite(tr) & ~has_level & seen.ravel()
        if use.any():
            idx = np.flatnonzero(use)
            if weight is None:
                pm.Bernoulli("runaway", logit_p=flat_eta[idx], observed=tr[idx].astype(int))
            else:
                pm.Potential("runaway", (weight[idx] * pm.logp(pm.Bernoulli.dist(logit_p=flat_eta[idx]),
                                                              tr[idx].astype("int64"))).sum())


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
    censored : ``(n_tests, n_obs)`` int8 or bool, the value is a bound (optional; `censor_sign`: +1 / True a
        lower bound, -1 an upper bound, 0 / False exact).
    notes : data-quality notes (censoring, exclusions and their reasons).
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
    censored: np.ndarray | None = None
    notes: tuple[str, ...] = ()

    def __post_init__(self):
        n = len(self.test)
        for name in ("family", "conditions", "observables"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"CalibrationData.{name} has {len(getattr(self, name))} rows, test has {n}")
        if not self.families:
            object.__setattr__(self, "families", tuple(sorted(set(map(str, self.family)))))

    def subset(self, rows: np.ndarray) -> "CalibrationData":
        """The tests at ``rows`` (families with no test left drop out of ``families``)."""
        rows = np.asarray(rows, dtype=int)

        def take(x):
            return None if x is None else np.asarray(x)[rows]

        return CalibrationData(test=take(self.test), family=take(self.family), conditions=take(self.conditions),
                               observables=take(self.observables), hazard_level=take(self.hazard_level),
                               runaway=take(self.runaway), observable_names=self.observable_names,
                               condition_names=self.condition_names, censored=take(self.censored), notes=self.notes)

    @property
    def family_index(self) -> np.ndarray:
        lookup = {f: k for k, f in enumerate(self.families)}
        return np.array([lookup[str(f)] for f in self.family], dtype=int)


#: default prior mean [u: prior sd] of the between-family spread ``tau_family``, Gamma(2, 2/scale) (`build_hierarchical_model`;
#: a study sets its own, ``inference.family_scale``). 0.5 suits families of one cell format that the data barely
#: separate (the databank's 18650 types); families of several chemistries and formats spread further
FAMILY_SCALE = 0.5
#: prior mean of the model-discrepancy sd per observable [normalised units] (`build_hierarchical_model`)
DISCREPANCY_SCALE = 0.2
#: width [u] of the soft wall at the edge of the decoder's design region (`design_penalty`): 0.5 prior sd
#: beyond the edge costs ½ nat per test and parameter, 1.5 costs 4.5. A steeper 0.25 wall gave NUTS
#: divergences on the calorimetry study (2–3 per 4000 draws, none without a wall or with 0.5; measured)
DESIGN_WALL = 0.5
#: prior sd [normalised units: the ensemble's sd of the observable] of the simulator's bias shared by all cell
#: designs, ``family_discrepancy_mean`` (`build_hierarchical_model`): a constant-mean discrepancy (Kennedy &
#: O'Hagan, JRSS B 63 (2001) 425, §4.3) of up to ~2 ensemble sd, weakly informative
FAMILY_BIAS_SD = 1.0
#: Normal(0, ·) prior sd [logit] of the runaway logit's family-discrepancy mean and capacity slope: the weakly
#: informative scale of logistic-regression coefficients (Gelman, Jakulin, Pittau & Su, Ann. Appl. Stat. 2 (2008) 1360)
FAMILY_LOGIT_MEAN_SD = 2.5
#: degrees of freedom of the Student-t family deviates of the runaway logit (heavy-tailed random effects: Pinheiro,
#: Liu & Wu, J. Comput. Graph. Stat. 10 (2001) 249; ν = 3 as for the half-t scales, Gelman 2006)
FAMILY_LOGIT_NU = 3.0
#: the design region is the prior's central 1 − 2 · DESIGN_TAIL of each parameter (`design_region_u`)
DESIGN_TAIL = 0.005


#: the state of charge [1] at which a family's runaway logit is referenced when its sim-to-real scale is per family
#: (``family_link_scale``): the middle of the tested range, where the large cells switch to runaway
SOC_REF = 0.5


def reference_conditions(conditions: np.ndarray, condition_names: Sequence[str]) -> np.ndarray:
    """``(..., n_cond)`` copy of ``conditions`` with the ``soc`` column at `SOC_REF` (unchanged without one)."""
    out = np.array(conditions, dtype=float, copy=True)
    if "soc" in condition_names:
        out[..., list(condition_names).index("soc")] = SOC_REF
    return out


def centring_mask(centred: Sequence[float] | Mapping[str, Sequence[float]] | None, families: Sequence[str],
                  k: int) -> np.ndarray:
    """``(n_families, k)`` float in [0, 1]: how far `build_hierarchical_model` centres each family location (0
    non-centred, 1 centred, between: partially centred). ``centred``: None (none), ``(k,)`` (per direction, every
    family alike) or ``{family: (k,)}`` (per family and direction, `risk.bayes.physics.centred_families`; a family
    it does not name is non-centred); booleans read as 0 / 1."""
    F = len(families)
    if centred is None:
        return np.zeros((F, k))
    if isinstance(centred, Mapping):
        rows = [np.asarray(centred.get(str(f), np.zeros(k)), float) for f in families]
        for f, r in zip(families, rows):
            if r.shape != (k,):
                raise ValueError(f"centred_families of family {str(f)!r} has shape {r.shape}, expected ({k},)")
        cf = np.array(rows, float).reshape(F, k)
    else:
        cf = np.asarray(centred, float)
        if cf.shape != (k,):
            raise ValueError(f"centred_families has shape {cf.shape}, expected ({k},)")
        cf = np.broadcast_to(cf, (F, k)).copy()
    if not np.all((cf >= 0) & (cf <= 1)):
        raise ValueError(f"centred_families must lie in [0, 1], got {cf.min():g} ... {cf.max():g}")
    return cf


def design_region_u(priors: Sequence[Prior], to_unconstrained: Callable[[np.ndarray], np.ndarray],
                    n: int = 8192, seed: int = 0, tail: float = DESIGN_TAIL) -> tuple[np.ndarray, np.ndarray]:
    """Per parameter, the ``tail`` and ``1 − tail`` quantiles of ``u`` under the study priors: ``(lower, upper)``,
    each ``(n_param,)`` [u]. The ensemble is drawn from these priors, so the decoder has seen simulations across
    this box and ~``tail`` of them beyond each face (about one of the default study's 192)."""
    rng = np.random.default_rng(seed)
    theta = np.column_stack([p.sample(rng, n) for p in priors])
    u = np.asarray(to_unconstrained(theta), dtype=float)
    return np.quantile(u, tail, axis=0), np.quantile(u, 1.0 - tail, axis=0)


def design_penalty(u, bounds: tuple[np.ndarray, np.ndarray], wall: float = DESIGN_WALL, xp=np):
    """Log penalty ``−½ Σ_p (excess_p / wall)²`` of ``u`` ``(..., n_param)`` beyond ``bounds`` → ``(...)``;
    0 inside. ``xp``: ``numpy`` or ``pytensor.tensor``."""
    lo, hi = (np.asarray(b, dtype=float) for b in bounds)
    excess = xp.maximum(u - hi, 0.0) + xp.maximum(lo - u, 0.0)
    return -0.5 * ((excess / wall) ** 2).sum(axis=-1)

def _emulator_marginal(mean, scale, delta, y: np.ndarray, exact: np.ndarray, entries: tuple[np.ndarray, ...],
                       groups: np.ndarray, n_obs: int, batch: tuple[int, ...], rho, weight, dims):
    """Mean and sd of every observed entry with the shared emulator error ``√ρ s e_g`` integrated out.

    ``mean``, ``scale`` (the decoder's ``exp(log_scale)``), ``delta`` are ``(m,)`` tensors over the observed entries
    ``entries = (fold, test, observable)`` (each ``(m,)``), ``y (m,)`` their values, ``exact (m,)`` bool; ``groups
    (n_tests,)`` int; ``rho`` the share, a scalar or ``(m,)``; ``weight (m,)`` or None.

    Within a group and observable the exact values are jointly normal with covariance ``D + a aᵀ``, ``a = √ρ s``,
    ``D = diag((1 − ρ) s² + δ²)``. That density is written as the chain of its one-dimensional conditionals in entry
    order: entry k given the group's earlier entries ``i < k`` is ``Normal(mean_k + a_k m_k, sqrt(D_k + a_k²/P_k))``
    with ``P_k = 1 + Σ a_i²/D_i`` and ``P_k m_k = Σ a_i r_i/D_i`` (``r = y − mean``), the posterior of ``e`` from
    them (Bishop, *PRML*, 2006, §2.3.3). Their product is the exact joint density, without ``e`` as a free
    variable: the free ``e`` per group sat on a ridge with the family offsets and needed target_accept 0.99 and
    ~270 leapfrog steps per draw on the databank. Weights enter each sum and each term (0/1 weights: the joint
    density of the weight-1 entries). A bound (censored entry) is conditioned on all the group's exact values.
    Also records ``emulator_error_mean`` and ``emulator_error_sd (emulator_group, observable)``: ``e_g``'s posterior
    given the other variables (the Rao–Blackwellised draw of `risk.bayes.physics._emulator_errors`).
    """
    ent_f, ent_t, ent_j = entries
    n_grp = int(groups.max()) + 1
    emulated = np.zeros(n_obs, bool)
    emulated[ent_j[exact]] = True  # observables with an exact value somewhere carry the shared error
    em = emulated[ent_j]
    key = (ent_f * n_grp + groups[ent_t]) * n_obs + ent_j  # (fold, group, observable) of each entry
    informs = exact & em
    same = (key[:, None] == key[None, :]) & informs[None, :] & em[:, None]
    earlier = np.arange(key.size)[None, :] < np.arange(key.size)[:, None]
    cond = (same & np.where(exact[:, None], earlier, True)).astype(float)  # (m, m): entries each one is conditioned on
    shared = rho * em
    a = pt.sqrt(rho) * scale * em  # not sqrt(shared): its gradient at 0 is NaN
    dvar = (1.0 - shared) * scale ** 2 + delta ** 2
    w = 1.0 if weight is None else weight
    v_prec, v_mean = w * a ** 2 / dvar, w * a * (y - mean) / dvar
    prec = 1.0 + pt.dot(cond, v_prec)
    mean = mean + a * pt.dot(cond, v_mean) / prec
    sd = pt.sqrt(dvar + a ** 2 / prec)
    n_key = (batch[0] if batch else 1) * n_grp * n_obs
    member = np.zeros((n_key, key.size))
    member[key[informs], np.flatnonzero(informs)] = 1.0
    shape = (*batch, n_grp, n_obs)
    g_prec = pt.reshape(1.0 + pt.dot(member, v_prec), shape)
    pm.Deterministic("emulator_error_mean", pt.reshape(pt.dot(member, v_mean), shape) / g_prec,
                     dims=dims("emulator_group", "observable"))
    pm.Deterministic("emulator_error_sd", 1.0 / pt.sqrt(g_prec), dims=dims("emulator_group", "observable"))
    return mean, sd



def hyperpriors(*, family_scale: float = FAMILY_SCALE, family_discrepancy_scale: float | None = None,
                emulator: bool = False, family_logit_scale: float | None = None,
                family_link_scale: float | None = None) -> list[dict[str, str]]:
    """The priors of `build_hierarchical_model`'s hierarchy as table rows ``{"variable", "prior", "reason"}`` (the
    physical parameters' own priors are the study's); the scales a study sets are passed in, the others are the
    model's defaults."""
    d = {k: v.default for k, v in inspect.signature(build_hierarchical_model).parameters.items()}
    rows = [
        ("a_pop (direction)", "Normal(prior moments of u along each data-informed direction)",
         "the study's parameter priors, in the subspace the data inform (risk.bayes.subspace)"),
        ("tau_family (direction)", f"Gamma(2, 2 / {family_scale:g}) [prior sd of u]",
         "spread of the cell families' locations, mean = the study's inference.family_scale; zero-avoiding "
         "(boundary-avoiding group-level scale: Chung et al., Psychometrika 78 (2013) 685; Gelman, Bayesian "
         "Analysis 1 (2006) 515)"),
        ("family_slope", f"Normal(0, {d['slope_scale']:g}) [u per e-fold of capacity]",
         "family location against log capacity: ±1 sd moves a family by ≈ 1.3 prior sd over 2.5 e-folds (0.5-6.4 A h)"),
        ("cell_sd (direction)", f"HalfNormal({d['cell_scale']:g}) [prior sd of u]",
         "cell-to-cell variation of nominally identical cells: a fraction of the family spread"),
        ("discrepancy (observable)", f"Gamma(4, 4 / {d['discrepancy_scale']:g}) [normalised]",
         "model discrepancy per observable, never 0 (Kennedy & O'Hagan, JRSS B 63 (2001) 425; Brynjarsdóttir & "
         "O'Hagan, Inverse Problems 30 (2014) 114007)"),
        ("link_scale", f"LogNormal(0, {d['link_scale_sd']:g})",
         "sim-to-real scale of the decoder's runaway logit, centred on a calibrated decoder"),
        ("cutpoints_gaps", "Gamma(2, 1) per gap, c_5 ≡ 0",
         "ordered hazard-level cutpoints, every level reachable (TR ≡ level ≥ 6)"),
        ("design region", f"soft wall of width {DESIGN_WALL:g} [prior sd of u] beyond the central "
                          f"{100 * (1 - 2 * DESIGN_TAIL):g} % of each prior",
         "the decoder is a model of the simulator only where it saw simulations (risk.bayes.model.design_penalty)"),
    ]
    if family_discrepancy_scale is not None:
        rows += [("family_discrepancy (observable)", f"Half-Student-t(3, {family_discrepancy_scale:g}) [normalised]",
                  "what the simulator misses about a cell design; the study's inference.family_discrepancy_scale"),
                 ("family_discrepancy_mean (observable)", f"Normal(0, {FAMILY_BIAS_SD:g}) [normalised]",
                  "the simulator's bias shared by all cell designs (Kennedy & O'Hagan 2001, §4.3)")]
    if family_logit_scale is not None:
        rows += [("family_logit_sd", f"HalfNormal({family_logit_scale:g}) [logit]",
                  "spread of the cell designs' runaway tendency beyond the simulator's; the study's "
                  "inference.family_logit_scale"),
                 ("z_family_logit (family)", f"Student-t({FAMILY_LOGIT_NU:g}, 0, 1)",
                  "heavy-tailed design deviates: one unusual design does not widen every other's (Pinheiro, Liu & "
                  "Wu, J. Comput. Graph. Stat. 10 (2001) 249)"),
                 ("family_logit_mean, family_logit_slope", f"Normal(0, {FAMILY_LOGIT_MEAN_SD:g}) [logit, per e-fold]",
                  "the simulator's runaway bias shared by the designs and its trend in log capacity (weakly "
                  "informative logistic coefficients: Gelman et al., Ann. Appl. Stat. 2 (2008) 1360)")]
    if family_link_scale is not None:
        rows += [("family_link_sd", f"HalfNormal({family_link_scale:g}) [log]",
                  "spread of the cell designs' sim-to-real scale of the runaway logit (how steeply a design's runaway "
                  "follows the simulator's); the study's inference.family_link_scale"),
                 ("z_family_link (family)", "Normal(0, 1)", "non-centred family deviates of the log scale")]
    if emulator:
        rows.append(("emulator_share", "Beta(2, 2)",
                     "share of the decoder's error shared by a condition's replicates (Conti & O'Hagan, J. Stat. "
                     "Plan. Inference 140 (2010) 640)"))
    return [dict(zip(("variable", "prior", "reason"), r)) for r in rows]


def build_hierarchical_model(data: CalibrationData, surrogate: Surrogate, *, parameter_names: Sequence[str],
                             prior_mean: np.ndarray, prior_sd: np.ndarray, basis: np.ndarray | None = None,
                             anchor: np.ndarray | None = None, family_scale: float = FAMILY_SCALE, cell_scale: float = 0.3,
                             discrepancy_scale: float = DISCREPANCY_SCALE, link_scale_sd: float = 0.5,
                             censored: np.ndarray | None = None, train_mask: np.ndarray | None = None,
                             family_covariate: np.ndarray | None = None, covariate_direction: np.ndarray | None = None,
                             slope_scale: float = 0.5, family_discrepancy_scale: float | None = None,
                             design_bounds: tuple[np.ndarray, np.ndarray] | None = None,
                             design_wall: float = DESIGN_WALL, centred_families: Sequence[bool] | None = None,
                             emulator_groups: np.ndarray | None = None, family_logit_scale: float | None = None,
                             family_link_scale: float | None = None,
                             name: str = "", weighted: bool = False) -> pm.Model:
    """Hierarchical calibration model with the frozen decoder as surrogate likelihood.

    Parameters
    ----------
    data : the real tests (see `CalibrationData`).
    surrogate : ``surrogate(u, c) -> dict(mean, log_scale, logit_runaway)`` on PyTensor tensors
        (e.g. `FrozenDecoder.pytensor_apply`).
    parameter_names : names of the ``n_param`` physical parameters (coords of ``parameter``).
    prior_mean, prior_sd : ``(n_param,)`` prior of the population location in ``u`` units
        (`prior_moments_u`).
    basis : ``(n_param, k)`` orthonormal data-informed directions (`risk.bayes.subspace`); family
        locations and cell-to-cell variation live in their span, ``u = anchor + basis · a``. None: all
        directions (identity).
    anchor : ``(n_param,)`` value of ``u`` along the other directions (default ``prior_mean``).
    family_scale : prior mean ``s`` of the between-family spread of locations [u] (``u`` is z-scored over
        the prior; `FAMILY_SCALE` by default, a study's ``inference.family_scale``): ``τ ~ Gamma(2, 2/s)``, a
        zero-avoiding prior (density ∝ τ at 0; Chung, Rabe-Hesketh, Dorie, Gelman & Liu, Psychometrika 78
        (2013) 685). Under ``HalfNormal(s)``, the prior before, the family locations the data pin (centred) opened
        a funnel as τ → 0: the default study with one simulation round had 2–3 divergences in 4 × 1000 draws at
        target_accept 0.98–0.99 with τ₃ at 0.09–0.27, none with this prior at 0.99 (posterior τ means 0.30 / 0.91
        / 1.08 → 0.33 / 0.91 / 1.11; measured, docs/benchmarks.md "Simulation rounds"). Before the design wall
        (``design_bounds``) a wide 1.5 let family locations run to |u| ≈ 7 (past the ensemble, where the
        decoder extrapolates; R-hat 3.4, measured); with the wall the default study's LCO, NMC and LFP
        families spread by τ ≈ 1.1–1.8, and 0.5 (posterior τ 2.8 prior scales out, a prior-data conflict
        flagged by power-scaling) left two leave-family-out folds in two modes (R-hat 1.53; a small τ with
        a large voltage-drop discrepancy against a large τ with a small one), mixed at 1.0 (measured).
    cell_scale : HalfNormal scale of the cell-to-cell standard deviations [u] (nominally identical
        cells: a fraction of the family spread).
    discrepancy_scale : prior mean of the model-discrepancy sd per observable [normalised]
        (Gamma(4, 4/scale): 90 % between 0.34 and 1.9 × scale, never 0).
    link_scale_sd : log-sd of the LogNormal(0, ·) prior of the sim-to-real scale of the runaway logit
        (centred on "the decoder is calibrated"; 0.5: 95 % in [0.38, 2.7]).
    censored : ``(n_tests, n_obs)`` censoring signs (default ``data.censored``; `censor_sign`): a lower bound's
        likelihood is ``P(Y > value)``, an upper bound's ``P(Y < value)``.
    family_covariate : ``(n_families,)`` centred family-level predictor (in ``data.families`` order; the
        log of the family's nominal capacity, `risk.bayes.physics.PhysicsSetup.family_covariate`): family
        locations regress on it along ``covariate_direction``, ``a_f = a_pop + β x_f d + τ ⊙ z_f``
        (group-level predictor, Gelman & Hill 2007 ch. 12), so that a family the data never saw sits
        where families of its size sit, not at the average family. None: no regression.
    covariate_direction : ``(k,)`` unit vector ``d`` in the subspace (default: the first direction).
        One scalar slope along one direction (the decoder's runaway-logit gradient,
        `risk.bayes.physics`) rather than one per direction: with six families a slope per direction
        split leave-family-out fits into modes (4 of 6 folds R-hat > 1.5; measured).
    slope_scale : Normal(0, ·) prior sd of the slope ``β`` [u per e-fold of the covariate]: over the
        0.5–6.4 A h range of the data (2.5 e-folds) ±1 sd moves a location by 1.3 prior sd, about the
        between-family spread allowed by ``family_scale``.
    family_discrepancy_scale : half-t scale ``s_b`` [normalised] of a family-level discrepancy of the
        observables, ``y_ij ~ Normal(mean_ij + b_{f(i) j}, ·)``, ``b_fj = m_b,j + τ_b,j z_fj``,
        ``m_b ~ Normal(0, FAMILY_BIAS_SD)``, ``τ_b ~ Half-t_3(s_b)``
        (a hierarchical discrepancy per group, Kennedy & O'Hagan 2001 §4; Brynjarsdóttir & O'Hagan 2014):
        what the simulator misses about a cell design — e.g. the databank's 18650 types differ in heat
        released by more than a lumped heater model moves within the family spread — so that a family the
        data never saw gets that spread in its predictive. None: no such term. Only observables with at least
        one exact value carry it (``b_fj = 0`` otherwise): a value known only by bounds (the casing's breach
        margin, observed by its sign) cannot tell a family offset from the physics, whose family locations then
        carry the spread (with a free offset the unseen families' P(bottom rupture) sat at its prior, ≈ 0.4).
        The bias ``m_b`` shared by the families is its own variable: the databank's six 18650 types all sit
        above the simulator in total heat and ejecta share, and with ``b_fj = τ_b z_fj`` alone that common
        part needed a large ``τ_b`` and ``z_b`` of one sign, a funnel against ``a_pop`` (5–9 divergences in
        4 × 1500 draws at target_accept 0.99, at τ_b of the ejecta share 1.6 against its mean 0.3; measured). A
        family the data never saw gets ``m_b + τ_b z``: the designs' common bias, not the bare simulator.
    design_bounds : ``(lower, upper)``, each ``(n_param,)`` [u]: the region of ``u`` the decoder was trained on
        (`design_region_u`: the central 99 % of the prior the ensemble was drawn from). Every ``u`` the decoder
        sees (``u_test`` of the tests a copy sees) pays ``−½ (excess / design_wall)²`` beyond it
        (`design_penalty`): a surrogate is a model of the simulator only where it has seen simulations
        (Kennedy & O'Hagan, JRSS B 63 (2001) 425; Gramacy, *Surrogates*, 2020). Without it the default study's
        families ran to |u| ≈ 6–8, where the decoder's onset force turns back up, and the posterior split into
        two modes (R-hat 1.13; measured).
        None: no wall.
    design_wall : width of the soft wall [u].
    centred_families : how far each family location is centred, λ in [0, 1] (`centring_mask`): ``(k,)`` per
        direction, or ``{family: (k,)}`` per family and direction (booleans read as 0 / 1). ``z_family ~ Normal(λ c_f,
        τ^λ)`` and ``a_f = c_f + τ^(1-λ) (z_family - λ c_f)`` with ``c_f = a_pop + β x_f d``: at λ = 1 ``z_family`` is
        the family location itself (centred), at 0 its standard normal deviate (non-centred, the default), between
        partially centred. The same prior on ``a_f`` for every λ, a different geometry
        (`risk.bayes.physics.centred_families` sets λ from how tightly a family's tests pin its location). A family
        none of whose tests a copy sees (``train_mask``, weight 0) is non-centred in that copy whatever this says (a
        prior-only centred location is a funnel in (τ, a_f)).
    emulator_groups : ``(n_tests,)`` int, 0-based: tests that share the surrogate's error (`risk.bayes.physics.
        emulator_groups`: a cell family's tests under the same conditions, up to a distance). The decoder emulates a
        deterministic simulator, so its scale ``exp(log_scale)`` is the error of the emulator at ``(u, c)`` — the same
        for replicates of one cell type under one condition, not noise drawn anew per test (code uncertainty,
        Kennedy & O'Hagan, JRSS B 63 (2001) 425, §2.2; Conti & O'Hagan, J. Stat. Plan. Inference 140 (2010) 640).
        With it, observables with an exact value somewhere follow
        ``y_ij ~ Normal(mean_ij + b_fj + √ρ exp(log_scale_ij) e_g(i)j, sqrt((1 − ρ) exp(2 log_scale_ij) + δ_j²))``,
        ``e_gj ~ Normal(0, 1)`` per group and observable, ``ρ = emulator_share ~ Beta(2, 2)`` the share of the decoder's
        variance that is shared. ``e`` is integrated out analytically (`_emulator_marginal`: a group's values are
        jointly normal); its conditional posterior is recorded as ``emulator_error_mean`` and ``emulator_error_sd``
        ``(emulator_group, observable)``. A condition's replicates tell where the simulator sits there, and a new
        test at a tested condition inherits that (`risk.bayes.physics.predict_observables`). None: the decoder's scale
        is independent per test (``sd = sqrt(exp(2 log_scale) + δ²)``).
    family_logit_scale : HalfNormal scale ``s_η`` [logit] of a family-level discrepancy of the runaway logit,
        ``η_i = s · g(u_i, c_i) + m_η + β_η x_f(i) + τ_η z_η,f(i)``, ``z_η ~ Student-t(ν, 0, 1)`` per family
        (``FAMILY_LOGIT_NU``),
        ``τ_η ~ HalfNormal(s_η)``, ``m_η, β_η ~ Normal(0, FAMILY_LOGIT_MEAN_SD)`` (``β_η`` with a ``family_covariate``)
        (the outcome's counterpart of ``family_discrepancy_scale``; Kennedy & O'Hagan 2001 §4): what the simulator
        misses about a design's runaway tendency once its observables have placed the family's cells — with a
        sharp emulator the observables pin the family locations, and the small LCO pouches, which never ran away,
        sat where the simulator gives P(TR) ≈ 0.2–0.3 (measured). The offsets' common part ``m_η`` and its trend
        with the family covariate (cell size) ``β_η``: without them every family's offset came out negative
        (−0.3 … −10.6) and ``τ_η`` 3.5 carried that common part into an unseen family's spread (measured); with
        normal deviates the one design far below the others (Soteria SCC) still set ``τ_η`` 2.6, with Student-t
        deviates 1.9 (leave-family-out TR log loss 0.411 → 0.403, measured). A family the data never saw draws its
        offset from ``m_η + β_η x + τ_η t_ν``. None: no such term.
    family_link_scale : HalfNormal scale ``s_λ`` [log] of the family spread of the logit's sim-to-real scale
        about each family's reference point: ``η_i = s · g_ref,i + s_f(i) · (g(u_i, c_i) − g_ref,i) + …`` with
        ``g_ref,i = g(μ_f(i), c_i at SOC_REF)`` the decoder's logit at the family location under the test's
        conditions at the reference SOC (`reference_conditions`), ``s_f = s · exp(τ_λ z_λ,f)``,
        ``z_λ ~ Normal(0, 1)``, ``τ_λ ~ HalfNormal(s_λ)``. The decoder's logit is smooth in SOC where a given
        cell's simulated runaway is a step (a classifier of a few hundred simulations); one scale for all designs
        cannot be steep for the large NMC and LCO cells, which switch from level 4 to 7 between two SOC steps, and
        gentle for the Soteria controls, which are mixed over 40–50 % SOC (measured). About the reference point the
        family scale sets the steepness only, the family's level stays with ``s · g_ref`` and the offset: scaling
        the whole logit let a family without a runaway (Soteria SCC) run to logits of −90 along a ridge of scale
        and offset (10 divergences in 4 × 1000 draws, measured). A family the data never saw draws its scale from
        ``s · exp(τ_λ N(0, 1))``. None: one scale for all families.
    train_mask : ``(n_folds, n_tests)`` bool: fit ``n_folds`` independent copies in one model, copy k
        seeing only the tests where ``train_mask[k]`` (cross-validation in one JAX compilation); every
        variable then leads with a ``fold`` dim.
    name : PyMC model name (prefix ``name::``), to nest independent copies (simulation-based calibration).
    weighted : per-test likelihood weights, ``test_weight (test)`` (a ``pm.Data`` of ones): every likelihood
        term of test i — observables, censored bounds, outcome, design wall — enters times its weight, as
        potentials instead of observed variables (no ``train_mask``). Weights 0/1 give the fit that sees the
        weight-1 tests only, in one graph for every such subset (`risk.bayes.weighted`: cross-validation
        folds compiled once).

    Returns
    -------
    pymc.Model with free variables ``a_pop (direction)``, ``tau_family (direction)``,
    ``z_family (family, direction)``, ``cell_sd (direction)``, ``z_test (test, direction)``,
    ``discrepancy (observable)``, ``cutpoints_gaps`` and ``link_scale`` (when outcomes are observed),
    ``family_discrepancy (observable)``, ``family_discrepancy_mean (observable)`` and
    ``z_family_discrepancy (family, observable)`` with the
    deterministic ``family_offset (family, observable)`` (with ``family_discrepancy_scale``),
    ``emulator_share`` with the deterministics ``emulator_error_mean``, ``emulator_error_sd (emulator_group,
    observable)`` (with ``emulator_groups``),
    ``family_logit_sd``, ``family_logit_mean``, ``family_logit_slope`` (with a covariate) and ``z_family_logit (family)``
    with the deterministic ``family_logit_offset (family)``
    (with ``family_logit_scale`` and outcomes),
    ``family_link_sd`` and ``z_family_link (family)`` with the deterministic ``family_link_scale (family)``
    (with ``family_link_scale`` and outcomes),
    ``family_slope`` (scalar) with its image ``family_slope_u (parameter)`` = β W d in ``u`` (with a covariate);
    deterministics in ``u``: ``mu_pop (parameter)``, ``mu_family (family, parameter)``,
    ``u_test (test, parameter)``, ``cell_chol (parameter, direction)`` = basis · diag(cell_sd),
    ``family_chol (parameter, direction)`` = basis · diag(tau_family); ``logit_runaway (test)``.

    Notes
    -----
    The runaway logit of test i is ``s · g(u_i, c_i)`` with ``g`` the decoder's logit and ``s = link_scale``
    (a decoder trained on a few hundred simulations is often under-confident). There is no free shift:
    a shift would duplicate the population location along the logit's direction (a ridge that NUTS
    cannot cross in 250 draws); real cells that run away more or less often than the simulator's prior
    say so by moving the physical parameters.
    """
    fam = data.family_index
    n_param = len(parameter_names)
    W = np.eye(n_param) if basis is None else np.asarray(basis, dtype=float)
    k = W.shape[1]
    u0 = np.asarray(prior_mean if anchor is None else anchor, dtype=float)
    a_mean = W.T @ (np.asarray(prior_mean, float) - u0)
    a_sd = np.sqrt(np.einsum("pk,p,pk->k", W, np.asarray(prior_sd, float) ** 2, W))
    n = len(data.test)
    batch = () if train_mask is None else (int(np.shape(train_mask)[0]),)
    if weighted and batch:
        raise ValueError("weighted=True and train_mask are exclusive (weights select a fold's tests)")
    seen = np.ones((1, n), bool) if train_mask is None else np.asarray(train_mask, bool)
    obs = np.asarray(data.observables, dtype=float)
    censored = data.censored if censored is None else censored
    sign = censor_sign(censored, obs.shape) * np.isfinite(obs)
    # observed entries, per copy: (fold, test, observable) of finite values of tests the copy sees
    ent = np.argwhere(np.isfinite(obs)[None] & seen[:, :, None])
    ent_f, ent_t, ent_j = ent.T
    exact = sign[ent_t, ent_j] == 0
    coords = {"parameter": list(parameter_names), "direction": [f"d{j + 1}" for j in range(k)],
              "family": list(data.families), "test": [str(t) for t in data.test],
              "observable": list(data.observable_names) or [f"obs_{j}" for j in range(obs.shape[1])],
              "observed_entry": np.arange(int(exact.sum()))} | ({"fold": np.arange(batch[0])} if batch else {}) | (
        {} if emulator_groups is None else {"emulator_group": np.arange(int(np.max(emulator_groups)) + 1)})

    def dims(*d: str) -> tuple[str, ...]:
        return ("fold", *d) if batch else d

    with pm.Model(coords=coords, name=name) as model:
        # a constant (static shape) rather than pm.Data: surrogates may broadcast over conditions
        c = pt.as_tensor_variable(np.tile(np.asarray(data.conditions, dtype=float), (max(1, len(seen)), 1)))
        w = pm.Data("test_weight", np.ones(n), dims="test") if weighted else None
        a_pop = pm.Normal("a_pop", mu=a_mean, sigma=a_sd, dims=dims("direction"))
        # zero-avoiding Gamma(2, 2/scale) (mean = scale, density ∝ τ at 0): the boundary-avoiding prior of a group
        # scale (Chung et al., Psychometrika 78 (2013) 685); with HalfNormal(scale) centred family locations opened a
        # funnel as τ → 0 (docstring, measured)
        tau = pm.Gamma("tau_family", alpha=2.0, beta=2.0 / family_scale, dims=dims("direction"))
        centre = a_pop[..., None, :]  # (*batch, 1, k): the population location of each family
        if family_covariate is not None:
            x = np.asarray(family_covariate, dtype=float)
            if x.shape != (len(data.families),):
                raise ValueError(f"family_covariate has shape {x.shape}, expected ({len(data.families)},)")
            d = np.zeros(k) if covariate_direction is None else np.asarray(covariate_direction, dtype=float)
            if covariate_direction is None:
                d[0] = 1.0
            beta = pm.Normal("family_slope", 0.0, slope_scale, dims=dims() or None)
            centre = centre + (beta[..., None, None] if batch else beta) * (x[:, None] * d)
            pm.Deterministic("family_slope_u", (beta[..., None] if batch else beta) * (W @ d), dims=dims("parameter"))
        # which family locations are centred, per copy: a family none of whose tests a copy sees follows the prior
        # alone, and a centred prior-only location is a funnel in (τ, a_f), so it stays non-centred there
        lam = centring_mask(centred_families, data.families, k)  # (F, k)
        member = (fam[None, :] == np.arange(len(data.families))[:, None]).astype(float)  # (F, N)
        if batch:
            lam = lam[None] * (seen.astype(float) @ member.T > 0)[..., None]  # (B, F, k)
        elif w is not None:  # symbolic in the weights: one compiled graph serves every fold (risk.bayes.weighted)
            lam = lam * pt.gt(pt.dot(member, w), 0)[:, None]
        # z_family ~ N(λ centre, τ^λ), a_f = centre + τ^(1-λ) (z - λ centre): the location itself where λ = 1
        # (centred), its standard normal z where λ = 0 (non-centred), partially centred between (Papaspiliopoulos,
        # Roberts & Sköld 2003; Gorinova, Moore & Hoffman, ICML 2020); the same prior on a_f for every λ
        tau_f = tau[..., None, :]
        z_f = pm.Normal("z_family", lam * centre, tau_f ** lam, dims=dims("family", "direction"))
        a_f = centre + tau_f ** (1 - lam) * (z_f - lam * centre)  # (*batch, F, k)
        sd = pm.HalfNormal("cell_sd", cell_scale, dims=dims("direction"))
        z_t = pm.Normal("z_test", 0.0, 1.0, dims=dims("test", "direction"))
        a_t = a_f[..., fam, :] + sd[..., None, :] * z_t  # (*batch, N, k)
        def to_u(a):  # (..., k) → (..., n_param); elementwise (a batched dot would reshape to traced shapes)
            return u0 + (a[..., None, :] * W).sum(axis=-1)

        pm.Deterministic("mu_pop", to_u(a_pop), dims=dims("parameter"))
        pm.Deterministic("mu_family", to_u(a_f), dims=dims("family", "parameter"))
        pm.Deterministic("cell_chol", W * sd[..., None, :], dims=dims("parameter", "direction"))
        pm.Deterministic("family_chol", W * tau[..., None, :], dims=dims("parameter", "direction"))
        u = pm.Deterministic("u_test", to_u(a_t), dims=dims("test", "parameter"))
        if design_bounds is not None:  # the tests each copy sees (a held-out test's cell would tilt the hyperprior)
            wall = design_penalty(u, design_bounds, design_wall, xp=pt)
            pm.Potential("design_region", (wall * (seen if batch else seen[0] if w is None else w)).sum())
        # static shapes throughout: JAX post-processing of deterministics cannot reshape to a traced shape
        out = surrogate(pt.reshape(u, (batch[0] * n, n_param)) if batch else u, c)
        g = pt.reshape(out["logit_runaway"], (batch[0], n)) if batch else out["logit_runaway"]
        has_outcome = any(x is not None and np.isfinite(np.asarray(x, dtype=float)).any()
                          for x in (data.hazard_level, data.runaway))
        if has_outcome:
            s = pm.LogNormal("link_scale", 0.0, link_scale_sd, dims=dims() or None)
            exl = (lambda v: v[..., None]) if batch else (lambda v: v)  # noqa: E731 (a scalar per copy)
            if family_link_scale is None:
                g = exl(s) * g
            else:  # non-centred family scales of the logit about each family's reference point (docstring)
                tau_l = pm.HalfNormal("family_link_sd", family_link_scale, dims=dims() or None)
                z_l = pm.Normal("z_family_link", 0.0, 1.0, dims=dims("family"))
                s_f = pm.Deterministic("family_link_scale", exl(s) * pt.exp(exl(tau_l) * z_l), dims=dims("family"))
                u_ref = to_u(a_f[..., fam, :])  # (*batch, N, P): each test's family location
                c_ref = pt.as_tensor_variable(np.tile(reference_conditions(data.conditions, data.condition_names),
                                                      (max(1, len(seen)), 1)))
                g_ref = surrogate(pt.reshape(u_ref, (batch[0] * n, n_param)) if batch else u_ref, c_ref)
                g_ref = pt.reshape(g_ref["logit_runaway"], (batch[0], n)) if batch else g_ref["logit_runaway"]
                g = exl(s) * g_ref + s_f[..., fam] * (g - g_ref)
            if family_logit_scale is not None:  # non-centred family offsets of the runaway logit (docstring)
                ex = lambda v: v[..., None] if batch else v  # noqa: E731 (a scalar per copy against the families)
                tau_eta = pm.HalfNormal("family_logit_sd", family_logit_scale, dims=dims() or None)
                m_eta = pm.Normal("family_logit_mean", 0.0, FAMILY_LOGIT_MEAN_SD, dims=dims() or None)
                centre_eta = ex(m_eta)
                if family_covariate is not None:
                    b_eta = pm.Normal("family_logit_slope", 0.0, FAMILY_LOGIT_MEAN_SD, dims=dims() or None)
                    centre_eta = centre_eta + ex(b_eta) * x
                # Student-t deviates (robust random effects): the Soteria SCC cells, which never shorted, sit far below
                # the others; with normal deviates that one design widened τ_η for every unseen family (measured)
                z_eta = pm.StudentT("z_family_logit", nu=FAMILY_LOGIT_NU, mu=0.0, sigma=1.0, dims=dims("family"))
                off = pm.Deterministic("family_logit_offset", centre_eta + ex(tau_eta) * z_eta, dims=dims("family"))
                g = g + off[..., fam]
        logit = pm.Deterministic("logit_runaway", g, dims=dims("test"))
        if ent.size:
            # zero-avoiding Gamma(4, 4/scale) (mean = scale): a discrepancy free to reach 0 turns the
            # per-test latents into a funnel; a floor of real model/measurement error is also the honest
            # prior (Kennedy & O'Hagan 2001; Brynjarsdóttir & O'Hagan 2014)
            delta = pm.Gamma("discrepancy", alpha=4.0, beta=4.0 / discrepancy_scale, dims=dims("observable"))
            n_obs = obs.shape[1]
            flat = (ent_f * n + ent_t) * n_obs + ent_j  # flat indices: avoids a PyTensor bug with 2-D fancy indexing
            mean = out["mean"].flatten()[flat]
            log_scale = out["log_scale"].flatten()[flat]
            d = delta.flatten()[ent_f * n_obs + ent_j]
            if family_discrepancy_scale is not None:  # non-centred: b = τ_b z (weakly informed families)
                # half-t(3): with a handful of families a half-normal scale decides τ_b (measured on the databank:
                # posterior median 1.2 under HalfNormal(0.5), flagged as prior-data conflict by power scaling);
                # the heavy tail lets the families speak (Gelman, Bayesian Analysis 1 (2006) 515, §5)
                tau_b = pm.HalfStudentT("family_discrepancy", nu=3, sigma=family_discrepancy_scale,
                                        dims=dims("observable"))
                # the offsets' common part, the simulator's bias over all cell designs: without it a bias shared by
                # the families had to come from a large τ_b with z_b of one sign (a funnel; docstring)
                m_b = pm.Normal("family_discrepancy_mean", 0.0, FAMILY_BIAS_SD, dims=dims("observable"))
                z_b = pm.Normal("z_family_discrepancy", 0.0, 1.0, dims=dims("family", "observable"))
                exact_obs = np.zeros(n_obs)
                exact_obs[ent_j[exact]] = 1.0  # observables with an exact value somewhere (docstring)
                # non-centred: centred offsets, b_f ~ N(m_b, τ_b²), had 67 divergences in 4 × 1000 draws at
                # target_accept 0.95 on the databank against 19 (measured)
                b = pm.Deterministic("family_offset", (m_b[..., None, :] + tau_b[..., None, :] * z_b) * exact_obs,
                                     dims=dims("family", "observable"))
                n_fam = len(data.families)
                mean = mean + b.flatten()[(ent_f * n_fam + fam[ent_t]) * n_obs + ent_j]
            y = obs[ent_t, ent_j]
            if emulator_groups is None:
                sd_obs = pt.sqrt(pt.exp(2.0 * log_scale) + d ** 2)
            else:  # the group error integrated out (docstring): each entry's normal given the group's earlier entries
                grp = np.asarray(emulator_groups, dtype=int)
                if grp.shape != (n,):
                    raise ValueError(f"emulator_groups has shape {grp.shape}, expected ({n},)")
                rho = pm.Beta("emulator_share", 2.0, 2.0, dims=dims() or None)
                mean, sd_obs = _emulator_marginal(mean, pt.exp(log_scale), d, y, exact, (ent_f, ent_t, ent_j), grp,
                                                  n_obs, batch,
                                                  rho.flatten()[ent_f] if batch else rho,
                                                  None if w is None else w[ent_t], dims)
            if exact.any():
                ex = np.flatnonzero(exact)
                if w is None:
                    pm.Normal("observables", mu=mean[ex], sigma=sd_obs[ex], observed=y[exact], dims="observed_entry")
                else:
                    pm.Potential("observables", (w[ent_t[ex]] * pm.logp(pm.Normal.dist(mean[ex], sd_obs[ex]),
                                                                          y[exact])).sum())
            if (~exact).any():  # lower bounds: log P(Y > y); upper bounds: log P(Y < y) = log P(-Y > -y)
                lo = np.flatnonzero(~exact)
                s = sign[ent_t, ent_j][~exact].astype(float)
                logsf = _normal_logsf(s * (y[~exact] - mean[lo]) / sd_obs[lo])
                pm.Potential("observables_censored", (logsf if w is None else w[ent_t[lo]] * logsf).sum())
        _outcome_likelihoods(logit, data.hazard_level, data.runaway, train_mask, weight=w)
    model.observed_index = (ent_t[exact], ent_j[exact])  # observed entries → (test, observable)
    return model
