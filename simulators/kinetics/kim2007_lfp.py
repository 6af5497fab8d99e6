"""LiFePO4 (LFP) / graphite thermal-runaway kinetics: the Kim et al. (2007) four-reaction set with an LFP cathode.

References
----------
G.-H. Kim, A. Pesaran, R. Spotnitz, "A three-dimensional thermal abuse model for lithium-ion cells",
J. Power Sources 170 (2007) 476–489, Table 1: SEI decomposition, anode–electrolyte reaction and
electrolyte decomposition (the graphite and carbonate-electrolyte chemistry does not depend on the
cathode; identical rows and contents as `simulators.kinetics.hatchard2001`, whose ``W_CARBON`` and
``W_ELECTROLYTE`` are reused here).
T. D. Hatchard, D. D. MacNeil, A. Basu, J. R. Dahn, J. Electrochem. Soc. 148 (2001) A755 (rate laws,
initial states c_sei0 = 0.15, c_neg0 = 0.75, t_sei0 = t_sei,ref = 0.033, alpha0 = 0.04).
LFP cathode–electrolyte reaction: A = 2 × 10^8 1/s, Ea = 103.0 kJ/mol, H = 1.947 × 10^5 J/kg, as tabulated
("Table 1. Key parameters of thermal runaway reactions") for the 3D lumped runaway model of a 50 Ah
LiFePO4 cell in the web article "Thermal Runaway Characteristics and Thermal Management of Lithium-Ion
Batteries Under Local Overheating Conditions", https://www.voltcoffer.com/?p=12770 (a secondary source: it
names neither authors nor the original paper; the same table lists Kim's SEI and anode rows unchanged).
The brief's candidate primary source, P. Peng, F. Jiang, "Thermal safety of lithium-ion batteries with
various cathode materials: a numerical study", Int. J. Heat Mass Transfer 103 (2016) 1008–1016 (cathode
table for LCO, NCA, NCM, LMO and LFP), could not be retrieved here: whether this row is Peng & Jiang's is
NOT verified. Rename the set ``peng2016_lfp`` only once the row has been checked against that table (its
Ea is quoted to 0.1 kJ/mol only).
Composition data for the LFP content: About:Energy / Faraday Institution BPX example "LFP|graphite 2 Ah
cylindrical 18650 cell" (github.com/FaradayInstitution/BPX, examples/lfp_18650_cell_BPX.json), used
below for the LFP content estimate.

Values as published (H in J/g → J/kg ×1e3, W in g/m3 → kg/m3 ×1e-3; Ea 103.0 kJ/mol → 1.03e5 J/mol):

==============  ========  ==========  =========  ======================  ========================
reaction        A [1/s]   Ea [J/mol]  H [J/g]    W [g/m3]                source
==============  ========  ==========  =========  ======================  ========================
sei             1.667e15  1.3508e5    257        6.104e5 (carbon)        Kim 2007 Table 1
anode           2.5e13    1.3508e5    1714       6.104e5 (carbon)        Kim 2007 Table 1
cathode (LFP)   2.0e8     1.03e5      194.7      1.12e6 (LiFePO4), est.  50 Ah LFP model; W: BPX
electrolyte     5.14e25   2.74e5      155        4.07e5                  Kim 2007 Table 1
==============  ========  ==========  =========  ======================  ========================

Disagreement between sources: the 50 Ah LFP table pairs Kim's electrolyte A and Ea (5.14e25 1/s,
274 kJ/mol) with H = 6.2e5 J/kg (620 J/g) instead of Kim's 155 J/g. We keep Kim's 155 J/g: the A/Ea pair is
Kim's and Kim tabulates it with 155 J/g, the electrolyte is the same LiPF6/carbonate as in the other sets, and
the 4× larger value is not explained in that source (it would add 0.19 GJ/m3 and make the "safest"
chemistry release more heat than the LCO set).

LFP content W_pos (estimate — not published with the set), from the BPX LFP 18650 teardown parameters:
active volume fraction of the positive coating eps = a r / 3 = 4.41846e6 1/m × 0.5e-6 m / 3 = 0.7364;
LiFePO4 mass per coating volume = eps c_max M = 0.7364 × 21200 mol/m3 × 0.157757 kg/mol = 2463 kg/m3;
jelly-roll repeat per electrode pair = L_pos + L_neg + L_sep + (L_Al + L_Cu)/2
= 64.3 + 44.4 + 20 + (15 + 10)/2 = 141.2 µm (collector foils 15 µm Al / 10 µm Cu are our assumption,
BPX does not give them); W_pos = 2463 × 64.3 / 141.2 = 1122 kg/m3 = 1.12e6 g/m3. Check: 0.0896 m2 ×
64.3 µm × 2463 kg/m3 = 14.2 g LiFePO4 × 170 mAh/g × (0.950 − 0.0875) = 2.08 Ah against the nominal 2 Ah.
(The same data give W_carbon ≈ 0.757 × 2263 kg/m3 × 44.4 / 141.2 = 539 kg/m3, 12 % below Kim's 610 kg/m3;
Kim's value is kept so that the graphite reactions are identical in all sets.)

The cathode reaction uses Hatchard's autocatalytic conversion law f = alpha (1 - alpha) with Hatchard's
alpha0 = 0.04 (the LFP source gives no alpha0). Onset "gates" are not used.

SOC rule (as for `hatchard2001` / `bilyaz2020`): c_neg0 ∝ SOC (lithium in the graphite), and the reactive
cathode content ∝ SOC — for the two-phase LiFePO4/FePO4 electrode the delithiated FePO4 fraction equals
the state of charge. SEI and electrolyte amounts do not depend on SOC.
"""
from simulators.kinetics.hatchard2001 import W_CARBON, W_ELECTROLYTE
from simulators.kinetics.rates import KineticSet, Reaction

J_PER_G = 1e3  # J/g → J/kg
KJ_PER_MOL = 1e3  # kJ/mol → J/mol

# LiFePO4 content per jelly-roll volume, estimate from the BPX LFP 18650 (module docstring) [kg/m3]
_EPS_POS = 4.41846e6 * 0.5e-6 / 3  # active volume fraction of the positive coating [1]
_RHO_LFP = 21200 * 0.157757  # c_max × M(LiFePO4) [kg/m3]
_L_POS, _L_NEG, _L_SEP, _L_AL, _L_CU = 64.3, 44.4, 20.0, 15.0, 10.0  # µm
W_LFP = _EPS_POS * _RHO_LFP * _L_POS / (_L_POS + _L_NEG + _L_SEP + (_L_AL + _L_CU) / 2)  # ≈ 1122 kg/m3

KINETICS = KineticSet(
    name="kim2007_lfp",
    reference=("Kim et al., J. Power Sources 170 (2007) 476, Table 1 (SEI, anode, electrolyte); "
               "LFP cathode row (2e8 1/s, 103.0 kJ/mol, 1.947e5 J/kg) from the 50 Ah LiFePO4 runaway model "
               "table at https://www.voltcoffer.com/?p=12770 (secondary; origin in Peng & Jiang, Int. J. Heat Mass "
               "Transfer 103 (2016) 1008, not verified); LFP content estimated from the BPX LFP 18650 example"),
    reactions=(
        Reaction("sei", A=1.667e15, Ea=1.3508e5, H=257 * J_PER_G, W=W_CARBON, reactant="c_sei", law="order"),
        Reaction("anode", A=2.5e13, Ea=1.3508e5, H=1714 * J_PER_G, W=W_CARBON, reactant="c_neg",
                 law="sei_limited", layer="t_sei", layer_ref=0.033),
        Reaction("cathode", A=2.0e8, Ea=103.0 * KJ_PER_MOL, H=194.7 * J_PER_G, W=W_LFP, reactant="alpha",
                 law="conversion"),
        Reaction("electrolyte", A=5.14e25, Ea=2.74e5, H=155 * J_PER_G, W=W_ELECTROLYTE, reactant="c_e",
                 law="order"),
    ),
    state_names=("c_sei", "c_neg", "t_sei", "alpha", "c_e"),
    initial_state={"c_sei": 0.15, "c_neg": 0.75, "t_sei": 0.033, "alpha": 0.04, "c_e": 1.0},
    soc_rule={"initial": ("c_neg",), "content": ("cathode",)},
    bounds={"c_sei": (0.0, 1.0), "c_neg": (0.0, 1.0), "t_sei": (0.0, 10.0), "alpha": (0.0, 1.0), "c_e": (0.0, 1.0)},
    notes="LFP cathode row from a secondary source (origin in Peng & Jiang 2016 not verified); W_pos is an estimate.",
)
