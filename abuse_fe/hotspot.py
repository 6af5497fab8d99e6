r"""The internal short's hot spot by finite elements: axisymmetric conduction through the stack with kinetics,
two-way coupled to the short circuit and the separator meltdown — the full model behind the ring model.

`abuse_fe.coupled.short_thermal_response` (24 rings, each uniform through the thickness) is what ensembles run;
this is the model it reduces, solved on an (r, z) mesh of the same cell (option ``thermal="fe"`` of the coupled
simulators; `benchmarks/hotspot_fe_vs_rings.py` measures the rings against it across the prior).

Geometry and physics (the ring model's, resolved in z)
------------------------------------------------------
A disc of the pouch's face area (radius r_b) and thickness H centred on the short, axis r = 0 through the
short spot (radius r_s, the punch contact at the onset); Q1 elements, n_spot uniform across the spot and
geometric out to r_b, uniform in z. Orthotropic conduction, k_in in the plane (`CellThermal`) and
k_through across the stack (`CellThermal`: `JELLY_ROLL_POUCH`, Steinhardt et al. 2022); both faces cooled by h to T∞,
the pouch edge adiabatic. On the axisymmetric measure dV = 2π r dr dz (lumped mass m_j = ∫ρc φ_j dV, lumped
face areas a_j = ∫_faces φ_j dA)::

    m_j dT_j/dt = −(K T)_j − h a_j (T_j − T∞) + V_j q_j(T_j, ξ_j) + (V_j / V) P_b + s_j P_s,

V_j = ∫φ_j dV, q_j the decomposition heat per volume (`simulators.kinetics`, exact at fixed T per node),
P_s = I² R the short's Joule heat spread by volume over the shorted columns (s_j, Σ s_j = 1) and
P_b = U_ocv I − I² R the electrodes' heat spread over the cell. The circuit is the ring model's:
I = min(U_ocv(z) / (R + R_int), I_lim), dz/dt = −I/Q. The separator melts from the spot outwards: the node
columns (fixed r) from the axis out whose through-thickness mean temperature has reached `MELTDOWN_TEMPERATURE`
join the short, and the next one in part, as far as the columns' temperature crosses it between the two
(`abuse_fe.coupled.meltdown_front`, as in the ring model: whole columns made the short's area jump); R = R_s A_0 / A
with A the shorted face area. Strang splitting (kinetics
½Δt, backward Euler for conduction, cooling and sources over Δt with the mass-lumped, M-matrix system,
kinetics ½Δt), step control |ΔT| ≤ ``dT_step`` and SOC change ≤ 1 % per step, as in the ring model.

Outcomes as the ring model's: ``thermal_runaway`` when the chemical self-heating of the cell outside the spot
(heat-capacity weighted, read through the `RUNAWAY_RATE_TIME` lag) exceeds ``runaway_rate``; the thermocouple reads the *face* temperature at r_s +
``probe_distance`` (the ring model: the ring's through-thickness mean); ``local_reaction_fraction`` and
``spread_fraction`` inside and outside r_s. Mass lumping and the implicit step keep the first law exact
per step: stored + lost = chemical + Joule to round-off (``energy_balance_residual``).

Mesh, assembly: dolfinx (``K``, the lumped ``m``, ``V``, ``a``); the time loop runs on the assembled arrays
(SciPy sparse LU per step: ~300 unknowns).
"""
from __future__ import annotations

import math

import basix.ufl
import numpy as np
import ufl
from dolfinx import fem, mesh as dmesh
from mpi4py import MPI
from scipy.linalg import solveh_banded

from abuse_fe.coupled import (
    RUNAWAY_RATE_TIME, THERMOCOUPLE_DISTANCE, CellThermal, measured_features, meltdown_front,
)
from simulators.kinetics import load as load_kinetics
from simulators.lumped import RUNAWAY_RATE

#: Mesh of the default hot-spot model: elements across the spot radius, from the spot to the pouch edge, and
#: across the thickness. Peak temperature, time to runaway and hazard level converge to within 1-2 % against a
#: mesh twice as fine in every direction (tests/abuse_fe/test_hotspot.py).
MESH = {"n_spot": 4, "n_outer": 40, "n_through": 6}


def _assemble(spot_radius: float, outer_radius: float, thickness: float, k_in: float, k_through: float,
              n_spot: int, n_outer: int, n_through: int):
    """The graded (r, z) mesh's node coordinates (n, 2) [m], conduction matrix K [W/K] (SciPy CSR), nodal
    volumes V [m³] and face areas a [m²] (lumped over the two cooled faces z = 0, H)."""
    nr = n_spot + n_outer
    msh = dmesh.create_rectangle(MPI.COMM_SELF, [np.zeros(2), np.ones(2)], [nr, n_through],
                                dmesh.CellType.quadrilateral)
    unit = np.linspace(0.0, 1.0, nr + 1)
    radii = np.concatenate([np.linspace(0.0, spot_radius, n_spot + 1),
                            np.geomspace(spot_radius, outer_radius, n_outer + 1)[1:]])
    x = msh.geometry.x
    x[:, 0] = np.interp(x[:, 0], unit, radii)
    x[:, 1] *= thickness
    V = fem.functionspace(msh, basix.ufl.element("Lagrange", msh.basix_cell(), 1))
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    r = ufl.SpatialCoordinate(msh)[0]
    w = 2.0 * math.pi * r
    Kt = ufl.as_matrix([[k_in, 0.0], [0.0, k_through]])
    K = fem.assemble_matrix(fem.form(ufl.inner(Kt * ufl.grad(u), ufl.grad(v)) * w * ufl.dx)).to_scipy()
    vol = fem.assemble_vector(fem.form(v * w * ufl.dx)).array.copy()
    fdim = msh.topology.dim - 1
    faces = dmesh.locate_entities_boundary(msh, fdim, lambda p: np.isclose(p[1], 0.0) | np.isclose(p[1], thickness))
    tags = dmesh.meshtags(msh, fdim, faces, np.ones_like(faces, dtype=np.int32))
    ds = ufl.Measure("ds", domain=msh, subdomain_data=tags)
    area = fem.assemble_vector(fem.form(v * w * ds(1))).array.copy()
    nodes = V.tabulate_dof_coordinates()[:, :2].copy()
    return nodes, K.tocsr(), vol, area


def short_thermal_response_fe(
    *, short_resistance: float, current_limit_c_rate: float, kinetics_log_rate_shift: float, heat_transfer: float,
    soc: float, capacity: float, thickness: float, spot_radius: float, temperature_ambient: float,
    t_end: float = 1800.0, n_time: int = 181, kinetics: str = "hatchard2001", cell: CellThermal | None = None,
    runaway_rate: float = RUNAWAY_RATE, dT_step: float = 5.0, probe_distance: float | None = None,
    mesh: dict | None = None,
) -> dict:
    """The hot spot of one internal short on the axisymmetric FE mesh, ``short_onset`` → ``t_end`` [s].

    Arguments as `abuse_fe.coupled.short_thermal_response` (SI units: Ω, A s, W/(m² K), m, K; k_in and k_through
    from ``cell``), plus ``mesh`` (keys of `MESH`); the short current is the equivalent circuit's.

    Returns the ring model's dict — ``time`` (n_time,) [s], ``temperature_hotspot`` (volume mean of the spot),
    ``temperature_mean``, ``temperature_probe`` [K], ``current_short`` [A], ``voltage`` [V] on that grid, the
    measured features and the scalars — plus ``heat_lost_total``, ``internal_energy_change`` and
    ``energy_balance_residual`` [J].
    """
    cell = CellThermal() if cell is None else cell
    probe_distance = THERMOCOUPLE_DISTANCE if probe_distance is None else probe_distance
    m_opts = {**MESH, **(mesh or {})}
    Q, H, R_s, h, T_amb = float(capacity), float(thickness), float(short_resistance), float(heat_transfer), \
        float(temperature_ambient)
    V_cell = Q * cell.voltage_nominal / cell.energy_density
    r_b = math.sqrt(V_cell / H / math.pi)
    r_s = min(max(float(spot_radius), 0.2e-3), 0.5 * r_b)
    nodes, K, vol, area = _assemble(r_s, r_b, H, cell.conductivity_in_plane, cell.conductivity_through_plane,
                                    **m_opts)
    ρc = cell.heat_capacity_volumetric
    m = ρc * vol
    hA = h * area
    n = vol.size

    # node columns (fixed r) from the axis out; the spot is the columns with r ≤ r_s
    col_r, col = np.unique(np.round(nodes[:, 0] / r_b, 12), return_inverse=True)
    col_r = col_r * r_b
    col_vol = np.bincount(col, vol)
    col_area = col_vol / H  # face area a column stands for [m²]
    in_spot = nodes[:, 0] <= r_s * (1 + 1e-9)
    n_spot_cols = int(np.sum(col_r <= r_s * (1 + 1e-9)))
    A0 = col_area[:n_spot_cols].sum()
    # K in banded form (upper, LAPACK's layout) with the nodes ordered column by column: the Q1 stencil reaches
    # one column over and one row up, so the half-bandwidth is n_through + 2 (a ~300-node system per step in µs)
    order = np.lexsort((nodes[:, 1], col))
    Kd = K.toarray()[np.ix_(order, order)]
    band = m_opts["n_through"] + 2
    bands = np.zeros((band + 1, n))
    for k in range(band + 1):
        bands[band - k, k:] = np.diagonal(Kd, k)
    top = np.isclose(nodes[:, 1], H)
    top_order = np.argsort(nodes[top, 0])
    top_idx = np.flatnonzero(top)[top_order]
    r_probe = min(r_s + probe_distance, r_b)

    ks, init = load_kinetics(kinetics).per_cell(np.clip([soc], 0.0, 1.0), np.array([kinetics_log_rate_shift]))
    state = {s: np.broadcast_to(v, (1, n)).copy() for s, v in init.items()}
    q_avail = ks.heat_remaining(state)[0]  # [J/m³] per node
    R_int = cell.internal_resistance_ah / (Q / 3600.0)
    I_lim = current_limit_c_rate * Q / 3600.0
    ocv = lambda s: float(np.interp(s, *cell.ocv))  # noqa: E731
    shorted = float(n_spot_cols)  # shorted columns from the axis out, the last one in part (the meltdown front)
    col_index = np.arange(col_area.size)
    col_weight = np.clip(shorted - col_index, 0.0, 1.0)
    R_short = R_s

    def circuit(z):
        u = ocv(z)
        current = min(max(u, 0.0) / (R_short + R_int), I_lim)
        return current, u * current

    T = np.full(n, T_amb)
    z = float(soc)
    C_bulk = m[~in_spot].sum()
    rate_read = 0.0  # the bulk's chemical heating rate through the RUNAWAY_RATE_TIME lag [K/s]
    U0 = float(m @ T)
    t, dt, dt_max, dt_min = 0.0, 1.0e-2, 5.0, 1.0e-5
    E_chem = E_joule = E_loss = charge = 0.0
    t_run = math.nan
    T_peak = T_amb
    I0 = circuit(z)[0]
    hist = [(0.0, T_amb, T_amb, T_amb, I0, I0 * R_short)]
    while t_end - t > dt_min:
        d = dt
        left = t_end - t
        d = left if left < 1.5 * d else d
        I_pred = circuit(z)[0]
        if I_pred > 0:
            d = min(d, max(0.01 * Q / I_pred, dt_min))
        st1, rel1 = ks.advance(T[None], state, d / 2)
        T1 = T + rel1[0] / ρc
        I, P_tot = circuit(z - I_pred * d / (2 * Q))
        P_s = I**2 * R_short
        P_b = max(P_tot - P_s, 0.0)
        spot_share = vol * col_weight[col] / (vol @ col_weight[col])
        rhs = m / d * T1 + P_b * vol / V_cell + P_s * spot_share + hA * T_amb
        ab = bands.copy()
        ab[band] += (m / d + hA)[order]
        T2 = np.empty(n)
        T2[order] = solveh_banded(ab, rhs[order], check_finite=False)
        st3, rel3 = ks.advance(T2[None], st1, d / 2)
        T3 = T2 + rel3[0] / ρc
        change = float(np.abs(T3 - T).max())
        if change > dT_step and d > dt_min:
            dt = d / 2
            continue
        rel = (rel1 + rel3)[0]
        q_chem_rate = float(rel[~in_spot] @ vol[~in_spot]) / C_bulk / d
        rate_read += (q_chem_rate - rate_read) * -math.expm1(-d / RUNAWAY_RATE_TIME)
        if math.isnan(t_run) and rate_read > runaway_rate:
            t_run = t + d
        E_chem += float(rel @ vol)
        E_joule += (P_s + P_b) * d
        E_loss += float(hA @ (T2 - T_amb)) * d
        charge += I * d
        z -= I * d / Q
        state = st3
        T, t = T3, t + d
        T_peak = max(T_peak, float(T.max()))
        T_probe = float(np.interp(r_probe, nodes[top_idx, 0], T[top_idx]))
        hist.append((t, float(T[in_spot] @ vol[in_spot] / vol[in_spot].sum()), float(T @ vol / vol.sum()), T_probe,
                     I, I * R_short))
        # separator meltdown: the short reaches where the columns' mean temperature crosses it (`meltdown_front` in
        # column numbers: the first column after the melted ones joins in part, in proportion to the crossing)
        col_T = np.bincount(col, T * vol) / col_vol
        front = float(meltdown_front(col_T[None], col_index[None] + 1.0, np.array([float(col_T.size)]))[0])
        if front > shorted:
            shorted = front
            col_weight = np.clip(shorted - col_index, 0.0, 1.0)
            R_short = R_s * A0 / (col_weight @ col_area)
        dt = min(d * 1.5, dt_max) if change < dT_step / 4 else d
    ts, Ts, Tm, Tp, Is, Vs = (np.array(c) for c in zip(*hist))
    grid = np.linspace(0.0, t_end, n_time)
    released = q_avail - ks.heat_remaining(state)[0]
    U1 = float(m @ T)

    def frac(sel):  # share of the releasable heat of the nodes ``sel`` that was released
        avail = float(q_avail[sel] @ vol[sel])
        return float(released[sel] @ vol[sel]) / avail if avail > 0 else 0.0

    return {
        "time": grid,
        **measured_features(ts, Tp, Vs, ocv(soc)),
        "temperature_hotspot": np.interp(grid, ts, Ts),
        "temperature_mean": np.interp(grid, ts, Tm),
        "temperature_probe": np.interp(grid, ts, Tp),
        "current_short": np.interp(grid, ts, Is),
        "voltage": np.interp(grid, ts, Vs),
        "thermal_runaway": not math.isnan(t_run),
        "time_to_runaway": float(t_run),
        "temperature_peak": T_peak,
        "temperature_bulk_peak": float(Tm.max()),
        "heat_released_total": E_chem + E_joule,
        "heat_joule_total": E_joule,
        "discharge_fraction": charge / Q,
        "local_reaction_fraction": frac(in_spot),
        "spread_fraction": frac(~in_spot),
        "heat_lost_total": E_loss,
        "internal_energy_change": U1 - U0,
        "energy_balance_residual": (U1 - U0) - (E_chem + E_joule - E_loss),
    }
