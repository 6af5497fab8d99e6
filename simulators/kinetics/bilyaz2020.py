"""NMC / graphite thermal-runaway kinetics: the two-step NMC cathode set compiled by Bilyaz et al. (2020).

References
----------
S. Bilyaz, K. C. Marr, O. A. Ezekoye, "Modeling of thermal runaway propagation in lithium-ion battery
modules" (2020), kinetic table for an NMC/graphite cell: cathode step 1 (A = 1.75e9 1/s,
Ea = 1.1495e5 J/mol, H = 77 J/g), cathode step 2 (1.077e12 1/s, 1.5888e5 J/mol, 84 J/g),
electrolyte (3e15 1/s, 1.7e5 J/mol, 800 J/g), separator melting (1.5e50 1/s, 4.2e5 J/mol,
-233.2 J/g, endothermic). The same numbers appear in public COMSOL NMC runaway models.
X. Feng et al., Appl. Energy 154 (2015) 74 (separator melting law for NMC cells).
Graphite SEI and anode–electrolyte reactions: Kim et al., J. Power Sources 170 (2007) 476, Table 1
(the graphite anode chemistry does not depend on the cathode; Bilyaz et al. use the same SEI values).

Consistency check (see the reference notes): every cathode and electrolyte enthalpy here is from the
NMC table; no LiCoO2 enthalpy (314 / 155 J/g) is mixed with the NMC rates. The two cathode steps are
separate autocatalytic conversions α1, α2 (each f = α(1-α), α0 = 0.04 as Hatchard's convention)
acting on the same NMC content W_pos. Public implementations disagree on the electrolyte enthalpy
(800 vs 140 J/g); we keep the tabulated 800 J/g of the NMC table. The separator content
W_sep = 6.0e4 g/m3 is our estimate for an 18650/21700 jelly roll (12 µm PE, porosity ≈ 0.45,
≈ 0.9 g per 18650 cell) — not a published value of the set. Some public variants add temperature
gates (e.g. 453 K for step 1); gates are modelling choices and are not used.

SOC rule: as for `hatchard2001` — c_neg0 ∝ SOC and the reactive (delithiated) cathode content ∝ SOC.
"""
from simulators.kinetics.hatchard2001 import W_CARBON, W_CATHODE, W_ELECTROLYTE
from simulators.kinetics.rates import KineticSet, Reaction

J_PER_G = 1e3
G_PER_M3 = 1e-3
W_SEPARATOR = 6.0e4 * G_PER_M3  # kg/m3, estimate (module docstring)

KINETICS = KineticSet(
    name="bilyaz2020",
    reference=("Bilyaz, Marr, Ezekoye (2020) NMC kinetic table; graphite reactions from "
               "Kim et al., J. Power Sources 170 (2007) 476; separator melting Feng et al., Appl. Energy 154 (2015) 74"),
    reactions=(
        Reaction("sei", A=1.667e15, Ea=1.3508e5, H=257 * J_PER_G, W=W_CARBON, reactant="c_sei", law="order"),
        Reaction("anode", A=2.5e13, Ea=1.3508e5, H=1714 * J_PER_G, W=W_CARBON, reactant="c_neg",
                 law="sei_limited", layer="t_sei", layer_ref=0.033),
        Reaction("separator", A=1.5e50, Ea=4.2e5, H=-233.2 * J_PER_G, W=W_SEPARATOR, reactant="c_sep", law="order"),
        Reaction("cathode1", A=1.75e9, Ea=1.1495e5, H=77 * J_PER_G, W=W_CATHODE, reactant="alpha1", law="conversion"),
        Reaction("cathode2", A=1.077e12, Ea=1.5888e5, H=84 * J_PER_G, W=W_CATHODE, reactant="alpha2", law="conversion"),
        Reaction("electrolyte", A=3e15, Ea=1.7e5, H=800 * J_PER_G, W=W_ELECTROLYTE, reactant="c_e", law="order"),
    ),
    state_names=("c_sei", "c_neg", "t_sei", "c_sep", "alpha1", "alpha2", "c_e"),
    initial_state={"c_sei": 0.15, "c_neg": 0.75, "t_sei": 0.033, "c_sep": 1.0, "alpha1": 0.04, "alpha2": 0.04,
                   "c_e": 1.0},
    soc_rule={"initial": ("c_neg",), "content": ("cathode1", "cathode2")},
    bounds={"c_sei": (0.0, 1.0), "c_neg": (0.0, 1.0), "t_sei": (0.0, 10.0), "c_sep": (0.0, 1.0),
            "alpha1": (0.0, 1.0), "alpha2": (0.0, 1.0), "c_e": (0.0, 1.0)},
)
