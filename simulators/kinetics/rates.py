r"""Arrhenius rate laws of thermal-runaway decomposition reactions, vectorised over any array shape.

Each reaction :math:`x` consumes (or converts) a dimensionless reactant state :math:`c_x` at

.. math::  R_x = A_x \exp\!\left(-\frac{E_{a,x}}{R_g T}\right) f_x(\text{state})   \quad [1/s]

and releases heat :math:`q_x = H_x W_x R_x` [W/m3], with :math:`H_x` the specific enthalpy [J/kg]
and :math:`W_x` the content of the reacting material per unit volume of jelly roll [kg/m3]
(Hatchard et al., J. Electrochem. Soc. 148 (2001) A755; Kim et al., J. Power Sources 170 (2007) 476).

Three rate laws cover the published sets:

``"order"``       :math:`f = c^m`, :math:`\dot c = -R` (SEI, electrolyte, separator melting);
``"conversion"``  :math:`f = \alpha (1-\alpha)`, :math:`\dot\alpha = +R` (autocatalytic cathode
                  decomposition, degree of conversion :math:`\alpha` from ``alpha0`` to 1);
``"sei_limited"`` :math:`f = c\,\exp(-t/t_{ref})`, :math:`\dot c = -R`, :math:`\dot t = +R`
                  (anode–electrolyte reaction slowed by the regrown SEI layer of thickness *t*).

Heat bookkeeping: the heat still releasable is
:math:`Q_{rem} = \sum_x H_x W_x\,\rho_x` with :math:`\rho_x = c_x` (order, sei_limited) or
:math:`1-\alpha_x` (conversion), so :math:`q = -\mathrm{d}Q_{rem}/\mathrm{d}t` exactly.

`KineticSet.advance` integrates the kinetics at fixed temperature over a step *exactly* (closed-form
solutions of each law at constant *T*; the sei-limited law through the exponential integral
:math:`E_1`, inverted by a safeguarded Newton iteration), so it is unconditionally stable for stiff
rates and returns a heat release that equals ``heat_remaining(old) - heat_remaining(new)``.
"""
from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import special

R_GAS = 8.314462618  # J/(mol K), CODATA 2018

LAWS = ("order", "conversion", "sei_limited")

# Numerics of the exact sei-limited step (E1 inversion); one place.
NUMERICS = {"newton_max_iter": 60, "x_min": 1e-14, "x_max": 650.0}


@dataclass(frozen=True)
class Reaction:
    """One Arrhenius decomposition reaction.

    Parameters
    ----------
    name : str
        Identifier, e.g. ``"sei"``.
    A : float or array
        Frequency factor [1/s] (an array broadcasting against the states gives every cell of a batch its own).
    Ea : float
        Activation energy [J/mol].
    H : float
        Specific reaction enthalpy [J/kg] (exothermic > 0; the papers tabulate J/g).
    W : float or array
        Content of reacting material per jelly-roll volume [kg/m3] (papers tabulate g/m3; an array as for A).
    reactant : str
        State variable consumed (``order``, ``sei_limited``) or converted (``conversion``).
    law : str
        One of ``"order"``, ``"conversion"``, ``"sei_limited"`` (module docstring).
    m : float
        Reaction order of the ``order`` law [1].
    layer : str or None
        State variable grown by a ``sei_limited`` reaction (SEI thickness measure *t_sei*).
    layer_ref : float
        Reference layer thickness :math:`t_{ref}` of the ``sei_limited`` law [1].
    """

    name: str
    A: float
    Ea: float
    H: float
    W: float
    reactant: str
    law: str = "order"
    m: float = 1.0
    layer: str | None = None
    layer_ref: float = 1.0

    def __post_init__(self):
        if self.law not in LAWS:
            raise ValueError(f"reaction {self.name!r}: unknown law {self.law!r}; expected one of {LAWS}")
        if not (np.all(self.A > 0) and self.Ea > 0 and np.all(self.W >= 0) and self.m > 0):
            raise ValueError(f"reaction {self.name!r}: need A > 0, Ea > 0, W >= 0, m > 0")
        if self.law == "sei_limited" and (self.layer is None or not self.layer_ref > 0):
            raise ValueError(f"reaction {self.name!r}: sei_limited law needs `layer` and layer_ref > 0")

    def rate_constant(self, T: np.ndarray) -> np.ndarray:
        """k(T) = A exp(-Ea / (R T)) [1/s], elementwise."""
        return self.A * np.exp(-self.Ea / (R_GAS * np.asarray(T, dtype=float)))

    def remaining(self, state: dict) -> np.ndarray:
        """Fraction ρ of the reactant still able to react [1] (c, or 1 - α for conversion)."""
        s = np.asarray(state[self.reactant], dtype=float)
        return 1.0 - s if self.law == "conversion" else s

    def rate(self, T: np.ndarray, state: dict) -> np.ndarray:
        """R = k(T) f(state) [1/s], elementwise (clipped states: non-negative)."""
        k = self.rate_constant(T)
        c = np.asarray(state[self.reactant], dtype=float)
        if self.law == "order":
            return k * np.maximum(c, 0.0) ** self.m
        if self.law == "conversion":
            a = np.minimum(np.maximum(c, 0.0), 1.0)
            return k * a * (1.0 - a)
        t = np.asarray(state[self.layer], dtype=float)
        return k * np.maximum(c, 0.0) * np.exp(-t / self.layer_ref)

    # -- exact step at constant temperature ---------------------------------------------------------
    def step(self, T: np.ndarray, state: dict, dt: float, rtol: float) -> dict[str, np.ndarray]:
        """The states this reaction changes after ``dt`` [s] at fixed ``T`` (closed-form solution)."""
        k = self.rate_constant(T)
        c = np.asarray(state[self.reactant], dtype=float)
        if self.law == "order":
            c = np.maximum(c, 0.0)
            if self.m == 1.0:
                return {self.reactant: c * np.exp(-k * dt)}
            # c^(1-m) = c0^(1-m) - (1-m) k dt   (m < 1: finite-time extinction → clip at 0)
            base = c ** (1.0 - self.m) - (1.0 - self.m) * k * dt
            return {self.reactant: np.maximum(base, 0.0) ** (1.0 / (1.0 - self.m))}
        if self.law == "conversion":
            # logistic: α(t) = 1 / (1 + (1/α0 - 1) e^{-k t});  α0 = 0 stays 0, α0 = 1 stays 1
            a = np.minimum(np.maximum(c, 0.0), 1.0)
            with np.errstate(divide="ignore", over="ignore"):
                odds = np.where(a > 0, (1.0 - a) / np.where(a > 0, a, 1.0), np.inf)
                new = np.where(a > 0, 1.0 / (1.0 + odds * np.exp(-k * dt)), 0.0)
            return {self.reactant: new}
        return self._sei_limited_step(k, c, np.asarray(state[self.layer], dtype=float), dt, rtol)

    def _sei_limited_step(self, k, c0, t0, dt, rtol):
        r"""Exact solution of ċ = -k c e^{-t/τ}, ṫ = -ċ at constant k.

        With t = t0 + c0 - c:  ċ = -k' c e^{c/τ},  k' = k e^{-(t0+c0)/τ}, hence
        :math:`E_1(c/τ) = E_1(c_0/τ) + k' Δt`; solved for s = ln(c/τ) by safeguarded Newton. ln E1(e^s) is
        concave and decreasing, so Newton started right of the root converges to it monotonically. The root is
        bracketed by the solution without layer growth (rate k e^{-t_0/τ}, the fastest: left of the root) and the
        solution at the slowest rate the step can reach (the layer grown by that fastest consumption Δ₁: right of
        the root); Newton starts at the right bound, which is within O(Δt²) of the root, and needs 2–3 iterations
        (from s = ln(c_0/τ): ~8).
        """
        tau = self.layer_ref
        c0 = np.maximum(c0, 0.0)
        shape = np.broadcast(k, c0, t0).shape
        k, c0, t0 = (v if np.shape(v) == shape else np.broadcast_to(v, shape) for v in (k, c0, t0))
        x0 = np.minimum(np.maximum(c0 / tau, NUMERICS["x_min"]), NUMERICS["x_max"])
        # ln Y = ln(E1(x0) + k' dt), with ln k' = ln k - (t0 + c0)/τ
        with np.errstate(divide="ignore"):
            ln_kdt = np.log(k * dt) - (t0 + c0) / tau
        ln_y = np.logaddexp(np.log(special.exp1(x0)), ln_kdt)
        lo = np.full(shape, np.log(NUMERICS["x_min"]))
        hi = np.log(x0)
        done_zero = np.log(special.exp1(NUMERICS["x_min"])) <= ln_y  # consumed to below x_min: c → 0
        kappa_dt = k * np.exp(-t0 / tau) * dt  # consumption exponent without layer growth
        lo = np.minimum(np.maximum(hi - kappa_dt, lo), hi)
        grown = c0 * -np.expm1(-kappa_dt)  # layer growth Δ₁ at that fastest consumption
        s = np.minimum(np.maximum(hi - kappa_dt * np.exp(-grown / tau), lo), hi)
        for _ in range(NUMERICS["newton_max_iter"]):
            x = np.exp(s)
            e1 = special.exp1(x)
            gs = np.log(e1) - ln_y  # ln E1(e^s) - ln Y, decreasing in s
            dg = -np.exp(-x) / e1  # d ln E1(e^s)/ds = -x e^{-x} / (x E1(x))
            hi = np.where(gs <= 0, s, hi)
            lo = np.where(gs > 0, s, lo)
            s_new = s - gs / dg
            bad = ~np.isfinite(s_new) | (s_new < lo) | (s_new > hi)
            s_new = np.where(bad, 0.5 * (lo + hi), s_new)
            conv = np.abs(s_new - s) < 0.1 * rtol
            s = s_new
            if np.all(conv | done_zero):
                break
        c = np.where(done_zero, 0.0, np.minimum(tau * np.exp(s), c0))
        c = np.where(c0 <= NUMERICS["x_min"] * tau, c0, c)
        return {self.reactant: c, self.layer: t0 + (c0 - c)}


@dataclass(frozen=True)
class KineticSet:
    """A citable, internally consistent set of decomposition reactions.

    Parameters
    ----------
    name, reference : str
        Registry name and literature reference(s).
    reactions : tuple of Reaction
    state_names : tuple of str
        State variables (dimensionless), e.g. ``("c_sei", "c_neg", "t_sei", "alpha", "c_e")``.
    initial_state : dict
        Initial value of every state variable at the reference state of charge.
    soc_rule : dict
        How stored reactants scale with SOC (see `at_soc`): ``{"initial": {state: True},
        "content": {reaction: True}}``; the rule is documented in each parameter module.
    bounds : dict
        Physical range ``(low, high)`` of each state (states are clipped to it).

    Examples
    --------
    >>> from simulators.kinetics import load
    >>> ks = load("hatchard2001")
    >>> st = ks.initial(shape=(3,))
    >>> new, q = ks.advance(np.full(3, 450.0), st, 10.0)
    """

    name: str
    reference: str
    reactions: tuple[Reaction, ...]
    state_names: tuple[str, ...]
    initial_state: dict[str, float]
    soc_rule: dict = field(default_factory=dict)
    bounds: dict = field(default_factory=dict)
    notes: str = ""

    def __post_init__(self):
        names = set(self.state_names)
        for r in self.reactions:
            used = {r.reactant} | ({r.layer} if r.layer else set())
            if not used <= names:
                raise ValueError(f"{self.name}: reaction {r.name!r} uses unknown states {used - names}")
        if set(self.initial_state) != names:
            raise ValueError(f"{self.name}: initial_state keys {sorted(self.initial_state)} != {sorted(names)}")

    # -- state -------------------------------------------------------------------------------------
    def initial(self, shape=()) -> dict[str, np.ndarray]:
        """Initial state arrays of ``shape`` (float64), one per state variable [1]."""
        return {k: np.full(shape, float(v)) for k, v in self.initial_state.items()}

    def clip(self, state: dict) -> dict[str, np.ndarray]:
        """States clipped to their physical range (``bounds``; default ``[0, inf)``)."""
        # np.minimum/np.maximum: the same result as np.clip at a fifth of its call overhead (small ring arrays)
        out = {}
        for k, v in state.items():
            low, high = self.bounds.get(k, (0.0, np.inf))
            out[k] = np.minimum(np.maximum(np.asarray(v, dtype=float), low), high)
        return out

    # -- rates -------------------------------------------------------------------------------------
    def rates(self, T: np.ndarray, state: dict) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Time derivatives of the states [1/s] and volumetric heat source q [W/m3].

        ``T`` [K] and every state array broadcast together (any shape); pure numpy, elementwise.
        """
        T = np.asarray(T, dtype=float)
        shape = np.broadcast_shapes(T.shape, *(np.shape(v) for v in state.values()))
        d = {k: np.zeros(shape) for k in self.state_names}
        q = np.zeros(shape)
        for r in self.reactions:
            R = r.rate(T, state)
            if r.law == "conversion":
                d[r.reactant] = d[r.reactant] + R
            else:
                d[r.reactant] = d[r.reactant] - R
                if r.law == "sei_limited":
                    d[r.layer] = d[r.layer] + R
            q = q + r.H * r.W * R
        return d, q

    def heat_sources(self, T: np.ndarray, state: dict) -> dict[str, np.ndarray]:
        """Per-reaction volumetric heat source q_x = H_x W_x R_x [W/m3]."""
        return {r.name: r.H * r.W * r.rate(T, state) for r in self.reactions}

    def heat_remaining(self, state: dict) -> np.ndarray:
        """Heat still releasable per jelly-roll volume if every reactant were consumed [J/m3]."""
        return sum(r.H * r.W * r.remaining(state) for r in self.reactions)

    def advance(self, T: np.ndarray, state: dict, dt: float | np.ndarray, *, rtol: float = 1e-4):
        """Integrate the kinetics at fixed temperature ``T`` [K] over ``dt`` [s] (a scalar, or an array
        broadcasting against the states: one step length per cell of a batch).

        Each reaction is integrated exactly (closed form at constant T; reactions sharing a state
        are applied one after the other, an operator splitting that is exact when they do not share
        states, as in both published sets). Returns ``(new_state, released)`` with ``released`` the
        heat per volume over the step [J/m3] = ``heat_remaining(old) - heat_remaining(new)``.
        """
        if np.any(np.asarray(dt) < 0):
            raise ValueError(f"dt must be >= 0, got {dt}")
        T = np.asarray(T, dtype=float)
        shape = np.broadcast_shapes(T.shape, *(np.shape(v) for v in state.values()))
        old = self.clip({k: v if np.shape(v) == shape else np.broadcast_to(v, shape) for k, v in state.items()})
        new = dict(old)
        for r in self.reactions:
            new.update(r.step(T, new, dt, rtol))
        new = self.clip(new)
        return new, self.heat_remaining(old) - self.heat_remaining(new)

    # -- variations --------------------------------------------------------------------------------
    def with_(self, *, log_A: dict | None = None, dEa: dict | None = None, H: dict | None = None,
              W: dict | None = None, initial: dict | None = None, name: str | None = None) -> "KineticSet":
        """A new set with uncertain-parameter overrides applied.

        Parameters
        ----------
        log_A : dict, reaction → natural-log multiplier of A [1] (A ← A e^{log_A})
        dEa : dict, reaction → additive shift of Ea [J/mol]
        H : dict, reaction → multiplier of the enthalpy [1]
        W : dict, reaction → multiplier of the content [1]
        initial : dict, state → new initial value [1]
        """
        known = {r.name for r in self.reactions}
        for label, d in (("log_A", log_A), ("dEa", dEa), ("H", H), ("W", W)):
            bad = set(d or {}) - known
            if bad:
                raise KeyError(f"{self.name}.with_({label}=...): unknown reactions {sorted(bad)}; known {sorted(known)}")
        bad = set(initial or {}) - set(self.state_names)
        if bad:
            raise KeyError(f"{self.name}.with_(initial=...): unknown states {sorted(bad)}; known {self.state_names}")
        rs = tuple(
            replace(r, A=r.A * float(np.exp((log_A or {}).get(r.name, 0.0))),
                    Ea=r.Ea + float((dEa or {}).get(r.name, 0.0)),
                    H=r.H * float((H or {}).get(r.name, 1.0)),
                    W=r.W * float((W or {}).get(r.name, 1.0)))
            for r in self.reactions
        )
        return replace(self, reactions=rs, initial_state={**self.initial_state, **(initial or {})},
                       name=name or self.name)

    def at_soc(self, soc: float) -> "KineticSet":
        """The set for a cell at state of charge ``soc`` ∈ [0, 1] (the reference values are 100 %).

        Rule (stated per module in ``soc_rule``): initial states listed in ``soc_rule["initial"]``
        (lithium intercalated in the anode, c_neg) scale linearly with SOC; contents ``W`` of the
        reactions in ``soc_rule["content"]`` (delithiated, reactive cathode) scale linearly with
        SOC. SEI, electrolyte and separator are independent of SOC.
        """
        if not 0.0 <= soc <= 1.0:
            raise ValueError(f"soc must be in [0, 1], got {soc}")
        init = {s: self.initial_state[s] * soc for s in self.soc_rule.get("initial", ())}
        W = {r: soc for r in self.soc_rule.get("content", ())}
        return self.with_(initial=init, W=W)

    def per_cell(self, soc: np.ndarray, log_A: np.ndarray) -> tuple["KineticSet", dict[str, np.ndarray]]:
        """The set for a batch of B cells, each at its own state of charge (the `at_soc` rule) and with the ln A of
        every reaction shifted by its own ``log_A``: A and W become ``(B, 1)`` arrays that broadcast against
        ``(B, n)`` states. Returns ``(set, initial states (B, 1))``; `take` selects cells of the batch."""
        soc = np.asarray(soc, dtype=float).reshape(-1, 1)
        if np.any((soc < 0.0) | (soc > 1.0)):
            raise ValueError(f"soc must be in [0, 1], got {soc.ravel()}")
        factor = np.exp(np.asarray(log_A, dtype=float)).reshape(-1, 1)
        content, initial = set(self.soc_rule.get("content", ())), set(self.soc_rule.get("initial", ()))
        rs = tuple(replace(r, A=r.A * factor, W=r.W * soc if r.name in content else r.W) for r in self.reactions)
        init = {k: v * soc if k in initial else np.full(soc.shape, float(v)) for k, v in self.initial_state.items()}
        return replace(self, reactions=rs), init

    def take(self, index: np.ndarray) -> "KineticSet":
        """The cells ``index`` of a `per_cell` batch (array-valued A and W indexed along their first axis)."""
        pick = lambda v: v[index] if np.ndim(v) else v  # noqa: E731
        return replace(self, reactions=tuple(replace(r, A=pick(r.A), W=pick(r.W)) for r in self.reactions))

    def total_heat(self, soc: float = 1.0) -> float:
        """Heat releasable from the initial state at ``soc`` [J/m3]."""
        ks = self.at_soc(soc)
        return float(ks.heat_remaining(ks.initial()))


SETS = {"hatchard2001": "simulators.kinetics.hatchard2001", "bilyaz2020": "simulators.kinetics.bilyaz2020",
        "kim2007_lfp": "simulators.kinetics.kim2007_lfp"}


def available() -> list[str]:
    """Names of the kinetic parameter sets."""
    return sorted(SETS)


def load(name: str) -> KineticSet:
    """The kinetic set ``name`` (e.g. ``"hatchard2001"``); `KeyError` with a did-you-mean otherwise."""
    if name not in SETS:
        hint = difflib.get_close_matches(name, list(SETS), n=1)
        raise KeyError(f"unknown kinetic set {name!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")
                       + f" (available: {', '.join(available())})")
    return importlib.import_module(SETS[name]).KINETICS
