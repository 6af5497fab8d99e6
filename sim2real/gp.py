"""Gaussian-process emulator of the decoder's scalar observables (`DecoderConfig.gp_observables`).

A deterministic simulator's scalar outputs over a few hundred design points are the classic case for a GP
emulator (Sacks, Welch, Mitchell & Wynn, Statist. Sci. 4 (1989) 409; Kennedy & O'Hagan, JRSS B 63 (2001) 425):
on the default indentation ensemble (256 coupled-chain runs, 8 parameters, 3 conditions) an ARD squared-exponential
GP predicts held-out simulations with R² 0.985 / 0.90 / 0.87 (log onset force, 60-s voltage drop, log rise rate)
where the MLP's heads reach 0.79 / 0.36 / 0.21 (the same 51 held-out runs; measured 2026-12-05). The MLP keeps the
curves and the runaway logit; the scalar channels' means and log scales are replaced by the GP's
(`gp_replace`, in torch, JAX and PyTensor alike).

The emulator's sd is constant per observable: the root mean square of the GP's leave-one-out residuals on its
training runs (Rasmussen & Williams, *Gaussian Processes for Machine Learning*, 2006, eq. 5.12), so that the
likelihood's ``exp(log_scale)`` is the emulator's measured error, not a fitted heteroscedastic head.
"""
from __future__ import annotations

import numpy as np

#: lower bound of the emulator's sd [normalised x]: a GP that interpolates its runs exactly still has an error
#: between them
MIN_SD = 0.02

#: arrays of the Gaussian-process emulator of scalar observables (`sim2real.gp`, `gp_replace`)
GP_KEYS = ("gp_x", "gp_inv_length", "gp_alpha", "gp_offset", "gp_log_scale", "gp_select", "gp_keep")


def gp_replace(gp, x, mean, log_scale, xp):
    """Means and log scales of the observables the GP emulates, in place of the MLP's.

    ``gp``: ``gp_x`` (n_train, d) training inputs ``[u, c_normalised]``; per emulated observable j (m of them)
    ``gp_inv_length`` (m, d) inverse ARD length scales, ``gp_alpha`` (m, n_train) the weights ``amp · K⁻¹ y``
    [normalised x], ``gp_offset`` (m,), ``gp_log_scale`` (m,) the emulator's log sd (leave-one-out residuals);
    ``gp_select`` (m, n_obs) one-hot columns, ``gp_keep`` (n_obs,) 1 where the MLP's output stays. ``x`` (..., d),
    ``mean``/``log_scale`` (..., n_obs); ``xp``: torch, jax.numpy or pytensor.tensor. The squared-exponential
    predictive mean ``offset + Σ_i alpha_i exp(−½ |(x − x_i) ⊙ inv_length|²)`` (Rasmussen & Williams, *Gaussian
    Processes for Machine Learning*, 2006, eq. 2.25), one observable at a time to bound memory.
    """
    cols = []
    n_gp = int(np.shape(getattr(gp["gp_offset"], "data", gp["gp_offset"]))[0])  # a PyTensor constant: its .data
    for j in range(n_gp):
        w = gp["gp_inv_length"][j]
        a, b = x * w, gp["gp_x"] * w  # (..., d), (n, d)
        d2 = (a * a).sum(-1)[..., None] - 2.0 * (a @ b.T) + (b * b).sum(-1)
        cols.append(xp.exp(-0.5 * d2) @ gp["gp_alpha"][j] + gp["gp_offset"][j])
    g = xp.stack(cols, axis=-1)  # (..., m)
    return (mean * gp["gp_keep"] + g @ gp["gp_select"],
            log_scale * gp["gp_keep"] + (g * 0.0 + gp["gp_log_scale"]) @ gp["gp_select"])


def fit_gp_scalars(u: np.ndarray, c_normalised: np.ndarray, x: np.ndarray, mask: np.ndarray, layout,
                   names, *, seed: int, restarts: int = 2) -> dict[str, np.ndarray] | None:
    """Fit one ARD GP per scalar channel ``names`` of ``layout`` on training runs; the `GP_KEYS`
    arrays (None when none of ``names`` is a scalar channel of the layout).

    u : (n, n_par) [1]; c_normalised : (n, n_cond) conditions z-scored by the layout; x : (n, n_obs) normalised
    observables; mask : (n, n_obs) 1 where observed.
    """
    import warnings

    from scipy.linalg import cho_solve
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

    inputs = np.column_stack([u, c_normalised]).astype(float)
    unknown = set(names) - {ch.name for ch in layout.channels if ch.dim is None}
    if unknown:
        raise ValueError(f"GP emulator: {sorted(unknown)} are not scalar observables of the decoder "
                         f"({[ch.name for ch in layout.channels if ch.dim is None]})")
    cols = [sl.start for ch, sl in zip(layout.channels, layout.slices().values()) if ch.dim is None and ch.name in names]
    if not cols:
        return None
    d = inputs.shape[1]
    inv_length, alpha, offset, log_scale = [], [], [], []
    for j in cols:
        ok = np.asarray(mask[:, j]) > 0
        y = np.asarray(x[ok, j], float)
        kernel = ConstantKernel(1.0, (1e-2, 1e2)) * RBF(np.ones(d), (1e-2, 1e3)) + WhiteKernel(1e-2, (1e-6, 1.0))
        gp = GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=restarts, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # a length scale at its bound: an irrelevant input
            gp.fit(inputs[ok], y)
        amp, ls = gp.kernel_.k1.k1.constant_value, np.asarray(gp.kernel_.k1.k2.length_scale, float)
        sd_y, mean_y = float(np.ravel(gp._y_train_std)[0]), float(np.ravel(gp._y_train_mean)[0])
        w = gp.alpha_.ravel()  # K⁻¹ y on the GP's standardised scale
        k_inv_diag = np.diag(cho_solve((gp.L_, True), np.eye(ok.sum())))
        loo = sd_y * w / k_inv_diag  # leave-one-out residuals [normalised x]
        # training inputs and weights padded to every run (a run without this observable has weight 0)
        full = np.zeros(len(inputs))
        full[ok] = sd_y * amp * w
        inv_length.append(1.0 / np.broadcast_to(ls, (d,)))
        alpha.append(full)
        offset.append(mean_y)
        log_scale.append(np.log(max(float(np.sqrt(np.mean(loo ** 2))), MIN_SD)))
    n_obs = layout.n_obs
    select = np.zeros((len(cols), n_obs))
    select[np.arange(len(cols)), cols] = 1.0
    gp_arrays = {"gp_x": inputs, "gp_inv_length": np.array(inv_length), "gp_alpha": np.array(alpha),
                 "gp_offset": np.array(offset), "gp_log_scale": np.array(log_scale), "gp_select": select,
                 "gp_keep": 1.0 - select.sum(0)}
    # float32 values: the torch module holds its buffers in float32 before it is frozen in float64, the exports
    # read the same rounded numbers (`sim2real.io`)
    return {k: v.astype(np.float32) for k, v in gp_arrays.items()}
