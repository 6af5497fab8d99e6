"""The encoder q(θ | x, c) of the cVAE, trained on real tests by the ELBO with the frozen decoder.

q is a full-covariance Gaussian in the unconstrained, z-scored space u (`sim2real.bridge`), amortised
over tests by `EncoderNet`. The prior in u is the *exact* transformed prior density of the study's
priors (`ThetaTransform.log_prior_u`). Per test i (masks m, outcome mask m_y)::

    ELBO_i = E_q[ Σ_f m_f log N(x_f | μ_f(u, c), σ_f(u, c)² + σ_d,ch(f)²) + m_y log Bern(y | p(u, c))
                  + log p(u) ] + H[q]

(curve points weighted by n_components / n_points by default, ``likelihood="composite"``: the decoder's
errors along a curve are correlated; see `feature_weights` and `LIKELIHOODS`) with a learned sim-to-real
discrepancy σ_d per observable channel (half-normal prior of scale
``discrepancy_prior_scale`` in normalised units; reported in SI units). Training: (1) an amortised
initialisation on data drawn from the frozen decoder (u ~ prior, c and masks resampled from the real
tests; maximise log q(u | x)), then (2) the ELBO on the real tests; ``restarts`` times from different
seeds, keeping the best final ELBO (estimated with ``eval_samples`` draws). A share ``outcome_dropout`` of
the decoder draws hides the outcome, and in (2) every real test also enters once with its outcome hidden, so
the same network infers a newly measured test from its curves before anyone scored it (`load_encoder`,
``risk predict --raw``). The reverse-KL Gaussian is
too narrow where the posterior is curved or truncated; `EncoderFit.posterior` therefore corrects it by
importance sampling against the same (decoder) posterior by default.

Measured (OvenCell, 500 simulations, 80 real-like tests; tests/sim2real): pooled coverage of central
50 % / 90 % intervals 0.44 / 0.82 with the importance correction, 0.33 / 0.69 for the raw Gaussian,
0.55 / 0.87 for the amortised initialisation alone.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
import xarray as xr

from sim2real.bridge import Batch, real_to_batch
from sim2real.decoder import bernoulli_nll, gaussian_nll
from sim2real.frozen import FrozenDecoder
from sim2real.networks import EncoderNet

DT = torch.float64
#: "diagonal": independent Gaussian per feature; "composite": curve points down-weighted by
#: n_components / n_points; "lowrank": correlated emulator error along curves (`FrozenDecoder.error_factor`)
LIKELIHOODS = ("lowrank", "composite", "diagonal")


@dataclass(frozen=True)
class EncoderConfig:
    """Encoder architecture and training settings (see module docstring)."""

    width: int = 64
    depth: int = 2
    pretrain_steps: int = 1500
    pretrain_batch: int = 256
    steps: int = 800
    lr: float = 2e-3
    mc_samples: int = 8
    restarts: int = 3
    discrepancy: bool = True
    discrepancy_prior_scale: float = 0.2
    ridge: float = 1e-2
    eval_samples: int = 256
    likelihood: str = "composite"
    outcome_dropout: float = 0.5
    seed: int = 0

    def __post_init__(self):
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood {self.likelihood!r} unknown; expected one of {', '.join(LIKELIHOODS)}")


class Summary:
    """Fixed (non-trainable) summary of a masked observation used as encoder input.

    Curves: ridge projection of the masked normalised curve onto the decoder's PCA basis of that
    channel; scalars: value and mask; per curve the observed fraction; the runaway flag and its mask;
    normalised conditions.
    """

    def __init__(self, decoder: FrozenDecoder, ridge: float):
        w = decoder.weights
        self.basis, self.offset = torch.as_tensor(w["basis"], dtype=DT), torch.as_tensor(w["basis_offset"], dtype=DT)
        self.layout, self.ridge = decoder.layout, ridge
        self.rows, k = [], 0
        for size in decoder.component_sizes:
            self.rows.append(slice(k, k + size))
            k += size
        self.cond_loc = torch.as_tensor(decoder.layout.condition_loc, dtype=DT)
        self.cond_scale = torch.as_tensor(decoder.layout.condition_scale, dtype=DT)

    def observables(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(n, n_obs) normalised x and mask → (n, d_obs) features."""
        feats = []
        for ch, sl, rows in zip(self.layout.channels, self.layout.slices().values(), self.rows):
            xm, m = (x[:, sl] - self.offset[sl]) * mask[:, sl], mask[:, sl]
            if ch.dim is None:
                feats += [xm, m]
                continue
            B = self.basis[rows, sl]  # (k, g)
            A = (B * m[:, None, :]) @ B.T + self.ridge * torch.eye(B.shape[0], dtype=DT)
            coef = torch.linalg.solve(A, (xm @ B.T).unsqueeze(-1)).squeeze(-1)
            feats += [coef, m.mean(1, keepdim=True)]
        return torch.cat(feats, dim=1)

    def __call__(self, x, mask, y, y_mask, c) -> torch.Tensor:
        cn = (c.to(DT) - self.cond_loc) / self.cond_scale
        return torch.cat([self.observables(x.to(DT), mask.to(DT)), (y * y_mask).to(DT).unsqueeze(1),
                          y_mask.to(DT).unsqueeze(1), cn], dim=1)


class EncoderFit:
    """A trained encoder with its frozen decoder: posteriors q(θ | x, c) for the real tests or new ones.

    Attributes
    ----------
    batch : the tests it was trained on (None when loaded from a model directory, `load_encoder`).
    loc : (n_test, n_par) posterior means in u of ``batch``; scale_tril : (n_test, n_par, n_par).
    log_sd_discrepancy : (n_chan,) log σ_d in normalised units; `discrepancy` gives σ_d in SI units.
    elbo : best mean ELBO per test (nats); restarts_elbo : all restarts.

    Every method taking ``real`` accepts a real-data dataset, a `Batch`, or None (the training tests).
    """

    def __init__(self, decoder, net, summary, batch, log_sd, config, elbos, real_hash):
        self.decoder, self.net, self.summary, self.batch, self.config = decoder, net.eval(), summary, batch, config
        self.log_sd_discrepancy = log_sd.detach().clone()
        self.summary_dim = int(net.body[0].in_features)
        self.restarts_elbo = list(map(float, elbos))
        self.elbo = max(self.restarts_elbo) if self.restarts_elbo else math.nan
        self.loc = self.scale_tril = None
        if batch is not None:
            self.loc, self.scale_tril = self._q(batch)
        self.hashes = {"real": real_hash}
        self.metrics = {"elbo": self.elbo, "restarts_elbo": self.restarts_elbo,
                        "discrepancy_sd": self.discrepancy, "n_tests": 0 if batch is None else len(batch)}

    @property
    def parameter_names(self) -> list[str]:
        return self.decoder.parameter_names

    @property
    def discrepancy(self) -> dict[str, float]:
        """Learned sim-to-real discrepancy σ_d per observable channel, in the observable's SI unit."""
        lay = self.decoder.layout
        sd = torch.exp(self.log_sd_discrepancy).numpy()
        return {ch.name: float(sd[j] * lay.scale[sl.start]) for j, (ch, sl) in enumerate(zip(lay.channels, lay.slices().values()))}

    def batch_of(self, real: xr.Dataset | Batch | None = None) -> Batch:
        """``real`` as a `Batch` in the decoder's layout (None: the training tests)."""
        if real is None:
            if self.batch is None:
                raise ValueError("this encoder was loaded without its training tests: pass the tests to infer")
            return self.batch
        return real if isinstance(real, Batch) else real_to_batch(real, self.decoder.layout)

    def _q(self, b: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            loc, L = self.net(self.summary(b.x, b.mask, b.y, b.y_mask, b.c))
        return loc.detach(), L.detach()

    def encode(self, real: xr.Dataset | Batch | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Amortised posterior q(u | x, c): (loc (n, n_par), scale_tril (n, n_par, n_par)) in u."""
        loc, L = self._q(self.batch_of(real))
        return loc.numpy(), L.numpy()

    def sample_u(self, n_draws: int, generator: torch.Generator, real: xr.Dataset | Batch | None = None) -> np.ndarray:
        """Draws of the (uncorrected) Gaussian q in u, (n_test, n_draws, n_par)."""
        loc, L = self._q(self.batch_of(real))
        eps = torch.randn(loc.shape[0], n_draws, loc.shape[1], generator=generator, dtype=DT)
        return (loc.unsqueeze(1) + torch.einsum("npq,ndq->ndp", L, eps)).numpy()

    def log_target(self, u: torch.Tensor, rows, real: xr.Dataset | Batch | None = None) -> torch.Tensor:
        """Unnormalised log posterior under the frozen decoder (+ discrepancy) of the tests ``rows`` (an index or
        a list of m indices), u (S, n_par) or (m, S, n_par) → (S,) or (m, S)."""
        b = self.batch_of(real).subset(np.atleast_1d(rows))
        m = len(b)
        uu = u.reshape(m, -1, u.shape[-1])
        S = uu.shape[1]

        def rep(t):  # one row per draw: (m, ...) → (m·S, ...)
            return t.repeat_interleave(S, dim=0)

        bi = Batch(rep(b.x), rep(b.mask), rep(b.c), rep(b.y), rep(b.y_mask), None, b.ids)
        flat = uu.reshape(m * S, -1)
        extra = torch.exp(2 * self.log_sd_discrepancy)[torch.as_tensor(self.decoder.layout.channel_index())]
        out = self.decoder.torch_module(flat, bi.c.to(DT))
        ll = log_likelihood(self.decoder, out, bi, extra, self.config.likelihood)
        ll = ll - bernoulli_nll(bi.y.to(DT), bi.y_mask.to(DT), out["logit_runaway"])
        return (ll + self.decoder.transform.log_prior_u(flat)).reshape(u.shape[:-1])

    def importance_sample_u(self, n_draws: int, generator: torch.Generator, n_proposal: int = 4000,
                            inflate: float = 1.5, real: xr.Dataset | Batch | None = None,
                            chunk: int = 8) -> tuple[np.ndarray, np.ndarray]:
        """Posterior draws corrected by self-normalised importance sampling, and the effective sample sizes.

        The encoder's Gaussian (reverse-KL fit, so too narrow where the posterior is curved or truncated)
        serves as a defensive proposal ½ q + ½ q_inflated (scale × ``inflate``); draws are resampled
        with weights ∝ p(x | u, c) p(u) / proposal(u), ``chunk`` tests at a time in one decoder call.
        Returns ``(draws (n_test, n_draws, n_par), ess (n_test,))``.
        """
        b = self.batch_of(real)
        loc, L = self._q(b)
        n, p = loc.shape
        draws, ess = np.empty((n, n_draws, p)), np.empty(n)
        half = n_proposal // 2
        with torch.no_grad():
            for start in range(0, n, chunk):
                rows = np.arange(start, min(start + chunk, n))
                lo, Lr = loc[rows], L[rows]  # (m, p), (m, p, p)
                eps = torch.randn(len(rows), n_proposal, p, generator=generator, dtype=DT)
                scale = torch.cat([torch.ones(half, dtype=DT), torch.full((n_proposal - half,), inflate, dtype=DT)])
                u = lo[:, None, :] + scale[None, :, None] * torch.einsum("mpq,msq->msp", Lr, eps)
                q1 = torch.distributions.MultivariateNormal(lo[:, None, :], scale_tril=Lr[:, None])
                q2 = torch.distributions.MultivariateNormal(lo[:, None, :], scale_tril=inflate * Lr[:, None])
                log_q = torch.logsumexp(torch.stack([q1.log_prob(u), q2.log_prob(u)]), 0) - math.log(2)
                w = torch.softmax(self.log_target(u, rows, b) - log_q, dim=1)  # (m, n_proposal)
                ess[rows] = (1 / (w**2).sum(1)).numpy()
                for k, i in enumerate(rows):
                    idx = torch.multinomial(w[k], n_draws, replacement=True, generator=generator)
                    draws[i] = u[k, idx].numpy()
        return draws, ess

    def posterior(self, n_draws: int = 1000, generator: torch.Generator | None = None,
                  importance: bool = True, real: xr.Dataset | Batch | None = None) -> xr.Dataset:
        """Posterior draws of θ in SI units: ``theta`` (test, draw, parameter), u-space mean and sd, ESS.

        ``importance=True`` corrects the encoder's Gaussian by importance sampling (`importance_sample_u`).
        """
        g = generator if generator is not None else torch.Generator().manual_seed(self.config.seed)
        b = self.batch_of(real)
        if importance:
            u, ess = self.importance_sample_u(n_draws, g, real=b)
        else:
            u, ess = self.sample_u(n_draws, g, b), np.full(len(b), float(n_draws))
        return xr.Dataset(
            {"theta": (("test", "draw", "parameter"), self.decoder.from_unconstrained(u), {"long_name": "posterior draws of θ (SI)"}),
             "u": (("test", "draw", "parameter"), u, {"units": "1", "long_name": "posterior draws of u"}),
             "u_mean": (("test", "parameter"), u.mean(1), {"units": "1", "long_name": "posterior mean of u"}),
             "u_sd": (("test", "parameter"), u.std(1), {"units": "1", "long_name": "posterior sd of u"}),
             "ess": ("test", ess, {"units": "1", "long_name": "effective sample size of the importance weights"})},
            coords={"test": b.ids, "parameter": self.parameter_names, "draw": np.arange(n_draws)})

    def misspecification(self, ensemble: xr.Dataset | None = None, **kw) -> xr.Dataset:
        """Per-test misspecification check (`sim2real.discrepancy.misspecification_check`)."""
        from sim2real.discrepancy import misspecification_check
        return misspecification_check(self, ensemble, **kw)


def log_likelihood(decoder: FrozenDecoder, out: dict, b: Batch, extra: torch.Tensor, kind: str) -> torch.Tensor:
    """Masked log p(x | u, c) of the observables, ``(..., n)``, for likelihood ``kind`` (see `LIKELIHOODS`)."""
    x, m = b.x.to(DT), b.mask.to(DT)
    if kind != "lowrank":
        mw = m * feature_weights(decoder, kind == "composite")
        return -gaussian_nll(x, mw, out["mean"], out["log_scale"], extra)
    F = torch.as_tensor(decoder.error_factor, dtype=DT)  # (k, n_obs)
    var = torch.exp(2 * out["log_scale"])
    diag = torch.clamp(var - (F**2).sum(0), min=0.05 * var) + extra
    # masked features: zero residual, zero factor row, unit variance → they drop out exactly
    r = (x - out["mean"]) * m
    cov_factor = (F.T * m.unsqueeze(-1)).expand(*r.shape, F.shape[0])
    mvn = torch.distributions.LowRankMultivariateNormal(torch.zeros_like(r), cov_factor, diag * m + (1 - m))
    return mvn.log_prob(r) + 0.5 * math.log(2 * math.pi) * (1 - m).sum(-1)


def feature_weights(decoder: FrozenDecoder, composite: bool) -> torch.Tensor:
    """(n_obs,) likelihood weights: 1, or for curves (composite) n_components / n_points of the channel.

    The decoder's errors along a curve are strongly correlated (a shifted runaway spike moves every
    point), so treating the points as independent would make the posterior far too narrow; weighting
    each point by the channel's effective dimension (its PCA rank) over its length is a composite
    likelihood that counts a curve as ``n_components`` independent pieces of information.
    """
    w = np.ones(decoder.layout.n_obs)
    if composite:
        for ch, sl, k in zip(decoder.layout.channels, decoder.layout.slices().values(), decoder.component_sizes):
            if ch.dim is not None:
                w[sl] = k / ch.size
    return torch.as_tensor(w, dtype=DT)


def elbo_terms(decoder: FrozenDecoder, transform, loc, L, b: Batch, log_sd, K: int, generator,
               likelihood: str = "composite") -> torch.Tensor:
    """Per-test ELBO (n,) with K reparameterised draws (``likelihood`` see `LIKELIHOODS`)."""
    n, p = loc.shape
    eps = torch.randn(K, n, p, generator=generator, dtype=DT)
    u = loc + torch.einsum("npq,knq->knp", L, eps)
    out = decoder.torch_module(u, b.c.to(DT).expand(K, -1, -1))
    extra = torch.exp(2 * log_sd)[torch.as_tensor(decoder.layout.channel_index())]
    ll = log_likelihood(decoder, out, b, extra, likelihood)
    ll = ll - bernoulli_nll(b.y.to(DT), b.y_mask.to(DT), out["logit_runaway"])
    lp = transform.log_prior_u(u)
    entropy = torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1) + 0.5 * p * (1 + math.log(2 * math.pi))
    return (ll + lp).mean(0) + entropy


def decoder_draws(decoder, transform, b: Batch, n: int, log_sd, rng: np.random.Generator, outcome_dropout: float = 0.0):
    """Simulated (u, x, mask, y, y_mask, c) from the frozen decoder with masks/conditions of real tests
    (the outcome hidden in a share ``outcome_dropout`` of the draws)."""
    u = torch.as_tensor(transform.sample_u(n, rng), dtype=DT)
    idx = torch.as_tensor(rng.integers(0, len(b), n))
    c, mask, y_mask = b.c[idx].to(DT), b.mask[idx].to(DT), b.y_mask[idx].to(DT)
    y_mask = y_mask * torch.as_tensor(rng.uniform(size=n) >= outcome_dropout, dtype=DT)
    with torch.no_grad():
        out = decoder.torch_module(u, c)
        var = torch.exp(2 * out["log_scale"]) + torch.exp(2 * log_sd)[torch.as_tensor(decoder.layout.channel_index())]
        x = out["mean"] + var.sqrt() * torch.as_tensor(rng.standard_normal(out["mean"].shape))
        y = (torch.as_tensor(rng.uniform(size=n)) < torch.sigmoid(out["logit_runaway"])).to(DT)
    return u, x * mask, mask, y, y_mask, c


def fit_encoder(decoder: FrozenDecoder, real: xr.Dataset | Batch, config: EncoderConfig | None = None,
                generator: torch.Generator | None = None, verbose: bool = False) -> EncoderFit:
    """Train q(θ | x, c) on real tests ``real`` (dataset in the "Real data" layout, or a `Batch`).

    The decoder stays frozen (its parameters have ``requires_grad=False`` and are never handed to the
    optimiser). Returns the best of ``config.restarts`` fits by ELBO.
    """
    from sim2real.io import hash_dataset

    cfg = config or EncoderConfig()
    g = generator if generator is not None else torch.Generator().manual_seed(cfg.seed)
    b = real if isinstance(real, Batch) else real_to_batch(real, decoder.layout)
    real_hash = hash_dataset(real) if isinstance(real, xr.Dataset) else None
    transform = decoder.transform
    summary = Summary(decoder, cfg.ridge)
    s_real = summary(b.x, b.mask, b.y, b.y_mask, b.c)
    # the real tests once more with their outcome hidden (a new test is inferred before it is scored)
    b_fit = _with_hidden_outcomes(b) if cfg.outcome_dropout > 0 and bool((b.y_mask > 0).any()) else b
    s_fit = summary(b_fit.x, b_fit.mask, b_fit.y, b_fit.y_mask, b_fit.c)
    n_chan = len(decoder.layout.channels)
    best = None
    elbos = []
    for r in range(cfg.restarts):
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=g))
        gr = torch.Generator().manual_seed(seed)
        rng = np.random.default_rng(seed)
        net = EncoderNet(s_real.shape[1], len(transform.names), cfg.width, cfg.depth, gr).to(DT)
        log_sd = torch.full((n_chan,), math.log(0.02), dtype=DT, requires_grad=cfg.discrepancy)
        # (1) amortised initialisation on decoder draws (no discrepancy yet)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
        for step in range(cfg.pretrain_steps):
            u, x, m, y, ym, c = decoder_draws(decoder, transform, b, cfg.pretrain_batch, log_sd.detach(), rng,
                                               cfg.outcome_dropout)
            loc, L = net(summary(x, m, y, ym, c))
            loss = -torch.distributions.MultivariateNormal(loc, scale_tril=L).log_prob(u).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        # (2) ELBO on the real tests (+ discrepancy)
        params = list(net.parameters()) + ([log_sd] if cfg.discrepancy else [])
        opt = torch.optim.Adam(params, lr=cfg.lr / 2)
        for step in range(cfg.steps):
            loc, L = net(s_fit)
            elbo = elbo_terms(decoder, transform, loc, L, b_fit, log_sd, cfg.mc_samples, gr, cfg.likelihood)
            sd = torch.exp(log_sd)
            log_prior_sd = (-0.5 * (sd / cfg.discrepancy_prior_scale) ** 2 + log_sd).sum()  # half-normal, log-param
            loss = -(elbo.mean() + log_prior_sd / len(b))  # the mean over both copies counts each test once
            opt.zero_grad()
            loss.backward()
            opt.step()
            if verbose and step % 100 == 0:
                print(f"restart {r} step {step:4d}  ELBO {float(elbo.mean().detach()):10.3f}")
        with torch.no_grad():
            loc, L = net(s_real)
            e = float(elbo_terms(decoder, transform, loc, L, b, log_sd, cfg.eval_samples,
                                 torch.Generator().manual_seed(cfg.seed), cfg.likelihood).mean())
        elbos.append(e)
        if best is None or e > best[0]:
            best = (e, copy.deepcopy(net), log_sd.detach().clone())
    return EncoderFit(decoder, best[1], summary, b, best[2], cfg, elbos, real_hash)


def _with_hidden_outcomes(b: Batch) -> Batch:
    """``b`` followed by a copy of its tests with the outcome masked: (2n) rows."""
    return Batch(torch.cat([b.x, b.x]), torch.cat([b.mask, b.mask]), torch.cat([b.c, b.c]), torch.cat([b.y, b.y]),
                 torch.cat([b.y_mask, torch.zeros_like(b.y_mask)]), None, np.concatenate([b.ids, b.ids]))
