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

import numpy as np
import torch
import xarray as xr

from sim2real.bridge import (Batch, ObservableLayout, ThetaTransform, build_layout, ensemble_to_batch,
                             priors_from_simulator)
from sim2real.frozen import DecoderConfig, FrozenDecoder
from sim2real.networks import DecoderNet

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
        dec = FrozenDecoder.from_module(net, layout, self.transform, cfg, sizes, hashes={"ensemble": hash_dataset(ens)})
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
