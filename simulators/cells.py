"""Cell formats: geometry, mass, heat capacity, emissivity, nominal capacity/voltage, jelly-roll volume.

All values SI. Each entry names its source; values that are estimates say so.

>>> from simulators.cells import get_cell
>>> cell = get_cell("18650_nmc_lg_mj1")
>>> cell.heat_capacity          # J/K
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass

SIGMA_SB = 5.670374419e-8  # W/(m2 K4), Stefan–Boltzmann constant (CODATA 2018)


@dataclass(frozen=True)
class CellFormat:
    """One cell type.

    Attributes
    ----------
    name, form, chemistry : str
        ``form`` is ``"cylindrical"`` or ``"pouch"``.
    dims : tuple of float
        Cylindrical: (diameter, height) [m]; pouch: (length, width, thickness) [m].
    mass : float [kg]
    cp : float, specific heat capacity [J/(kg K)]
    emissivity : float [1]
    h_conv : float, natural-convection coefficient in still air [W/(m2 K)]
    capacity_nominal : float [A s]
    voltage_nominal : float [V]
    voltage_max, voltage_min : float, OCV at 100 % / 0 % SOC [V] (linear OCV of the lumped model)
    resistance_internal : float, DC internal resistance [Ohm]
    jelly_roll_fraction : float, jelly-roll volume / cell volume [1]
    kinetics : str or None, default kinetic set (`simulators.kinetics.load`); None: none bundled
    pybamm_parameters : str, PyBaMM parameter set closest to this cell
    reference : str
    """

    name: str
    form: str
    chemistry: str
    dims: tuple[float, ...]
    mass: float
    cp: float
    emissivity: float
    h_conv: float
    capacity_nominal: float
    voltage_nominal: float
    voltage_max: float
    voltage_min: float
    resistance_internal: float
    jelly_roll_fraction: float
    kinetics: str | None
    pybamm_parameters: str
    reference: str

    @property
    def volume(self) -> float:
        """Outer cell volume [m3]."""
        if self.form == "cylindrical":
            d, h = self.dims
            return math.pi * d**2 / 4 * h
        length, width, thick = self.dims
        return length * width * thick

    @property
    def surface_area(self) -> float:
        """Outer surface exchanging heat with the surroundings [m2]."""
        if self.form == "cylindrical":
            d, h = self.dims
            return math.pi * d * h + 2 * math.pi * d**2 / 4
        length, width, thick = self.dims
        return 2 * (length * width + length * thick + width * thick)

    @property
    def jelly_roll_volume(self) -> float:
        """Volume holding the reacting materials [m3] (the kinetic contents W are per this volume)."""
        return self.jelly_roll_fraction * self.volume

    @property
    def heat_capacity(self) -> float:
        """m c_p [J/K]."""
        return self.mass * self.cp

    @property
    def energy_nominal(self) -> float:
        """Stored electrical energy at 100 % SOC with the linear OCV [J] = Q (V_max + V_min) / 2."""
        return self.capacity_nominal * 0.5 * (self.voltage_max + self.voltage_min)

    def ocv(self, soc):
        """Linear open-circuit voltage V_min + (V_max - V_min) soc [V] (lumped-model approximation)."""
        return self.voltage_min + (self.voltage_max - self.voltage_min) * soc

    def energy_stored(self, soc):
        """Electrical energy between 0 and ``soc`` with the linear OCV [J]: Q (V_min s + ΔV s²/2)."""
        return self.capacity_nominal * (self.voltage_min * soc + 0.5 * (self.voltage_max - self.voltage_min) * soc**2)


AH = 3600.0  # A s per A h

CELLS: dict[str, CellFormat] = {
    c.name: c
    for c in (
        CellFormat(
            name="18650_lco_hatchard2001", form="cylindrical", chemistry="LCO/graphite",
            dims=(0.018, 0.065), mass=2580.0 * math.pi * 0.018**2 / 4 * 0.065, cp=830.0, emissivity=0.8,
            h_conv=7.17, capacity_nominal=2.2 * AH, voltage_nominal=3.7, voltage_max=4.2, voltage_min=3.0,
            resistance_internal=0.05, jelly_roll_fraction=1.0, kinetics="hatchard2001",
            pybamm_parameters="Chen2020",
            reference=("Kim et al., J. Power Sources 170 (2007) 476, Table 2 (ρ = 2580 kg/m3, c_p = 830 J/(kg K), "
                       "ε = 0.8, 18650 geometry); h = 7.17 W/(m2 K) from Hatchard et al., J. Electrochem. Soc. 148 (2001) "
                       "A755. Homogeneous cell (jelly-roll fraction 1) as in Hatchard's lumped model. Capacity, OCV range "
                       "and resistance are typical LCO 18650 values (estimates, not from the papers)."),
        ),
        CellFormat(
            name="18650_nmc_lg_mj1", form="cylindrical", chemistry="NMC811/graphite-SiOx",
            dims=(0.0185, 0.065), mass=0.049, cp=1100.0, emissivity=0.8, h_conv=7.0,
            capacity_nominal=3.5 * AH, voltage_nominal=3.635, voltage_max=4.2, voltage_min=2.5,
            resistance_internal=0.03, jelly_roll_fraction=0.87, kinetics="bilyaz2020", pybamm_parameters="Chen2020",
            reference=("LG Chem INR18650MJ1 datasheet (3.5 Ah, 3.635 V, 49 g, 2.5–4.2 V); c_p ≈ 1.1 kJ/(kg K) typical of "
                       "measured 18650 NMC cells; jelly-roll fraction 0.87 = (r_can,in² - r_mandrel²)/r² × h_roll/h "
                       "(estimate); BFD anchor 88.3 ± 7.9 kJ (Finegan et al., J. Power Sources 597 (2024) 234106)."),
        ),
        CellFormat(
            name="21700_nmc_lg_m50", form="cylindrical", chemistry="NMC811/graphite-SiOx",
            dims=(0.021, 0.070), mass=0.069, cp=1100.0, emissivity=0.8, h_conv=7.0,
            capacity_nominal=5.0 * AH, voltage_nominal=3.63, voltage_max=4.2, voltage_min=2.5,
            resistance_internal=0.025, jelly_roll_fraction=0.88, kinetics="bilyaz2020", pybamm_parameters="Chen2020",
            reference=("LG INR21700-M50 datasheet (5.0 Ah, 3.63 V, 69 g); Chen et al., J. Electrochem. Soc. 167 (2020) "
                       "080534 (PyBaMM set Chen2020 is this cell); c_p and jelly-roll fraction as for the 18650 (estimates)."),
        ),
        CellFormat(
            name="pouch_lfp_a123_amp20", form="pouch", chemistry="LFP/graphite",
            dims=(0.227, 0.161, 0.00725), mass=0.496, cp=1100.0, emissivity=0.9, h_conv=5.0,
            capacity_nominal=19.6 * AH, voltage_nominal=3.3, voltage_max=3.6, voltage_min=2.0,
            resistance_internal=0.002, jelly_roll_fraction=0.95, kinetics=None,
            pybamm_parameters="Prada2013",
            reference=("A123 AMP20M1HD-A datasheet (19.6 Ah, 3.3 V, 496 g, 227×161×7.25 mm); PyBaMM Prada2013 is an A123 "
                       "LFP set. No LFP runaway kinetic set is bundled (kinetics=None): simulators ask for an explicit "
                       "`kinetics=` choice rather than silently using an NMC set for an LFP cell."),
        ),
    )
}


def get_cell(name: str) -> CellFormat:
    """The cell format ``name``; `KeyError` with a did-you-mean otherwise."""
    if name not in CELLS:
        hint = difflib.get_close_matches(name, list(CELLS), n=1)
        raise KeyError(f"unknown cell {name!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")
                       + f" (available: {', '.join(sorted(CELLS))})")
    return CELLS[name]
