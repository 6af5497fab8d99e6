"""Fit the indentation mechanics (E, B, n, ε_c) to the real LCO pouch-cell force curves.

Data: the ORNL LCO pouch workbooks of ../shared/data/indentation (500, 1500, 2000 mAh and the 6.4 A h
``LCO-LP`` cells), read by `risk.data.indentation.read_workbook` (force in N from ``Load (lb)``) with the
contact and short-onset detectors of `risk.data.features`.

Displacement. The ORNL workbooks have no displacement channel (the column is empty) and the dataset
does not document the crosshead speed. We assume a constant speed ``speed`` (default 1 mm/min, a common
quasi-static rate; **an assumption**, stated in every result) so that δ(t) = v (t − t_contact). The fitted
stiffnesses scale with it (for F ∝ δ^m, E and B scale ∝ v^−m); the fit *quality* and the onset
comparison are in this displacement frame. Cell thicknesses (`CELL_THICKNESS`) are assumed typical
pouch dimensions for these capacities, not measured values.

Method. For each family, the loading branch (contact → short onset) of every test is resampled at
``n_points`` displacements; (ln E, ln B, n) minimise the pooled residuals (F_model − F_obs) / F_peak with
`scipy.optimize.least_squares` using the mesh-free punch law (`lumped_force`, agreement with the FE
stated in `abuse_fe.indentation_lumped`), optionally refined with the FE model itself (``model="fe"``);
`fe_check` re-evaluates a fit with the FE model. The
critical strain ε_c of a family is the mean modelled strain at the measured onsets; onset displacements
are compared leave-one-out (ε_c from the other tests of the family → predicted onset of the held-out test).
`leave_family_out_onset` predicts a whole family's onset forces from mechanics (E, B, n, ε_c) pooled over the
*other* families, each curve at its own family's thickness and punch: the out-of-sample check of the law.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

from abuse_fe.indentation_lumped import MECHANICAL_PARAMETERS, lumped_force, lumped_strain, short_onset

#: assumed crosshead speed [m/s] (1 mm/min; not documented in the dataset)
SPEED_ASSUMED = 1.0e-3 / 60.0

#: family → (file-stem prefixes, assumed thickness [m], punch radius [m])
FAMILIES: dict[str, tuple[tuple[str, ...], float, float]] = {
    "LCO-0.5Ah": (("500mAh",), 5.0e-3, 6.35e-3),
    "LCO-1.5Ah": (("1500mAh",), 6.0e-3, 6.35e-3),
    "LCO-2.0Ah": (("2000mAh",), 7.0e-3, 6.35e-3),
    "LCO-6.4Ah": (("LCO-LP",), 10.0e-3, 6.35e-3),
}
CELL_THICKNESS = {k: v[1] for k, v in FAMILIES.items()}


@dataclass
class RealCurve:
    """Loading branch of one real test: displacement (n,) [m] from contact, force (n,) [N]."""

    test: str
    family: str
    displacement: np.ndarray
    force: np.ndarray
    displacement_short_onset: float
    force_short_onset: float
    soc: float


def read_curve(path: str | Path, family: str, *, speed: float = SPEED_ASSUMED, n_points: int = 40) -> RealCurve | None:
    """The loading branch of one workbook, or None when no short onset / contact is found.

    The pre-contact force offset (median of the first 2 s) is removed before contact detection.
    """
    from risk.data.features import contact_index, detect_short_onset
    from risk.data.indentation import read_workbook

    ds = read_workbook(path)
    t = ds["time"].values.astype(float)
    F = ds["force_indenter"].values.astype(float)
    V = ds["voltage"].values.astype(float)
    ok = np.isfinite(t) & np.isfinite(F) & np.isfinite(V)
    t, F, V = t[ok], F[ok], V[ok]
    F = F - np.median(F[t <= t[0] + 2.0])
    on = detect_short_onset(t, V, F)
    if not on.detected:
        return None
    ic = contact_index(F[: on.index + 1], t[: on.index + 1])
    d_on = speed * (t[on.index] - t[ic])
    if not d_on > 0:
        return None
    d = np.linspace(0.0, d_on, n_points)
    f = np.interp(d, speed * (t[ic: on.index + 1] - t[ic]), F[ic: on.index + 1])
    return RealCurve(Path(path).stem, family, d, f, float(d_on), float(f[-1]), float(ds.attrs.get("soc", math.nan)))


def read_family(folder: str | Path, family: str, *, speed: float = SPEED_ASSUMED, n_points: int = 40) -> list[RealCurve]:
    """Every usable curve of ``family`` (see `FAMILIES`) in the raw-workbook ``folder``."""
    prefixes = FAMILIES[family][0]
    paths = sorted(p for p in Path(folder).glob("*.xlsx") if p.stem.startswith(prefixes))
    curves = [read_curve(p, family, speed=speed, n_points=n_points) for p in paths]
    return [c for c in curves if c is not None]


@dataclass
class FamilyFit:
    """Fitted mechanics of one cell family and its error measures.

    Attributes
    ----------
    theta : dict — modulus_cell [Pa], hardening_modulus [Pa], hardening_exponent [1], strain_critical [1]
    rmse : float — RMSE of the force over all curves [N]
    rmse_relative : float — rmse / mean peak force [1]
    onset_loo : ndarray (n_tests, 2) — measured and leave-one-out predicted onset displacement [m]
    """

    family: str
    thickness: float
    punch_radius: float
    speed: float
    theta: dict[str, float]
    rmse: float
    rmse_relative: float
    tests: list[str] = field(default_factory=list)
    onset_loo: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    model: str = "lumped"

    @property
    def onset_mae(self) -> float:
        """Mean absolute error of the leave-one-out onset displacement [m]."""
        return float(np.mean(np.abs(self.onset_loo[:, 1] - self.onset_loo[:, 0])))


def _bounds(name: str) -> tuple[float, float]:
    return next(p for p in MECHANICAL_PARAMETERS if p.name == name).bounds


class _FEModel:
    """Force and strain of the FE model on a fixed depth grid, memoised per parameter vector."""

    def __init__(self, R: float, H: float, d_max: float, resolution: str = "coarse", n: int = 31):
        from abuse_fe.indentation import get_problem

        self.prob, self.R, self.H = get_problem(resolution), R, H
        self.grid = np.linspace(0.0, d_max, n)
        self._cache: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    def path(self, E: float, B: float, n: float) -> tuple[np.ndarray, np.ndarray]:
        key = (E, B, n)
        if key not in self._cache:
            self.prob.set_state(modulus=E, hardening_modulus=B, hardening_exponent=n, punch_radius=self.R, thickness=self.H)
            res = self.prob.solve_path(self.grid)
            self._cache[key] = (res.force, res.strain_max)
        return self._cache[key]


def fit_family(curves: list[RealCurve], family: str, *, speed: float = SPEED_ASSUMED, model: str = "lumped",
               max_nfev: int = 30) -> FamilyFit:
    """Least-squares fit of (E, B, n) and the leave-one-out ε_c of one family.

    ``model="lumped"`` uses the mesh-free punch law (milliseconds per evaluation, three starts);
    ``model="fe"`` refines the lumped optimum with the coarse FE model (≈ 1 s per evaluation,
    ``max_nfev`` evaluations) and takes the strains for ε_c from the FE probe.
    """
    model_kind = model
    if model_kind not in ("lumped", "fe"):
        raise ValueError(f"model must be 'lumped' or 'fe', got {model_kind!r}")
    _, H, R = FAMILIES[family]
    d = np.concatenate([c.displacement for c in curves])
    f = np.concatenate([c.force for c in curves])
    scale = np.concatenate([np.full(c.force.size, max(c.force.max(), 1.0)) for c in curves])

    def model(x):  # the lumped model; the FE one replaces it below
        return lumped_force(d, math.exp(x[0]), math.exp(x[1]), x[2], R, H)

    lo = [math.log(_bounds("modulus_cell")[0]), math.log(_bounds("hardening_modulus")[0]), _bounds("hardening_exponent")[0]]
    hi = [math.log(_bounds("modulus_cell")[1]), math.log(_bounds("hardening_modulus")[1]), _bounds("hardening_exponent")[1]]
    best = None
    for x0 in ([math.log(3e7), math.log(3e8), 2.0], [math.log(1e8), math.log(1e8), 1.5], [math.log(1e7), math.log(1e9), 3.0]):
        sol = least_squares(lambda x: (model(x) - f) / scale, x0, bounds=(lo, hi), x_scale=[1.0, 1.0, 0.5])
        if best is None or sol.cost < best.cost:
            best = sol
    if model_kind == "fe":
        fe = _FEModel(R, H, 1.15 * float(d.max()))

        def model(x):  # noqa: F811
            force, _ = fe.path(math.exp(x[0]), math.exp(x[1]), float(x[2]))
            return np.interp(d, fe.grid, force)

        best = least_squares(lambda x: (model(x) - f) / scale, best.x, bounds=(lo, hi), x_scale=[1.0, 1.0, 0.5],
                             max_nfev=max_nfev, diff_step=1e-3)
    E, B, n = math.exp(best.x[0]), math.exp(best.x[1]), float(best.x[2])
    resid = model(best.x) - f
    rmse = float(np.sqrt(np.mean(resid**2)))
    peak = float(np.mean([c.force.max() for c in curves]))
    # critical strain: modelled strain at each measured onset; leave-one-out onset prediction
    if model_kind == "fe":
        f_grid, s_grid = fe.path(E, B, n)
        grid = fe.grid
    else:
        grid = np.linspace(0.0, 0.8 * H, 801)
        s_grid = lumped_strain(grid, E, B, R, H)
        f_grid = lumped_force(grid, E, B, n, R, H)
    ε_on = np.array([float(np.interp(c.displacement_short_onset, grid, s_grid)) for c in curves])
    loo = []
    for i, c in enumerate(curves):
        ε_c = float(np.mean(np.delete(ε_on, i))) if len(curves) > 1 else float(ε_on[i])
        loo.append((c.displacement_short_onset, short_onset(grid, f_grid, s_grid, ε_c)[0]))
    theta = {"modulus_cell": E, "hardening_modulus": B, "hardening_exponent": n, "strain_critical": float(np.mean(ε_on))}
    return FamilyFit(family, H, R, speed, theta, rmse, rmse / peak, [c.test for c in curves], np.array(loo), model_kind)


def fe_check(fit: FamilyFit, curves: list[RealCurve], *, resolution: str = "coarse") -> tuple[float, float]:
    """RMSE [N] and relative RMSE [1] of the FE model at the fitted parameters against the same curves."""
    from abuse_fe.indentation import get_problem

    d_max = max(c.displacement.max() for c in curves)
    grid = np.linspace(0.0, d_max, 41)
    prob = get_problem(resolution)
    prob.set_state(modulus=fit.theta["modulus_cell"], hardening_modulus=fit.theta["hardening_modulus"],
                   hardening_exponent=fit.theta["hardening_exponent"], punch_radius=fit.punch_radius,
                   thickness=fit.thickness)
    res = prob.solve_path(grid)
    r = np.concatenate([np.interp(c.displacement, grid, res.force) - c.force for c in curves])
    rmse = float(np.sqrt(np.mean(r**2)))
    return rmse, rmse / float(np.mean([c.force.max() for c in curves]))


def calibrate(folder: str | Path, families: tuple[str, ...] = tuple(FAMILIES), *, speed: float = SPEED_ASSUMED) -> dict[str, FamilyFit]:
    """Fit every family found in ``folder``; returns {family: FamilyFit}."""
    out = {}
    for fam in families:
        curves = read_family(folder, fam, speed=speed)
        if curves:
            out[fam] = fit_family(curves, fam, speed=speed)
    return out


def fit_pooled(curves: list[RealCurve]) -> dict[str, float]:
    """(E, B, n) pooled over curves of several families (each at its family's thickness and punch radius, as in
    `fit_family`), and ε_c the mean modelled strain at their measured onsets; returns the θ dict of `FamilyFit`."""
    geom = [FAMILIES[c.family][1:] for c in curves]
    scale = [max(c.force.max(), 1.0) for c in curves]

    def resid(x):
        E, B, n = math.exp(x[0]), math.exp(x[1]), x[2]
        return np.concatenate([(lumped_force(c.displacement, E, B, n, R, H) - c.force) / s
                               for c, (H, R), s in zip(curves, geom, scale)])

    lo = [math.log(_bounds("modulus_cell")[0]), math.log(_bounds("hardening_modulus")[0]), _bounds("hardening_exponent")[0]]
    hi = [math.log(_bounds("modulus_cell")[1]), math.log(_bounds("hardening_modulus")[1]), _bounds("hardening_exponent")[1]]
    best = min((least_squares(resid, x0, bounds=(lo, hi), x_scale=[1.0, 1.0, 0.5])
                for x0 in ([math.log(3e7), math.log(3e8), 2.0], [math.log(1e8), math.log(1e8), 1.5],
                           [math.log(1e7), math.log(1e9), 3.0])), key=lambda sol: sol.cost)
    E, B, n = math.exp(best.x[0]), math.exp(best.x[1]), float(best.x[2])
    strain_onset = [float(lumped_strain(np.array([c.displacement_short_onset]), E, B, R, H)[0])
                    for c, (H, R) in zip(curves, geom)]
    return {"modulus_cell": E, "hardening_modulus": B, "hardening_exponent": n,
            "strain_critical": float(np.mean(strain_onset))}


def leave_family_out_onset(curves_by_family: dict[str, list[RealCurve]]) -> dict[str, dict]:
    """Each family's onset forces predicted from `fit_pooled` on the other families (module doc).

    Returns {family: {"theta": pooled θ without it, "measured" (n,) [N], "predicted" (n,) [N],
    "median_relative_error" [1]}}; the prediction is the same for every test of a family (one cell size).
    """
    out = {}
    for fam, held in curves_by_family.items():
        train = [c for f, cs in curves_by_family.items() if f != fam for c in cs]
        theta = fit_pooled(train)
        _, H, R = FAMILIES[fam]
        grid = np.linspace(0.0, 0.8 * H, 801)
        E, B, n = theta["modulus_cell"], theta["hardening_modulus"], theta["hardening_exponent"]
        _, f_on = short_onset(grid, lumped_force(grid, E, B, n, R, H), lumped_strain(grid, E, B, R, H),
                              theta["strain_critical"])
        measured = np.array([c.force_short_onset for c in held])
        predicted = np.full(measured.size, f_on)
        out[fam] = {"theta": theta, "measured": measured, "predicted": predicted,
                    "median_relative_error": float(np.median(np.abs(predicted - measured) / measured))}
    return out
