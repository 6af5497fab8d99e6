"""The frozen decoder p(x | θ, c): the trained decoder's weights with its normalisers, evaluated in JAX, PyTensor and
NumPy (and in torch, its reference, built on demand).

The builder that trains it on simulations is `sim2real.decoder.FrozenDecoderCVAE`; `sim2real.io.load_model` rebuilds it
from a model directory without torch.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr

from sim2real.bridge import ObservableLayout, ThetaTransform

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


class FrozenDecoder:
    """A trained, frozen decoder with its normalisers: the artefact of `FrozenDecoderCVAE.train`.

    Attributes
    ----------
    parameter_names, condition_names, observable_names : names in column order.
    layout : `ObservableLayout` (normalisers of x and c); transform : `ThetaTransform` (θ ↔ u).
    weights : the export-format float64 arrays (`sim2real.networks.DecoderNet.weights`) every evaluation reads.
    torch_module : the `DecoderNet` (float64, eval mode, ``requires_grad`` off), built from ``weights`` on first use:
        the Bayesian stages evaluate the decoder in JAX and PyTensor only, and a process that loads it from a model
        directory does not import torch (2–6 CPU-s per spawned cross-validation or simulator-check worker).
    metrics : dict of held-out metrics (NRMSE per observable, Brier, AUC, ...).
    error_factor : (n_coef, n_obs) static emulator-error factor F (normalised units): the decoder's errors
        along curves are correlated; on held-out simulations their projections on each curve's PCA basis
        have sd τ_k, and ``F = diag(τ) @ basis`` (zero rows for scalars). A likelihood that treats the
        error as ``N(0, Fᵀ F + diag(max(σ² − diag(FᵀF), 0.05 σ²)))`` keeps each point's variance σ²
        and adds the correlation (`sim2real.encoder`, ``likelihood="lowrank"``).
    """

    def __init__(self, weights: Mapping[str, np.ndarray], layout: ObservableLayout, transform: ThetaTransform,
                 config: DecoderConfig, component_sizes: Sequence[int], metrics: Mapping | None = None,
                 hashes: Mapping | None = None, torch_module=None):
        self._weights = {k: np.asarray(v, np.float64) for k, v in weights.items()}
        self._torch_module = None if torch_module is None else _frozen(torch_module)
        self.layout, self.transform, self.config = layout, transform, config
        self.component_sizes = list(component_sizes)
        self.error_factor = np.zeros((sum(self.component_sizes), layout.n_obs))
        self.metrics = dict(metrics or {})
        self.hashes = dict(hashes or {})
        self._jax_fns: dict[str, object] = {}

    @classmethod
    def from_module(cls, net, layout: ObservableLayout, transform: ThetaTransform, config: DecoderConfig,
                    component_sizes: Sequence[int], metrics: Mapping | None = None,
                    hashes: Mapping | None = None) -> "FrozenDecoder":
        """Freeze a trained `sim2real.networks.DecoderNet` (float64, eval mode): its weights are the decoder's."""
        net = _frozen(net)
        return cls(net.weights(), layout, transform, config, component_sizes, metrics, hashes, torch_module=net)

    @property
    def torch_module(self):
        """The `DecoderNet` of ``weights`` in float64 (built on first use)."""
        if self._torch_module is None:
            from sim2real.networks import DecoderNet

            self._torch_module = _frozen(DecoderNet.from_weights(self._weights, self.config.width, self.config.depth))
        return self._torch_module

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
        return self._weights

    # -- evaluation -----------------------------------------------------------------------------------
    def torch_apply(self, u, c) -> dict[str, np.ndarray]:
        """Reference evaluation in torch; u (..., n_par), c (..., n_cond) [SI] → numpy dict (normalised x)."""
        import torch

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


def _frozen(net):
    """``net`` in float64 and eval mode with ``requires_grad`` off: the reference the exports match."""
    net = net.double().eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net
