"""Cell chemistry as a simulator condition: kinetics, open-circuit voltage and energy density per cathode.

A categorical condition enters the numeric pipeline (design, decoder, calibration) as its level's code, the
index in the vocabulary (`CATEGORICAL_CONDITIONS`): ``chemistry`` 0 = LCO, 1 = NMC, 2 = LFP. Studies write the
level's name (``chemistry: LFP``); `code` and `level` convert. A code is an identifier, not a quantity: the
simulators round it and refuse anything that is not a level.

Open-circuit voltages [V] vs SOC [1] of the full cell, from the PyBaMM parameter set named per chemistry
(`ocv_from_pybamm`: U_p(y) − U_n(x) between the set's 0 % and 100 % stoichiometries, pybamm 26.10); below
SOC 0 the curve falls to 0 V at SOC −0.05, as the LCO table. ``python -m simulators.chemistry`` prints the
tables from PyBaMM; `tests/simulators/test_chemistry.py` checks the stored ones against it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: SOC grid of the tabulated open-circuit voltages [1]
OCV_SOC = (-0.05, 0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


@dataclass(frozen=True)
class Chemistry:
    """Per-chemistry constants of the pouch-cell chain (`abuse_fe.coupled`).

    Attributes
    ----------
    name : level name (``"LCO"``, ``"NMC"``, ``"LFP"``)
    kinetics : decomposition kinetic set (`simulators.kinetics.load`)
    ocv : open-circuit voltage [V] on `OCV_SOC`
    energy_density : volumetric energy density of the pouch cell [J/m³] (sets the cell's volume from its capacity)
    voltage_nominal : [V]
    pybamm_parameters : the PyBaMM set of the OCV (None: a measured table)
    reference : sources of every value
    """

    name: str
    kinetics: str
    ocv: tuple[float, ...]
    energy_density: float
    voltage_nominal: float
    pybamm_parameters: str | None
    reference: str

    def ocv_at(self, soc):
        """Open-circuit voltage [V] at ``soc`` [1] (linear between table points, clamped outside)."""
        return np.interp(soc, OCV_SOC, self.ocv)


WH_PER_L = 3600.0 * 1000.0  # J/m³ per W h/L

CHEMISTRIES: dict[str, Chemistry] = {
    c.name: c
    for c in (
        Chemistry(
            name="LCO", kinetics="hatchard2001",
            ocv=(0.0, 3.0, 3.45, 3.62, 3.72, 3.77, 3.81, 3.86, 3.90, 3.94, 3.98, 4.07, 4.15),
            energy_density=400.0 * WH_PER_L, voltage_nominal=3.7, pybamm_parameters=None,
            reference=("LCO/graphite pouch: OCV a typical curve through the ORNL cells' readings (4.15 V at 100 %, "
                       "3.98 V at 80 % SOC); kinetics Hatchard et al., J. Electrochem. Soc. 148 (2001) A755 with Kim et "
                       "al., J. Power Sources 170 (2007) 476; 400 W h/L a typical LCO pouch (estimate)"),
        ),
        Chemistry(
            name="NMC", kinetics="bilyaz2020",
            ocv=(0.0, 2.5, 3.109, 3.296, 3.485, 3.581, 3.667, 3.751, 3.841, 3.948, 4.042, 4.097, 4.2),
            energy_density=450.0 * WH_PER_L, voltage_nominal=3.65, pybamm_parameters="Chen2020",
            reference=("NMC811/graphite-SiOx OCV of PyBaMM's Chen2020 set (Chen et al., J. Electrochem. Soc. 167 (2020) "
                       "080534, LG M50); kinetics Bilyaz, Marr & Ezekoye (2020) with Kim et al. (2007) graphite "
                       "reactions (simulators.kinetics.bilyaz2020); 450 W h/L a typical NMC pouch (estimate)"),
        ),
        Chemistry(
            name="LFP", kinetics="kim2007_lfp",
            ocv=(0.0, 2.0, 2.785, 2.978, 3.168, 3.206, 3.252, 3.266, 3.269, 3.274, 3.31, 3.314, 3.6),
            energy_density=250.0 * WH_PER_L, voltage_nominal=3.3, pybamm_parameters="Prada2013",
            reference=("LFP/graphite OCV of PyBaMM's Prada2013 set (Prada et al., J. Electrochem. Soc. 160 (2013) A616, "
                       "A123 cell); kinetics simulators.kinetics.kim2007_lfp; 250 W h/L: the A123 AMP20 pouch "
                       "(19.6 A h × 3.3 V in 227 × 161 × 7.25 mm = 0.265 L, simulators.cells)"),
        ),
    )
}

#: categorical conditions: name → its levels in code order (code = index)
CATEGORICAL_CONDITIONS: dict[str, tuple[str, ...]] = {"chemistry": tuple(CHEMISTRIES)}


def code(level: str) -> float:
    """The code of a chemistry level name (``"LFP"`` → 2.0); `KeyError` naming the levels otherwise."""
    levels = CATEGORICAL_CONDITIONS["chemistry"]
    if level not in levels:
        raise KeyError(f"unknown chemistry {level!r} (levels: {', '.join(levels)})")
    return float(levels.index(level))


def level(value: float) -> Chemistry:
    """The chemistry of a code (a float from a design or a decoder condition vector); `ValueError` unless it is
    within 1e-6 of a level's code."""
    levels = CATEGORICAL_CONDITIONS["chemistry"]
    k = round(float(value)) if math.isfinite(float(value)) else -1
    if not (0 <= k < len(levels) and abs(float(value) - k) < 1e-6):
        raise ValueError(f"chemistry code {value!r} is not one of {dict(enumerate(levels))}")
    return CHEMISTRIES[levels[k]]


def categorical_code(value) -> float | None:
    """The code of ``value`` if it is a level name of any categorical condition, else None."""
    if isinstance(value, str):
        for levels in CATEGORICAL_CONDITIONS.values():
            if value.strip() in levels:
                return float(levels.index(value.strip()))
    return None


def ocv_from_pybamm(parameter_set: str, soc=OCV_SOC[1:], temperature: float = 298.15) -> np.ndarray:
    """Full-cell open-circuit voltage [V] at ``soc`` from a PyBaMM parameter set: U_p(y) − U_n(x) with x, y
    linear in SOC between the set's stoichiometry limits (`pybamm.lithium_ion.get_min_max_stoichiometries`)."""
    import pybamm

    pv = pybamm.ParameterValues(parameter_set)
    x0, x100, y100, y0 = pybamm.lithium_ion.get_min_max_stoichiometries(pv)
    T = pybamm.Scalar(temperature)

    def ocp(name: str, sto: float) -> float:
        f = pv[name]
        try:
            v = f(pybamm.Scalar(sto), T)
        except TypeError:
            v = f(pybamm.Scalar(sto))
        return float(v.evaluate())

    s = np.asarray(soc, dtype=float)
    return np.array([ocp("Positive electrode OCP [V]", y0 - z * (y0 - y100))
                     - ocp("Negative electrode OCP [V]", x0 + z * (x100 - x0)) for z in s])


if __name__ == "__main__":  # regenerate the stored tables
    for chem in CHEMISTRIES.values():
        if chem.pybamm_parameters:
            print(chem.name, chem.pybamm_parameters, np.round(ocv_from_pybamm(chem.pybamm_parameters), 3).tolist())
