"""Small torch networks of the cVAE: the physics decoder p(x | u, c) and the encoder q(u | x, c).

All layers are plain `Linear` + SiLU so the decoder can be re-expressed exactly in JAX and PyTensor
(`sim2real.export`). Weights are initialised from an explicit `torch.Generator` (no global RNG).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from sim2real.gp import GP_KEYS, gp_replace


def init_linear(layer: nn.Linear, generator: torch.Generator, gain: float = 1.0) -> nn.Linear:
    """Uniform fan-in init (PyTorch's default scale) from ``generator``."""
    bound = gain / math.sqrt(layer.in_features)
    with torch.no_grad():
        layer.weight.copy_((torch.rand(layer.weight.shape, generator=generator) * 2 - 1) * bound)
        layer.bias.copy_((torch.rand(layer.bias.shape, generator=generator) * 2 - 1) * bound)
    return layer


def mlp(d_in: int, width: int, depth: int, generator: torch.Generator) -> nn.Sequential:
    """``depth`` hidden layers of ``width`` with SiLU."""
    layers, d = [], d_in
    for _ in range(depth):
        layers += [init_linear(nn.Linear(d, width), generator), nn.SiLU()]
        d = width
    return nn.Sequential(*layers)


class DecoderNet(nn.Module):
    """p(x | u, c): mean and log-scale of every normalised observable feature + runaway logit.

    ``mean = coef(h) @ basis + basis_offset`` where ``basis`` (n_coef, n_obs) holds a PCA basis per curve
    channel and unit rows for scalars; ``log_scale = chan(h) @ expand + log_scale_bias`` with one
    θ-dependent log scale per channel (``expand`` (n_chan, n_obs) one-hot) plus a learned per-feature
    offset.

    Parameters
    ----------
    n_par, n_cond : sizes of u and c.
    basis : (n_coef, n_obs) array; basis_offset : (n_obs,) array.
    expand : (n_chan, n_obs) one-hot array.
    cond_loc, cond_scale : (n_cond,) z-scoring of c [SI].
    """

    def __init__(self, n_par: int, n_cond: int, basis: np.ndarray, basis_offset: np.ndarray, expand: np.ndarray,
                 cond_loc: np.ndarray, cond_scale: np.ndarray, width: int, depth: int, generator: torch.Generator,
                 gp: dict[str, np.ndarray] | None = None):
        super().__init__()
        self.body = mlp(n_par + n_cond, width, depth, generator)
        self.coef = init_linear(nn.Linear(width, basis.shape[0]), generator)
        self.chan = init_linear(nn.Linear(width, expand.shape[0]), generator, gain=0.1)
        self.runaway = init_linear(nn.Linear(width, 1), generator)
        # linear skip of the runaway logit on the inputs (a "wide & deep" head): the runaway boundary of
        # the coupled chain is close to linear in log short power, SOC, log h (a logistic regression on
        # the 192-run default ensemble reaches held-out AUC 0.93, the MLP head alone 0.73); starts at 0
        self.runaway_skip = nn.Linear(n_par + n_cond, 1, bias=False)
        with torch.no_grad():
            self.runaway_skip.weight.zero_()
        self.log_scale_bias = nn.Parameter(torch.full((basis.shape[1],), -1.0))
        f = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float32))
        self.register_buffer("basis", f(basis))
        self.register_buffer("basis_offset", f(basis_offset))
        self.register_buffer("expand", f(expand))
        self.register_buffer("cond_loc", f(cond_loc))
        self.register_buffer("cond_scale", f(cond_scale))
        self.n_par, self.n_cond, self.width, self.depth = n_par, n_cond, width, depth
        self.set_gp(gp)

    def set_gp(self, gp: dict[str, np.ndarray] | None) -> None:
        """Register the Gaussian-process emulator of scalar observables (`sim2real.gp`; keys `GP_KEYS`), or none."""
        self.has_gp = gp is not None
        for k in GP_KEYS:
            if gp is not None:
                self.register_buffer(k, torch.as_tensor(np.asarray(gp[k], dtype=np.float32)))

    def forward(self, u: torch.Tensor, c: torch.Tensor, detach_scale: bool = False) -> dict[str, torch.Tensor]:
        """u (..., n_par) [1], c (..., n_cond) [SI] → dict(mean, log_scale (..., n_obs), logit_runaway (...)).

        ``detach_scale``: the log scale from the body's features with their gradient stopped (training by the
        faithful loss, `sim2real.decoder.DecoderConfig`); the same values.
        """
        dt = self.basis.dtype
        cn = (c.to(dt) - self.cond_loc) / self.cond_scale
        x = torch.cat([u.to(dt), cn], dim=-1)
        h = self.body(x)
        mean = self.coef(h) @ self.basis + self.basis_offset
        log_scale = self.chan(h.detach() if detach_scale else h) @ self.expand + self.log_scale_bias
        if self.has_gp:
            mean, log_scale = gp_replace({k: getattr(self, k) for k in GP_KEYS}, x, mean, log_scale, torch)
        return {"mean": mean, "log_scale": log_scale,
                "logit_runaway": (self.runaway(h) + self.runaway_skip(x)).squeeze(-1)}

    @classmethod
    def from_weights(cls, w: dict[str, np.ndarray], width: int, depth: int) -> "DecoderNet":
        """The module of the export-format weights ``w`` (`weights`; the arrays of ``decoder.npz``), float32."""
        n_in = w["body0_w"].shape[1] if depth else w["coef_w"].shape[1]
        n_cond = w["cond_loc"].shape[0]
        gp = {k: w[k] for k in GP_KEYS} if "gp_alpha" in w else None
        net = cls(n_in - n_cond, n_cond, w["basis"], w["basis_offset"], w["expand"], w["cond_loc"], w["cond_scale"],
                  width, depth, torch.Generator().manual_seed(0), gp=gp)
        sd = {}
        for i in range(depth):
            sd[f"body.{2 * i}.weight"], sd[f"body.{2 * i}.bias"] = w[f"body{i}_w"], w[f"body{i}_b"]
        for k in ("coef", "chan", "runaway"):
            sd[f"{k}.weight"], sd[f"{k}.bias"] = w[f"{k}_w"], w[f"{k}_b"]
        sd["runaway_skip.weight"] = w["runaway_skip_w"]
        for k in ("log_scale_bias", "basis", "basis_offset", "expand", "cond_loc", "cond_scale", *(gp or {})):
            sd[k] = w[k]
        net.load_state_dict({k: torch.as_tensor(v, dtype=torch.float32) for k, v in sd.items()})
        return net

    def weights(self) -> dict[str, np.ndarray]:
        """All weights and buffers as float64 numpy arrays (the export format)."""
        out = {}
        for i, layer in enumerate(m for m in self.body if isinstance(m, nn.Linear)):
            out[f"body{i}_w"], out[f"body{i}_b"] = layer.weight, layer.bias
        for k in ("coef", "chan", "runaway"):
            out[f"{k}_w"], out[f"{k}_b"] = getattr(self, k).weight, getattr(self, k).bias
        out["runaway_skip_w"] = self.runaway_skip.weight
        for k in ("log_scale_bias", "basis", "basis_offset", "expand", "cond_loc", "cond_scale",
                  *(GP_KEYS if self.has_gp else ())):
            out[k] = getattr(self, k)
        return {k: v.detach().cpu().double().numpy().copy() for k, v in out.items()}


class EncoderNet(nn.Module):
    """q(u | x, c): full-covariance Gaussian in u (mean, lower-triangular scale).

    Input summary: ridge projections of each masked curve onto the decoder's PCA basis, masked scalars,
    masks of scalars, observed fraction of each curve, the runaway flag and its mask, normalised c.
    """

    def __init__(self, d_in: int, n_par: int, width: int, depth: int, generator: torch.Generator):
        super().__init__()
        self.body = mlp(d_in, width, depth, generator)
        self.loc = init_linear(nn.Linear(width, n_par), generator)
        self.tril = init_linear(nn.Linear(width, n_par * (n_par + 1) // 2), generator, gain=0.1)
        self.n_par = n_par
        self.register_buffer("_rows", torch.tril_indices(n_par, n_par)[0])
        self.register_buffer("_cols", torch.tril_indices(n_par, n_par)[1])

    def forward(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """s (n, d_in) → loc (n, n_par), scale_tril (n, n_par, n_par)."""
        h = self.body(s)
        raw = self.tril(h)
        L = torch.zeros(s.shape[0], self.n_par, self.n_par, dtype=s.dtype)
        L[:, self._rows, self._cols] = raw
        diag = torch.nn.functional.softplus(torch.diagonal(L, dim1=-2, dim2=-1) - 1.0) + 1e-3
        L = torch.tril(L, -1) + torch.diag_embed(diag)
        return self.loc(h), L
