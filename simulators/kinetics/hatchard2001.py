"""LiCoO2 / graphite thermal-runaway kinetics of Hatchard et al. (2001) with Kim et al. (2007).

References
----------
T. D. Hatchard, D. D. MacNeil, A. Basu, J. R. Dahn, "Thermal model of cylindrical and prismatic
lithium-ion cells", J. Electrochem. Soc. 148 (2001) A755–A761 (SEI, anode–electrolyte and
LiCoO2–electrolyte reactions fitted to ARC data of MCMB and LiCoO2 electrodes).
G.-H. Kim, A. Pesaran, R. Spotnitz, "A three-dimensional thermal abuse model for lithium-ion cells",
J. Power Sources 170 (2007) 476–489, Table 1 (the same three reactions plus electrolyte
decomposition; the values below are Kim's Table 1).

Values as tabulated (H in J/g → J/kg ×1e3; W in g/m3 → kg/m3 ×1e-3). W are contents per unit
volume of jelly roll. Consistency checked: every enthalpy, content and rate belongs to the same
LiCoO2/MCMB cell chemistry (no NMC numbers mixed in).

SOC rule (our modelling choice, used by `KineticSet.at_soc`): Hatchard's c_neg is the fraction of
lithium intercalated in the carbon (0.75 for the charged cell), so c_neg0 ∝ SOC; the reactive
cathode content is the delithiated Li_(1-x)CoO2 (MacNeil & Dahn, J. Electrochem. Soc. 148 (2001)
A1205 show its heat release grows with the degree of delithiation), so W_pos ∝ SOC. SEI and
electrolyte amounts do not depend on SOC.
"""
from simulators.kinetics.rates import KineticSet, Reaction

J_PER_G = 1e3  # J/g → J/kg
G_PER_M3 = 1e-3  # g/m3 → kg/m3

W_CARBON = 6.104e5 * G_PER_M3  # kg/m3
W_CATHODE = 1.221e6 * G_PER_M3  # kg/m3
W_ELECTROLYTE = 4.07e5 * G_PER_M3  # kg/m3

KINETICS = KineticSet(
    name="hatchard2001",
    reference=("Hatchard et al., J. Electrochem. Soc. 148 (2001) A755; "
               "Kim et al., J. Power Sources 170 (2007) 476, Table 1"),
    reactions=(
        Reaction("sei", A=1.667e15, Ea=1.3508e5, H=257 * J_PER_G, W=W_CARBON, reactant="c_sei", law="order"),
        Reaction("anode", A=2.5e13, Ea=1.3508e5, H=1714 * J_PER_G, W=W_CARBON, reactant="c_neg",
                 law="sei_limited", layer="t_sei", layer_ref=0.033),
        Reaction("cathode", A=6.667e13, Ea=1.396e5, H=314 * J_PER_G, W=W_CATHODE, reactant="alpha",
                 law="conversion"),
        Reaction("electrolyte", A=5.14e25, Ea=2.74e5, H=155 * J_PER_G, W=W_ELECTROLYTE, reactant="c_e",
                 law="order"),
    ),
    state_names=("c_sei", "c_neg", "t_sei", "alpha", "c_e"),
    initial_state={"c_sei": 0.15, "c_neg": 0.75, "t_sei": 0.033, "alpha": 0.04, "c_e": 1.0},
    soc_rule={"initial": ("c_neg",), "content": ("cathode",)},
    bounds={"c_sei": (0.0, 1.0), "c_neg": (0.0, 1.0), "t_sei": (0.0, 10.0), "alpha": (0.0, 1.0), "c_e": (0.0, 1.0)},
)
