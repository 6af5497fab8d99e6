"""Bridge: ensemble store / real tests → tensors in one observable layout, with normalisers.

Parameter space
---------------
Each physical parameter θ_i is mapped to an unconstrained ``y_i`` and z-scored to ``u_i``:

- bounded priors (``uniform``, ``loguniform``, ``truncnormal``): ``y = logit((g(θ) − g(lo)) / (g(hi) − g(lo)))``
  with ``g = log`` for log-scale priors and ``g = identity`` otherwise,
- ``lognormal``: ``y = log θ``; ``normal``: ``y = θ``,
- ``u = (y − m) / s`` with ``m``, ``s`` the prior mean and standard deviation of ``y`` (by quadrature).

The prior in ``u`` is the *exact* transformed prior density (`ThetaTransform.log_prior_u`), not a
standard normal: for uniform and loguniform priors ``y`` is standard-logistic, for normal/lognormal it
is normal, for truncnormal it is the change of variables of the truncated normal.

Observable space
----------------
`ObservableLayout` lists the observables (curves on the simulator's fixed grid and scalars) flattened
into ``n_obs`` features. Features are normalised by ``x_n = (x − offset) / scale`` with a per-point
offset (the mean curve) and *one* scale per curve channel (its pooled standard deviation), a scale per
scalar. NaN marks missing values; every tensor comes with a mask (1 observed, 0 missing).
"""
from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import xarray as xr
from scipy import special, stats

from simulators.chemistry import CATEGORICAL_CONDITIONS
from simulators.priors import Prior

GRID_DIMS = ("time", "displacement")
OUTCOME_NAME = "thermal_runaway"
#: scalar variables never used as observables (outcomes with their own head, bookkeeping)
EXCLUDED = ("thermal_runaway", "hazard_level", "wall_time", "theta", "condition")
#: Observable scales (a simulator declares one in the variable's ``transform`` attr): a bounded share is
#: modelled on the logit scale, clipped to [SHARE_EPS, 1 - SHARE_EPS], so every predictive quantile lies in (0, 1);
#: a non-negative amount spanning orders of magnitude (a heat) on the shifted log scale ``log(x + shift)`` (``shift``
#: from the ``transform_shift`` attr, in the variable's units), so that a discrepancy or spread is relative for
#: values well above ``shift`` and absolute below it, and every predictive quantile is ≥ 0
TRANSFORMS = ("identity", "logit", "log")
SHARE_EPS = 0.005
#: Hazard level at and above which a test — real without a ``thermal_runaway`` flag, or simulated by a simulator
#: that scores levels (`abuse_fe.hazard`) — counts as runaway
RUNAWAY_HAZARD_LEVEL = 6  # TR = observed hazard level ≥ 6 (pouch rupture and beyond), as in risk.bayes


def simulated_runaway(ds: xr.Dataset) -> np.ndarray:
    """The runaway outcome of simulations (any shape, float 0/1, NaN where unknown): ``hazard_level ≥
    RUNAWAY_HAZARD_LEVEL`` when the simulator scores the dataset's hazard levels — the definition the real tests'
    labels follow (level 6, pouch rupture at a bulk temperature ≥ 160 °C without a cell runaway, is TR, not only
    level 7) — else its ``thermal_runaway`` flag (the databank's outcome), else NaN."""
    if "hazard_level" in ds:
        h = np.asarray(ds["hazard_level"].values, dtype=float)
        return np.where(np.isfinite(h) & (h > 0), (h >= RUNAWAY_HAZARD_LEVEL).astype(float), np.nan)
    if OUTCOME_NAME in ds:
        return np.asarray(ds[OUTCOME_NAME].values, dtype=float)
    return np.full(ds.sizes["sample"], np.nan) if "sample" in ds.dims else np.array(np.nan)


# ----------------------------------------------------------------------------------------------------
# θ ↔ u
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ThetaTransform:
    """Map θ (SI, shape ``(..., n_par)``) ↔ u (unconstrained, z-scored) and give the prior density in u.

    Parameters
    ----------
    names : parameter names, in column order.
    priors : one `simulators.Prior` per parameter.
    """

    names: tuple[str, ...]
    priors: tuple[Prior, ...]
    loc: tuple[float, ...] = field(default=())
    scale: tuple[float, ...] = field(default=())

    @classmethod
    def from_priors(cls, names: Sequence[str], priors: Sequence[Prior]) -> "ThetaTransform":
        """Build the transform; the z-scoring constants are prior moments of ``y`` (midpoint quadrature)."""
        probe = cls(tuple(names), tuple(priors), (0.0,) * len(names), (1.0,) * len(names))
        q = (np.arange(20000) + 0.5) / 20000
        theta = np.column_stack([p.ppf(q) for p in priors])
        y = probe._to_y(theta)
        return cls(tuple(names), tuple(priors), tuple(map(float, y.mean(0))), tuple(map(float, y.std(0))))

    # -- kinds --------------------------------------------------------------------------------------
    def kind(self, i: int) -> str:
        """``"logit"`` (bounded), ``"log"`` (lognormal) or ``"identity"`` (normal) for parameter ``i``."""
        d = self.priors[i].dist
        return "logit" if d in ("uniform", "loguniform", "truncnormal") else ("log" if d == "lognormal" else "identity")

    def _g_bounds(self, i: int) -> tuple[float, float, bool]:
        p = self.priors[i]
        lg = p.log_scale
        return (np.log(p.low), np.log(p.high), True) if lg else (p.low, p.high, False)

    # -- numpy maps ---------------------------------------------------------------------------------
    def _to_y(self, theta: np.ndarray) -> np.ndarray:
        theta = np.asarray(theta, dtype=float)
        y = np.empty_like(theta)
        for i in range(len(self.names)):
            t = theta[..., i]
            k = self.kind(i)
            if k == "logit":
                lo, hi, lg = self._g_bounds(i)
                g = np.log(t) if lg else t
                y[..., i] = special.logit(np.clip((g - lo) / (hi - lo), 1e-12, 1 - 1e-12))
            elif k == "log":
                y[..., i] = np.log(t)
            else:
                y[..., i] = t
        return y

    def to_unconstrained(self, theta: np.ndarray) -> np.ndarray:
        """θ ``(..., n_par)`` [SI] → u ``(..., n_par)`` [1]."""
        return (self._to_y(theta) - np.asarray(self.loc)) / np.asarray(self.scale)

    def from_unconstrained(self, u: np.ndarray) -> np.ndarray:
        """u ``(..., n_par)`` → θ ``(..., n_par)`` [SI]."""
        y = np.asarray(u, dtype=float) * np.asarray(self.scale) + np.asarray(self.loc)
        theta = np.empty_like(y)
        for i in range(len(self.names)):
            k = self.kind(i)
            if k == "logit":
                lo, hi, lg = self._g_bounds(i)
                g = lo + (hi - lo) * special.expit(y[..., i])
                theta[..., i] = np.exp(g) if lg else g
            elif k == "log":
                theta[..., i] = np.exp(y[..., i])
            else:
                theta[..., i] = y[..., i]
        return theta

    def sample_u(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` prior draws in u, shape ``(n, n_par)``."""
        theta = np.column_stack([p.sample(rng, n) for p in self.priors])
        return self.to_unconstrained(theta)

    # -- prior density in u (torch, differentiable) ------------------------------------------------
    def log_prior_u(self, u: torch.Tensor) -> torch.Tensor:
        """Exact log prior density of u, ``(..., n_par) → (...)``: log p_θ(θ(u)) + log |dθ/du|."""
        import torch

        loc = torch.as_tensor(self.loc, dtype=u.dtype)
        scale = torch.as_tensor(self.scale, dtype=u.dtype)
        y = u * scale + loc
        out = torch.log(scale).sum().expand(u.shape[:-1]).clone()
        for i, p in enumerate(self.priors):
            yi = y[..., i]
            if p.dist in ("uniform", "loguniform"):
                # g(θ) uniform on [lo, hi] ⇒ y standard logistic
                out = out + torch.nn.functional.logsigmoid(yi) + torch.nn.functional.logsigmoid(-yi)
            elif p.dist == "truncnormal":
                lo, hi, _ = self._g_bounds(i)
                s = torch.sigmoid(yi)
                t = lo + (hi - lo) * s
                z = (t - p.mu) / p.sigma
                lognorm = float(np.log(p.sigma) + np.log(stats.norm.cdf((hi - p.mu) / p.sigma)
                                                         - stats.norm.cdf((lo - p.mu) / p.sigma)))
                out = out - 0.5 * z**2 - 0.5 * np.log(2 * np.pi) - lognorm + np.log(hi - lo) \
                    + torch.nn.functional.logsigmoid(yi) + torch.nn.functional.logsigmoid(-yi)
            else:  # normal in y (normal: y = θ; lognormal: y = log θ with mu, sigma of log θ)
                out = out - 0.5 * ((yi - p.mu) / p.sigma) ** 2 - np.log(p.sigma) - 0.5 * np.log(2 * np.pi)
        return out

    def to_json(self) -> dict:
        return {"names": list(self.names), "loc": list(self.loc), "scale": list(self.scale),
                "priors": [{k: getattr(p, k) for k in ("dist", "low", "high", "mu", "sigma")} for p in self.priors]}

    @classmethod
    def from_json(cls, d: Mapping) -> "ThetaTransform":
        return cls(tuple(d["names"]), tuple(Prior(**p) for p in d["priors"]), tuple(d["loc"]), tuple(d["scale"]))


# ----------------------------------------------------------------------------------------------------
# observables
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Channel:
    """One observable variable: a curve on ``grid`` (dim ``dim``) or a scalar (``dim is None``).

    ``transform`` is the scale the decoder models it on (`TRANSFORMS`): ``"logit"`` for a share in (0, 1),
    ``"log"`` for ``log(x + shift)`` of a non-negative amount (``shift`` > 0, in ``units``).
    """

    name: str
    units: str
    dim: str | None = None
    grid: tuple[float, ...] = ()
    transform: str = "identity"
    shift: float = 0.0

    def __post_init__(self):
        if self.transform not in TRANSFORMS:
            raise ValueError(f"observable {self.name!r}: transform {self.transform!r} is not one of {TRANSFORMS}")
        if self.transform == "log" and not self.shift > 0:
            raise ValueError(f"observable {self.name!r}: the log transform needs a shift > 0, got {self.shift!r}")

    @property
    def size(self) -> int:
        return len(self.grid) if self.dim else 1

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Values in the observable's units → the modelled scale (NaN stays NaN)."""
        x = np.asarray(x, dtype=float)
        if self.transform == "logit":
            return special.logit(np.clip(x, SHARE_EPS, 1 - SHARE_EPS))
        if self.transform == "log":
            return np.log(np.maximum(x, 0.0) + self.shift)
        return x

    def inverse(self, y: np.ndarray) -> np.ndarray:
        """The modelled scale → the observable's units."""
        y = np.asarray(y, dtype=float)
        if self.transform == "log":
            return np.maximum(np.exp(y) - self.shift, 0.0)
        return special.expit(y) if self.transform == "logit" else y

    def inverse_slope(self, y: np.ndarray) -> np.ndarray:
        """d inverse / dy at ``y`` (an sd on the modelled scale × this ≈ the sd in the observable's units)."""
        y = np.asarray(y, dtype=float)
        if self.transform == "logit":
            p = special.expit(y)
            return p * (1 - p)
        if self.transform == "log":
            return np.exp(y)
        return np.ones_like(y)


@dataclass(frozen=True)
class ObservableLayout:
    """Flattened observable features, their normalisers and the condition normalisers.

    Attributes
    ----------
    channels : the observables, in feature order.
    offset, scale : ``(n_obs,)`` normalisers on the modelled scale (SI units, or the channel's transform of them).
    condition_names, condition_loc, condition_scale : z-scoring of the conditions ``c``.
    """

    channels: tuple[Channel, ...]
    offset: tuple[float, ...]
    scale: tuple[float, ...]
    condition_names: tuple[str, ...]
    condition_loc: tuple[float, ...]
    condition_scale: tuple[float, ...]
    condition_default: tuple[float, ...]

    @property
    def n_obs(self) -> int:
        return sum(c.size for c in self.channels)

    @property
    def observable_names(self) -> list[str]:
        """One name per feature: ``name`` for scalars, ``name[i]`` for curve point ``i``."""
        return [c.name if c.dim is None else f"{c.name}[{i}]" for c in self.channels for i in range(c.size)]

    def slices(self) -> dict[str, slice]:
        out, k = {}, 0
        for c in self.channels:
            out[c.name] = slice(k, k + c.size)
            k += c.size
        return out

    def channel_index(self) -> np.ndarray:
        """``(n_obs,)`` int: the channel of each feature."""
        return np.concatenate([np.full(c.size, j) for j, c in enumerate(self.channels)])

    def _per_channel(self, x: np.ndarray, fn: str) -> np.ndarray:
        if all(c.transform == "identity" for c in self.channels):
            return np.asarray(x, dtype=float)
        out = np.array(x, dtype=float, copy=True)
        for c, sl in zip(self.channels, self.slices().values()):
            out[..., sl] = getattr(c, fn)(out[..., sl])
        return out

    def normalise(self, x: np.ndarray) -> np.ndarray:
        """``(..., n_obs)`` SI values → normalised features (each channel's transform, then z-scored)."""
        return (self._per_channel(x, "forward") - np.asarray(self.offset)) / np.asarray(self.scale)

    def denormalise(self, x_n: np.ndarray) -> np.ndarray:
        """Normalised features → SI values (inverse of `normalise`; a logit share lands in (0, 1))."""
        return self._per_channel(np.asarray(x_n, dtype=float) * np.asarray(self.scale) + np.asarray(self.offset),
                                 "inverse")

    def sd_si(self, mean_n: np.ndarray, log_scale: np.ndarray) -> np.ndarray:
        """The decoder's sd in SI units at normalised mean ``mean_n`` (delta method through the transform)."""
        y = np.asarray(mean_n, dtype=float) * np.asarray(self.scale) + np.asarray(self.offset)
        return np.exp(log_scale) * np.asarray(self.scale) * self._per_channel(y, "inverse_slope")

    def normalise_conditions(self, c: np.ndarray) -> np.ndarray:
        return (np.asarray(c, dtype=float) - np.asarray(self.condition_loc)) / np.asarray(self.condition_scale)

    def to_json(self) -> dict:
        return {"channels": [{"name": c.name, "units": c.units, "dim": c.dim, "grid": list(c.grid),
                              "transform": c.transform} | ({"shift": c.shift} if c.shift else {})
                             for c in self.channels],
                "offset": list(self.offset), "scale": list(self.scale),
                "condition_names": list(self.condition_names), "condition_loc": list(self.condition_loc),
                "condition_scale": list(self.condition_scale), "condition_default": list(self.condition_default)}

    @classmethod
    def from_json(cls, d: Mapping) -> "ObservableLayout":
        ch = tuple(Channel(c["name"], c["units"], c["dim"], tuple(c["grid"]), c.get("transform", "identity"),
                           float(c.get("shift", 0.0))) for c in d["channels"])
        return cls(ch, tuple(d["offset"]), tuple(d["scale"]), tuple(d["condition_names"]),
                   tuple(d["condition_loc"]), tuple(d["condition_scale"]), tuple(d["condition_default"]))


@dataclass(frozen=True)
class Batch:
    """Tensors of one dataset in the layout (float32 unless stated; NumPy arrays of the same dtypes where built with
    ``as_numpy``, `real_to_batch`).

    x : (n, n_obs) normalised observables, 0 where missing.
    mask : (n, n_obs) 1 observed / 0 missing.
    c : (n, n_cond) conditions in SI units (the networks normalise them with the layout's constants).
    y : (n,) runaway outcome in {0, 1}; y_mask : (n,) 1 where known.
    u : (n, n_par) unconstrained parameters, or None (real tests).
    ids : sample or test identifiers.
    """

    x: torch.Tensor
    mask: torch.Tensor
    c: torch.Tensor
    y: torch.Tensor
    y_mask: torch.Tensor
    u: torch.Tensor | None
    ids: np.ndarray

    def __len__(self) -> int:
        return self.x.shape[0]

    def subset(self, idx) -> "Batch":
        import torch

        idx = torch.as_tensor(idx)
        return Batch(self.x[idx], self.mask[idx], self.c[idx], self.y[idx], self.y_mask[idx],
                     None if self.u is None else self.u[idx], self.ids[idx.numpy()])


def _select_channels(ens: xr.Dataset, observables: Sequence[str] | None) -> list[Channel]:
    names = list(observables) if observables is not None else [
        v for v in ens.data_vars if v not in EXCLUDED and ens[v].dtype.kind == "f"
        and (ens[v].dims == ("sample",) or (ens[v].ndim == 2 and ens[v].dims[1] in GRID_DIMS))]
    chans = []
    for v in names:
        da = ens[v]
        if da.dims == ("sample",):
            chans.append(Channel(v, da.attrs.get("units", ""), None, transform=da.attrs.get("transform", "identity"),
                                 shift=float(da.attrs.get("transform_shift", 0.0))))
        elif da.ndim == 2 and da.dims[1] in GRID_DIMS:
            chans.append(Channel(v, da.attrs.get("units", ""), da.dims[1], tuple(map(float, ens[da.dims[1]].values))))
        else:
            raise ValueError(f"observable {v!r} has dims {da.dims}; expected (sample,) or (sample, time|displacement)")
    # drop observables never defined in the simulations (all NaN) or constant over the ensemble (no information)
    keep = []
    for c in chans:
        v = np.asarray(ens[c.name].values, dtype=float)
        if np.isfinite(v).any() and np.nanmax(np.nanstd(v, axis=0)) > 0:
            keep.append(c)
    return keep


def _features(ds: xr.Dataset, chans: Sequence[Channel], lead: str) -> np.ndarray:
    cols = []
    n = ds.sizes[lead]
    for c in chans:
        if c.name not in ds or (c.dim is not None and c.dim not in ds[c.name].dims) \
                or (c.dim is None and ds[c.name].dims != (lead,)):
            if c.name in ds:
                warnings.warn(f"{c.name}: dims {ds[c.name].dims} do not match the simulator's "
                              f"{(lead,) if c.dim is None else (lead, c.dim)}; treated as missing", stacklevel=3)
            cols.append(np.full((n, c.size), np.nan))
            continue
        da = ds[c.name]
        if c.dim is None:
            cols.append(np.asarray(da.values, dtype=float).reshape(n, 1))
        else:
            cols.append(_on_grid(da, c, lead))
    return np.concatenate(cols, axis=1)


def _on_grid(da: xr.DataArray, c: Channel, lead: str) -> np.ndarray:
    """Curve ``da`` (lead, dim) → values on ``c.grid``; linear interpolation, NaN outside the measured range."""
    grid = np.asarray(c.grid)
    if c.dim not in da.dims:
        raise ValueError(f"{c.name}: real data has dims {da.dims}; the simulator grid dim is {c.dim!r}")
    vals = np.asarray(da.transpose(lead, c.dim).values, dtype=float)
    src = np.asarray(da[c.dim].values, dtype=float)
    if src.shape == grid.shape and np.allclose(src, grid, rtol=1e-9, atol=0):
        return vals.copy()
    out = np.full((vals.shape[0], grid.size), np.nan)
    order = np.argsort(src)
    src, vals = src[order], vals[:, order]
    for i, row in enumerate(vals):
        ok = np.isfinite(row)
        if ok.sum() < 2:
            continue
        xs, ys = src[ok], row[ok]
        inside = (grid >= xs[0]) & (grid <= xs[-1])
        # gaps: a grid point is masked when its bracketing measured points straddle a NaN run
        j = np.clip(np.searchsorted(src, grid), 1, src.size - 1)
        gap = ~(np.isfinite(row[j - 1]) & np.isfinite(row[j])) & ~np.isin(grid, xs)
        keep = inside & ~gap
        out[i, keep] = np.interp(grid[keep], xs, ys)
    return out


def build_layout(ens: xr.Dataset, observables: Sequence[str] | None = None,
                 condition_defaults: Mapping[str, float] | None = None) -> ObservableLayout:
    """Observable layout + normalisers from an ensemble in the store layout (docs/contracts.md).

    Parameters
    ----------
    ens : dataset with ``theta`` (sample, parameter), ``condition`` (sample, condition_name) and
        observables with a leading ``sample`` dim.
    observables : variable names to model; default every float scalar and every curve on a
        ``time``/``displacement`` grid except the outcome flags.
    condition_defaults : values used for real tests that lack a condition; default the ensemble median
        (a categorical condition's, e.g. ``chemistry``: its most common level in the ensemble).
    """
    chans = _select_channels(ens, observables)
    X = _features(ens, chans, "sample")
    offset, scale, k = [], [], 0
    for c in chans:
        block = c.forward(X[:, k:k + c.size])
        k += c.size
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mu = np.nanmean(block, axis=0)
            sd = float(np.nanstd(block - mu))
        mu = np.where(np.isfinite(mu), mu, 0.0)
        sd = sd if np.isfinite(sd) and sd > 0 else 1.0
        offset += list(map(float, mu))
        scale += [sd] * c.size
    C = np.asarray(ens["condition"].values, dtype=float)
    cnames = tuple(map(str, ens["condition_name"].values))
    csd = C.std(0)
    defaults = dict(zip(cnames, np.median(C, 0)))
    for j, name in enumerate(cnames):  # a categorical condition's default is a level (its most common), not a median between codes
        if name in CATEGORICAL_CONDITIONS:
            levels, counts = np.unique(C[:, j], return_counts=True)
            defaults[name] = levels[np.argmax(counts)]
    defaults.update(condition_defaults or {})
    return ObservableLayout(tuple(chans), tuple(offset), tuple(scale), cnames, tuple(map(float, C.mean(0))),
                            tuple(float(s) if s > 0 else 1.0 for s in csd), tuple(float(defaults[n]) for n in cnames))


def _tensors(X: np.ndarray, layout: ObservableLayout, C: np.ndarray, y: np.ndarray, u, ids, as_numpy: bool = False) -> Batch:
    Xn = layout.normalise(X)
    mask = np.isfinite(Xn)
    ym = np.isfinite(y)
    f32 = lambda a: np.asarray(a, dtype=np.float32)
    arrays = (f32(np.where(mask, Xn, 0.0)), f32(mask), np.asarray(C, dtype=np.float64), f32(np.where(ym, y, 0.0)),
              f32(ym), None if u is None else f32(u))
    if not as_numpy:
        import torch

        arrays = tuple(None if a is None else torch.as_tensor(a) for a in arrays)
    return Batch(*arrays, np.asarray(ids))


def ensemble_to_batch(ens: xr.Dataset, layout: ObservableLayout, transform: ThetaTransform) -> Batch:
    """Simulations in the store layout → `Batch` (with ``u``)."""
    params = list(map(str, ens["parameter"].values))
    if params != list(transform.names):
        raise ValueError(f"ensemble parameters {params} differ from the transform's {list(transform.names)}")
    th = np.asarray(ens["theta"].values, dtype=float)
    C = np.asarray(ens["condition"].sel(condition_name=list(layout.condition_names)).values, dtype=float)
    y = simulated_runaway(ens)
    return _tensors(_features(ens, layout.channels, "sample"), layout, C, y, transform.to_unconstrained(th),
                    ens["sample"].values)


def real_to_batch(real: xr.Dataset, layout: ObservableLayout, conditions: Mapping[str, float] | None = None, *,
                  as_numpy: bool = False) -> Batch:
    """Real tests (dim ``test``, docs/contracts.md "Real data") → `Batch` in the simulator's layout.

    Variables are matched by name; curves are interpolated onto the simulator grid and masked outside
    the measured range; missing variables are fully masked. Conditions are read from variables of the
    same name (e.g. ``soc``), else from ``conditions``, else the layout's defaults. The outcome is
    ``thermal_runaway`` if present, else ``hazard_level >= 6`` (pouch rupture, as TR is defined in risk.bayes), NaN where unknown.
    ``as_numpy``: the batch's arrays as NumPy arrays of the same dtypes (no torch import).
    """
    if "test" not in real.dims:
        raise ValueError(f"real data needs a `test` dimension; got dims {tuple(real.dims)}")
    n = real.sizes["test"]
    missing = [c.name for c in layout.channels if c.name not in real]
    if len(missing) == len(layout.channels):
        raise ValueError(f"real data has none of the simulator's observables {[c.name for c in layout.channels]}")
    cols = []
    for j, name in enumerate(layout.condition_names):
        if name in real:
            v = np.asarray(real[name].values, dtype=float)
            cols.append(np.where(np.isfinite(v), v, layout.condition_default[j]))
        else:
            cols.append(np.full(n, (conditions or {}).get(name, layout.condition_default[j])))
    C = np.column_stack(cols) if cols else np.zeros((n, 0))
    if OUTCOME_NAME in real:
        y = np.asarray(real[OUTCOME_NAME].values, dtype=float)
    elif "hazard_level" in real:
        h = np.asarray(real["hazard_level"].values, dtype=float)
        y = np.where(np.isfinite(h), (h >= RUNAWAY_HAZARD_LEVEL).astype(float), np.nan)
    else:
        y = np.full(n, np.nan)
    return _tensors(_features(real, layout.channels, "test"), layout, C, y, None, real["test"].values, as_numpy)


def priors_from_simulator(sim_or_cls) -> tuple[list[str], list[Prior]]:
    """(names, priors) of a `simulators.Simulator` class or instance."""
    return [p.name for p in sim_or_cls.parameters], [p.prior for p in sim_or_cls.parameters]


def dumps(obj: dict) -> str:
    return json.dumps(obj, sort_keys=True)
