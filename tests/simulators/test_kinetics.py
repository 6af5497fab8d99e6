"""Thermal-runaway kinetics: exactness of `advance`, heat bookkeeping, published table values."""
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from simulators.kinetics import KineticSet, available, load

SETS = available()


def _reference_solution(ks: KineticSet, T: float, t_end: float):
    """Tight Radau solve of d(state)/dt = rates, with the released heat as an extra state."""
    names = ks.state_names

    def rhs(t, y):
        d, q = ks.rates(np.asarray(T), dict(zip(names, y[:-1])))
        return [float(d[k]) for k in names] + [float(q)]

    y0 = [ks.initial_state[k] for k in names] + [0.0]
    sol = solve_ivp(rhs, (0.0, t_end), y0, method="Radau", rtol=1e-10, atol=1e-14)
    assert sol.success
    return dict(zip(names, sol.y[:-1, -1])), sol.y[-1, -1]


def test_published_hatchard_values_in_si():
    ks = load("hatchard2001")
    r = {x.name: x for x in ks.reactions}
    # Kim et al. 2007 Table 1, converted J/g → J/kg and g/m3 → kg/m3
    assert r["sei"].H == 257e3 and r["sei"].W == pytest.approx(610.4)
    assert r["anode"].H == 1714e3 and r["cathode"].W == pytest.approx(1221.0)
    assert r["electrolyte"].A == 5.14e25 and r["electrolyte"].Ea == 2.74e5
    # heat per jelly-roll volume at 100 % SOC: sum H W ρ0 (hand computed)
    expected = 257e3 * 610.4 * 0.15 + 1714e3 * 610.4 * 0.75 + 314e3 * 1221 * 0.96 + 155e3 * 407 * 1.0
    assert ks.total_heat(1.0) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("name", "T"), [("hatchard2001", 400.0), ("hatchard2001", 450.0), ("hatchard2001", 500.0),
                                         ("bilyaz2020", 400.0), ("bilyaz2020", 440.0)])
def test_advance_matches_stiff_ode_solution(name, T):
    """The closed-form step equals a tight Radau solution (states 1e-6 abs, heat 1e-6 rel)."""
    ks = load(name)
    ref_state, ref_heat = _reference_solution(ks, T, 60.0)
    new, released = ks.advance(np.asarray(T), ks.initial(), 60.0)
    for k in ks.state_names:
        assert float(new[k]) == pytest.approx(max(ref_state[k], 0.0), abs=1e-6), k
    assert float(released) == pytest.approx(ref_heat, rel=1e-6, abs=1e-3)


@pytest.mark.parametrize("name", SETS)
def test_heat_bookkeeping_exact_and_conserved(name):
    """released == heat_remaining(old) - heat_remaining(new), and many steps sum to the total."""
    ks = load(name)
    T = np.linspace(350.0, 800.0, 7)[:, None] * np.ones((1, 3))  # shape (7, 3)
    state = ks.initial(T.shape)
    total = np.zeros(T.shape)
    for _ in range(200):
        new, rel = ks.advance(T, state, 50.0)
        np.testing.assert_allclose(rel, ks.heat_remaining(state) - ks.heat_remaining(new), rtol=0, atol=1e-6)
        total += rel
        state = new
    np.testing.assert_allclose(total, ks.heat_remaining(ks.initial(T.shape)) - ks.heat_remaining(state), rtol=1e-10)
    for k in ks.state_names:
        lo, hi = ks.bounds[k]
        assert np.all((state[k] >= lo) & (state[k] <= hi))


@pytest.mark.parametrize("name", SETS)
def test_rates_are_minus_derivative_of_heat_remaining(name):
    ks = load(name)
    rng = np.random.default_rng(0)
    T = rng.uniform(350, 480, size=(4, 5))
    state = {k: rng.uniform(0.05, 0.9, size=(4, 5)) for k in ks.state_names}
    d, q = ks.rates(T, state)
    # heat_remaining is linear in the states, so a unit "step" along d gives dQ/dt exactly
    stepped = {k: state[k] + d[k] for k in ks.state_names}
    dQ = ks.heat_remaining(stepped) - ks.heat_remaining(state)
    np.testing.assert_allclose(-dQ, q, rtol=1e-8)


def test_stiff_large_step_is_stable():
    ks = load("hatchard2001")
    new, rel = ks.advance(np.asarray(900.0), ks.initial(), 1e4)
    assert all(np.isfinite(v) for v in new.values())
    assert float(new["c_sei"]) == 0.0 and float(new["alpha"]) == 1.0 and float(new["c_e"]) == 0.0
    assert 0 < float(rel) <= ks.total_heat(1.0)


def test_soc_scaling_and_overrides():
    ks = load("hatchard2001")
    heats = [ks.total_heat(s) for s in (0.0, 0.25, 0.5, 1.0)]
    assert np.all(np.diff(heats) > 0)
    assert ks.at_soc(0.5).initial_state["c_neg"] == pytest.approx(0.375)
    k2 = ks.with_(log_A={"sei": np.log(2.0)}, dEa={"anode": 1e3}, initial={"c_sei": 0.1})
    assert k2.reactions[0].A == pytest.approx(2 * ks.reactions[0].A)
    assert k2.reactions[1].Ea == ks.reactions[1].Ea + 1e3 and k2.initial_state["c_sei"] == 0.1
    assert ks.reactions[0].A == 1.667e15  # frozen original untouched
    with pytest.raises(KeyError, match="unknown reactions"):
        ks.with_(log_A={"seii": 1.0})


def test_load_did_you_mean():
    with pytest.raises(KeyError, match="did you mean 'hatchard2001'"):
        load("hatchard2010")


def test_nmc_set_is_internally_consistent():
    """No LiCoO2 enthalpies mixed with NMC rates (the reference notes warn about such sets)."""
    r = {x.name: x for x in load("bilyaz2020").reactions}
    assert (r["cathode1"].H, r["cathode2"].H, r["electrolyte"].H) == (77e3, 84e3, 800e3)
    assert r["separator"].H < 0


def test_sei_limited_step_solves_its_closed_form_in_every_regime():
    """The anode step ċ = -k c e^{-t/τ}, ṫ = -ċ against an independent root find of its closed form
    E1(c/τ) = E1(c0/τ) + k e^{-(t0+c0)/τ} Δt (brentq on c), from cold (kΔt ~ 1e-12) to burn-out (kΔt ~ 1e4)."""
    from scipy import optimize, special

    r = {x.name: x for x in load("hatchard2001").reactions}["anode"]
    tau = r.layer_ref
    rng = np.random.default_rng(3)
    k = 10 ** rng.uniform(-12, 4, 300)
    c0, t0 = rng.uniform(0.01, 0.8, 300), rng.uniform(0.0, 0.6, 300)
    new = r._sei_limited_step(k, c0, t0, 1.0, 1e-4)
    for i in range(300):
        rhs = special.exp1(c0[i] / tau) + k[i] * np.exp(-(t0[i] + c0[i]) / tau)
        if special.exp1(1e-14) <= rhs:  # consumed below the step's floor
            assert new["c_neg"][i] == 0.0
            continue
        c = optimize.brentq(lambda c: np.log(special.exp1(c / tau)) - np.log(rhs), 1e-14 * tau, c0[i],
                            xtol=1e-15, rtol=1e-13)
        assert new["c_neg"][i] == pytest.approx(c, rel=1e-8, abs=1e-12), (k[i], c0[i], t0[i])
        assert new["t_sei"][i] == pytest.approx(t0[i] + c0[i] - new["c_neg"][i], rel=1e-12)
