"""The physics decoder p(x | θ, c) of the cVAE, trained on simulations only, then frozen.

The latent space of the VAE is pinned to the simulator's physical parameters (in the unconstrained,
z-scored space ``u`` of `sim2real.bridge.ThetaTransform`); following Hwasser et al.'s "informed
regulariser", the decoder learns the simulator and is frozen before the encoder sees real tests.

Example
-------
>>> dec = FrozenDecoderCVAE(sim).append_simulations(ensemble).train()   # doctest: +SKIP
>>> fit = dec.fit_encoder(real)                                          # doctest: +SKIP
>>> dec.save("runs/study/model")                                         # doctest: +SKIP
"""
from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import xarray as xr

from sim2real.bridge import (Batch, ObservableLayout, ThetaTransform, build_layout, ensemble_to_batch,
                             priors_from_simulator)
from sim2real.networks import DecoderNet

#: `FrozenDecoder.numpy_apply`: rows per jitted call at most, and the smallest padded call (powers of two between)
CHUNK_ROWS, MIN_ROWS = 1 << 16, 1 << 8


@dataclass(frozen=True)
class DecoderConfig:
    """Decoder architecture and training settings.

    width, depth : hidden layers of the MLP.
    max_components, explained_variance : PCA basis per curve channel (components kept until the
        explained variance is reached, at most ``max_components``).
    epochs, batch_size, lr, weight_decay : Adam training; ``patience`` epochs without validation
        improvement stop training (best weights kept).
    val_fraction : share of simulations held out (used for early stopping and the metrics).
    gp_observables : scalar observables whose means and log scales come from a Gaussian-process emulator fitted
        on the training simulations (`sim2real.gp`) instead of the MLP's heads.
    loss : ``"nll"``, the heteroscedastic Gaussian likelihood of mean and scale together; or ``"faithful"``, the
        mean (and the body) by squared error and the scale head by the likelihood with the mean and the body's
        features held fixed (Stirn et al., "Faithful heteroscedastic regression with neural networks", AISTATS
        2023): under the joint likelihood a network explains hard regions by a large scale instead of fitting
        them, and early stopping on the summed loss stops the means early (on the default ensemble held-out R²
        0.79 / 0.36 / 0.21 for onset force, voltage drop, rise rate against 0.87 / 0.84 / 0.70 by squared
        error; measured).
    seed : seeds the `torch.Generator` for init, split and shuffling.
    """

    width: int = 64
    depth: int = 2
    max_components: int = 12
    explained_variance: float = 0.9995
    epochs: int = 400
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.0
    val_fraction: float = 0.15
    patience: int = 60
    gp_observables: tuple[str, ...] = ()
    loss: str = "nll"
    seed: int = 0

    def __post_init__(self):
        if self.loss not in ("nll", "faithful"):
            raise ValueError(f"DecoderConfig.loss must be 'nll' or 'faithful', got {self.loss!r}")


def gaussian_nll(x: torch.Tensor, mask: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor,
                 extra_var: torch.Tensor | None = None) -> torch.Tensor:
    """Masked Gaussian negative log likelihood summed over features, ``(..., n_obs) → (...)``."""
    var = torch.exp(2 * log_scale)
    if extra_var is not None:
        var = var + extra_var
    nll = 0.5 * ((x - mean) ** 2 / var + torch.log(var) + math.log(2 * math.pi))
    return (nll * mask).sum(-1)


def bernoulli_nll(y: torch.Tensor, y_mask: torch.Tensor, logit: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.binary_cross_entropy_with_logits(logit, y.expand_as(logit), reduction="none") * y_mask


def _pca_basis(batch: Batch, layout: ObservableLayout, cfg: DecoderConfig) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Stack per-channel PCA bases (curves) and unit vectors (scalars) → basis (n_coef, n_obs), offset, sizes."""
    X, M = batch.x.double().numpy(), batch.mask.numpy() > 0
    rows, offset, sizes = [], np.zeros(layout.n_obs), []
    for ch, sl in zip(layout.channels, layout.slices().values()):
        if ch.dim is None:
            r = np.zeros((1, layout.n_obs))
            r[0, sl] = 1.0
            rows.append(r)
            sizes.append(1)
            continue
        block, m = X[:, sl], M[:, sl]
        full = m.all(1)
        Z = block[full] if full.sum() > 2 * ch.size else np.where(m, block, 0.0)
        mu = Z.mean(0)
        _, s, vt = np.linalg.svd(Z - mu, full_matrices=False)
        frac = np.cumsum(s**2) / max((s**2).sum(), 1e-300)
        k = int(min(cfg.max_components, np.searchsorted(frac, cfg.explained_variance) + 1, vt.shape[0]))
        r = np.zeros((k, layout.n_obs))
        r[:, sl] = vt[:k]
        rows.append(r)
        offset[sl] = mu
        sizes.append(k)
    return np.concatenate(rows), offset, sizes


class FrozenDecoder:
    """A trained, frozen decoder with its normalisers: the artefact of `FrozenDecoderCVAE.train`.

    Attributes
    ----------
    parameter_names, condition_names, observable_names : names in column order.
    layout : `ObservableLayout` (normalisers of x and c); transform : `ThetaTransform` (θ ↔ u).
    torch_module : the `DecoderNet` (float64, eval mode, ``requires_grad`` off).
    metrics : dict of held-out metrics (NRMSE per observable, Brier, AUC, ...).
    error_factor : (n_coef, n_obs) static emulator-error factor F (normalised units): the decoder's errors
        along curves are correlated; on held-out simulations their projections on each curve's PCA basis
        have sd τ_k, and ``F = diag(τ) @ basis`` (zero rows for scalars). A likelihood that treats the
        error as ``N(0, Fᵀ F + diag(max(σ² − diag(FᵀF), 0.05 σ²)))`` keeps each point's variance σ²
        and adds the correlation (`sim2real.encoder`, ``likelihood="lowrank"``).
    """

    def __init__(self, net: DecoderNet, layout: ObservableLayout, transform: ThetaTransform,
                 config: DecoderConfig, component_sizes: Sequence[int], metrics: Mapping | None = None,
                 hashes: Mapping | None = None):
        self.torch_module = net.double().eval()  # frozen in float64: the reference the exports match
        for p in self.torch_module.parameters():
            p.requires_grad_(False)
        self.layout, self.transform, self.config = layout, transform, config
        self.component_sizes = list(component_sizes)
        self.error_factor = np.zeros((sum(self.component_sizes), layout.n_obs))
        self.metrics = dict(metrics or {})
        self.hashes = dict(hashes or {})
        self._weights: dict[str, np.ndarray] | None = None
        self._jax_fns: dict[str, object] = {}

    # -- names and maps -----------------------------------------------------------------------------
    @property
    def parameter_names(self) -> list[str]:
        return list(self.transform.names)

    @property
    def condition_names(self) -> list[str]:
        return list(self.layout.condition_names)

    @property
    def observable_names(self) -> list[str]:
        return self.layout.observable_names

    def to_unconstrained(self, theta: np.ndarray) -> np.ndarray:
        """θ (..., n_par) [SI] → u (..., n_par)."""
        return self.transform.to_unconstrained(theta)

    def from_unconstrained(self, u: np.ndarray) -> np.ndarray:
        """u (..., n_par) → θ (..., n_par) [SI]."""
        return self.transform.from_unconstrained(u)

    @property
    def weights(self) -> dict[str, np.ndarray]:
        """Decoder weights as float64 numpy arrays (input of the JAX / PyTensor functions)."""
        if self._weights is None:
            self._weights = self.torch_module.weights()
        return self._weights

    # -- evaluation -----------------------------------------------------------------------------------
    def torch_apply(self, u, c) -> dict[str, np.ndarray]:
        """Reference evaluation in torch; u (..., n_par), c (..., n_cond) [SI] → numpy dict (normalised x)."""
        with torch.no_grad():
            out = self.torch_module(torch.as_tensor(np.asarray(u, np.float64)), torch.as_tensor(np.asarray(c, np.float64)))
        return {k: v.double().numpy() for k, v in out.items()}

    def jax_apply(self, u, c):
        """Pure-JAX decoder (jit/grad-able); see `sim2real.export.jax_decoder`."""
        import jax.numpy as jnp

        from sim2real.export import jax_decoder
        key = str(jnp.asarray(0.0).dtype)  # float32, or float64 under jax.enable_x64
        if key not in self._jax_fns:
            self._jax_fns[key] = jax_decoder(self.weights, self.config.depth)
        return self._jax_fns[key](u, c)

    def numpy_apply(self, output: str | None = None, bounds: tuple[np.ndarray, np.ndarray] | None = None):
        """The jitted JAX decoder as a NumPy function: ``(u (..., n_par), c (..., n_cond))`` → float64 arrays of the
        broadcast leading shape (a dict like `jax_apply`, or its one ``output``, e.g. ``"logit_runaway"``).
        ``bounds``: ``(lower, upper)`` ``(n_par,)`` that ``u`` is clipped to inside the jitted function.

        The leading dimensions are flattened into rows, padded to a power of two (at least `MIN_ROWS`) and run in
        chunks of `CHUNK_ROWS`, so that one jitted function compiles once per size class instead of once per input
        shape: the cross-validation stage compiled the decoder anew for every fold's test count (28 compilations,
        ~30 s of its main process; measured)."""
        import jax
        import jax.numpy as jnp

        lower, upper = (None, None) if bounds is None else (np.asarray(b, np.float32) for b in bounds)

        def f(u, c):
            out = self.jax_apply(u if lower is None else jnp.clip(u, lower, upper), c)
            return out if output is None else out[output]

        jitted = jax.jit(f)

        def apply(u, c):
            u, c = np.asarray(u, np.float32), np.asarray(c, np.float32)
            lead = np.broadcast_shapes(u.shape[:-1], c.shape[:-1])
            u = np.broadcast_to(u, (*lead, u.shape[-1])).reshape(-1, u.shape[-1])
            c = np.broadcast_to(c, (*lead, c.shape[-1])).reshape(-1, c.shape[-1])
            n = u.shape[0]
            size = CHUNK_ROWS if n > CHUNK_ROWS else max(MIN_ROWS, 1 << max(n - 1, 0).bit_length())
            parts = []
            for i in range(0, max(n, 1), size):
                k = min(size, n - i)
                pad = ((0, size - k), (0, 0))
                res = jitted(np.pad(u[i:i + k], pad), np.pad(c[i:i + k], pad))
                parts.append(jax.tree_util.tree_map(lambda a, k=k: np.asarray(a, float)[:k], res))
            res = jax.tree_util.tree_map(lambda *a: np.concatenate(a)[:n], *parts)
            return jax.tree_util.tree_map(lambda a: a.reshape(*lead, *a.shape[1:]), res)

        return apply

    def pytensor_apply(self, u, c):
        """The same graph in PyTensor (symbolic or numpy inputs); see `sim2real.export.pytensor_decoder`."""
        from sim2real.export import pytensor_decoder
        return pytensor_decoder(self.weights, self.config.depth)(u, c)

    def predict(self, theta: np.ndarray, condition: np.ndarray) -> xr.Dataset:
        """Predictive mean/sd of every observable in SI units and P(runaway) for θ (n, n_par), c (n, n_cond)."""
        out = self.torch_apply(self.to_unconstrained(theta), condition)
        mean = self.layout.denormalise(out["mean"])
        sd = self.layout.sd_si(out["mean"], out["log_scale"])  # a logit share: delta method
        ds = xr.Dataset(coords={"case": np.arange(mean.shape[0])})
        for ch, sl in zip(self.layout.channels, self.layout.slices().values()):
            dims = ("case",) if ch.dim is None else ("case", ch.dim)
            sq = (lambda a: a[:, sl.start]) if ch.dim is None else (lambda a: a[:, sl])
            ds[ch.name] = (dims, sq(mean), {"units": ch.units, "long_name": f"decoder mean of {ch.name}"})
            ds[ch.name + "_sd"] = (dims, sq(sd), {"units": ch.units, "long_name": f"decoder sd of {ch.name}"})
            if ch.dim is not None:
                ds = ds.assign_coords({ch.dim: np.asarray(ch.grid)})
        ds["p_runaway"] = ("case", 1 / (1 + np.exp(-out["logit_runaway"])), {"units": "1", "long_name": "P(thermal runaway)"})
        return ds

    # -- next steps ------------------------------------------------------------------------------------
    def fit_encoder(self, real: xr.Dataset, config=None, **kw):
        """Train the encoder q(θ | x, c) on real tests with this frozen decoder (`sim2real.encoder.fit_encoder`)."""
        from sim2real.encoder import fit_encoder
        return fit_encoder(self, real, config, **kw)

    def save(self, model_dir, encoder=None) -> None:
        """Write the model directory (`sim2real.io.save_model`)."""
        from sim2real.io import save_model
        save_model(model_dir, self, encoder)


class FrozenDecoderCVAE:
    """Builder: ``FrozenDecoderCVAE(sim).append_simulations(ens).train() -> FrozenDecoder``.

    Parameters
    ----------
    parameters : a `simulators.Simulator` (class or instance), or ``(names, priors)``.
    observables : variable names to model (default: every float observable in the ensemble).
    config : `DecoderConfig`.
    condition_defaults : condition values for real tests that lack them (default: ensemble median).
    """

    def __init__(self, parameters, observables: Sequence[str] | None = None, config: DecoderConfig = DecoderConfig(),
                 condition_defaults: Mapping[str, float] | None = None):
        names, priors = priors_from_simulator(parameters) if hasattr(parameters, "parameters") else parameters
        if hasattr(parameters, "conditions") and condition_defaults is None:
            condition_defaults = {c.name: c.default for c in parameters.conditions}
        self.transform = ThetaTransform.from_priors(names, priors)
        self.observables, self.config, self.condition_defaults = observables, config, condition_defaults
        self._ensembles: list[xr.Dataset] = []

    def append_simulations(self, ensemble: xr.Dataset) -> "FrozenDecoderCVAE":
        """Add simulations in the ensemble-store layout (in memory or `open_ensemble(path)`); returns self."""
        for v in ("theta", "condition"):
            if v not in ensemble:
                raise ValueError(f"ensemble lacks `{v}`; expected the store layout of docs/contracts.md")
        self._ensembles.append(ensemble)
        return self

    def train(self, generator: torch.Generator | None = None, verbose: bool = False) -> FrozenDecoder:
        """Fit the decoder on the appended simulations, evaluate on the held-out split, freeze, return it."""
        from sim2real.io import hash_dataset
        from sim2real.validation import decoder_metrics

        if not self._ensembles:
            raise RuntimeError("no simulations: call append_simulations(ensemble) first")
        ens = self._ensembles[0] if len(self._ensembles) == 1 else xr.concat(self._ensembles, dim="sample")
        cfg = self.config
        g = generator if generator is not None else torch.Generator().manual_seed(cfg.seed)
        layout = build_layout(ens, self.observables, self.condition_defaults)
        data = ensemble_to_batch(ens, layout, self.transform)
        n = len(data)
        perm = torch.randperm(n, generator=g)
        n_val = max(1, int(round(cfg.val_fraction * n)))
        val, tr = data.subset(perm[:n_val]), data.subset(perm[n_val:])
        basis, offset, sizes = _pca_basis(tr, layout, cfg)
        expand = np.eye(len(layout.channels))[layout.channel_index()].T
        net = DecoderNet(len(self.transform.names), len(layout.condition_names), basis, offset, expand,
                         np.asarray(layout.condition_loc), np.asarray(layout.condition_scale), cfg.width, cfg.depth, g)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs)

        faithful = cfg.loss == "faithful"

        def loss_of(b: Batch) -> torch.Tensor:
            out = net(b.u, b.c, detach_scale=faithful)
            if faithful:  # squared error for the mean; the scale head's likelihood sees a fixed mean (docstring)
                fit = 0.5 * ((b.x - out["mean"]) ** 2 * b.mask).sum(-1) + gaussian_nll(
                    b.x, b.mask, out["mean"].detach(), out["log_scale"])
            else:
                fit = gaussian_nll(b.x, b.mask, out["mean"], out["log_scale"])
            return (fit + bernoulli_nll(b.y, b.y_mask, out["logit_runaway"])).mean()

        best, best_state, since = float("inf"), copy.deepcopy(net.state_dict()), 0
        for epoch in range(cfg.epochs):
            net.train()
            order = torch.randperm(len(tr), generator=g)
            for i in range(0, len(tr), cfg.batch_size):
                opt.zero_grad()
                loss = loss_of(tr.subset(order[i:i + cfg.batch_size]))
                loss.backward()
                opt.step()
            sched.step()
            net.eval()
            with torch.no_grad():
                v = float(loss_of(val))
            if v < best - 1e-4:
                best, best_state, since = v, copy.deepcopy(net.state_dict()), 0
            else:
                since += 1
            if verbose and epoch % 20 == 0:
                print(f"epoch {epoch:4d}  train {float(loss):9.3f}  val {v:9.3f}")
            if since >= cfg.patience:
                break
        net.load_state_dict(best_state)
        _refit_runaway_head(net, tr, val, cfg, g)
        if cfg.gp_observables:
            from sim2real.gp import fit_gp_scalars

            net.set_gp(fit_gp_scalars(tr.u.numpy(), layout.normalise_conditions(tr.c.numpy()), tr.x.numpy(),
                                      tr.mask.numpy(), layout, cfg.gp_observables, seed=cfg.seed % 2**32))
        dec = FrozenDecoder(net, layout, self.transform, cfg, sizes,
                            hashes={"ensemble": hash_dataset(ens)})
        dec.error_factor = _error_factor(dec, val)
        dec.metrics = decoder_metrics(dec, val) | {"n_train": len(tr), "n_validation": len(val),
                                                    "epochs": epoch + 1, "validation_loss": best,
                                                    "components": sizes}
        return dec


def _refit_runaway_head(net: DecoderNet, tr: Batch, val: Batch, cfg: DecoderConfig, g: torch.Generator) -> None:
    """Second stage: the runaway head alone (body frozen) on the runaway likelihood, early-stopped on it.

    The joint fit stops when the *summed* validation loss stops improving, which the observables'
    Gaussian terms dominate: the runaway head (a logistic model on the body's features plus its linear
    skip on the inputs) is then under-fitted — held-out AUC 0.78 on the 192-run default ensemble where
    a plain logistic regression on the inputs reaches 0.93. Refitting only the head's weights cannot
    change the observables' predictions.
    """
    params = list(net.runaway.parameters()) + list(net.runaway_skip.parameters())
    opt = torch.optim.Adam(params, lr=cfg.lr)

    def nll(b: Batch) -> torch.Tensor:
        out = net(b.u, b.c)
        return bernoulli_nll(b.y, b.y_mask, out["logit_runaway"]).sum() / b.y_mask.sum().clamp(min=1)

    net.eval()  # no dropout/batch-norm here; eval keeps the body a fixed feature map
    with torch.no_grad():
        best = float(nll(val))
    best_state, since = copy.deepcopy(net.state_dict()), 0
    for _ in range(cfg.epochs):
        order = torch.randperm(len(tr), generator=g)
        for i in range(0, len(tr), cfg.batch_size):
            opt.zero_grad()
            loss = nll(tr.subset(order[i:i + cfg.batch_size]))
            loss.backward()
            opt.step()
        with torch.no_grad():
            v = float(nll(val))
        if v < best - 1e-4:
            best, best_state, since = v, copy.deepcopy(net.state_dict()), 0
        else:
            since += 1
        if since >= cfg.patience:
            break
    net.load_state_dict(best_state)


def _error_factor(dec: "FrozenDecoder", val: Batch) -> np.ndarray:
    """Static emulator-error factor (see `FrozenDecoder`) from held-out residuals projected on the curve bases."""
    w = dec.weights
    B = w["basis"]
    out = dec.torch_apply(val.u.numpy(), val.c.numpy())
    M = val.mask.double().numpy()
    R = (val.x.double().numpy() - out["mean"]) * M
    F = np.zeros_like(B)
    k = 0
    for ch, sl, size in zip(dec.layout.channels, dec.layout.slices().values(), dec.component_sizes):
        if ch.dim is not None:
            full = M[:, sl].all(1)
            if full.sum() >= 5:
                delta = R[full][:, sl] @ B[k:k + size, sl].T  # (n_full, size)
                F[k:k + size] = np.sqrt(np.mean(delta**2, axis=0))[:, None] * B[k:k + size]
        k += size
    return F


def config_dict(cfg) -> dict:
    return asdict(cfg)
