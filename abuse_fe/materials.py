"""Thermal material properties of cell components (SI units), with their sources.

The jelly roll (electrodes, separator, electrolyte wound or stacked in layers) is homogenised into an
orthotropic continuum: heat flows easily along the metal current-collector foils and poorly across the
layers. Hence

- cylindrical cells: radial conductivity k_r (across the windings) ≪ axial k_z (along the foils),
- pouch cells: through-plane k_z (across the stack) ≪ in-plane k_x = k_y.

Values (representative of the measured ranges; the simulators treat them as uncertain parameters):

- Drake et al., "Measurement of anisotropic thermophysical properties of cylindrical Li-ion cells",
  J. Power Sources 252 (2014) 298–304: k_r = 0.20 W/(m K), k_z ≈ 30 W/(m K) for 18650/26650 cells,
  specific heat 1.0–1.7 kJ/(kg K).
- Steinhardt et al., "Meta-analysis of experimental results for heat capacity and thermal conductivity
  in lithium-ion batteries: a critical review", J. Power Sources 522 (2022) 230829: cell c_p
  0.8–1.3 kJ/(kg K); cross-plane k 0.15–1.5, in-plane 15–35 W/(m K).
- Bulk density of an 18650 (≈ 45 g in 17.1 cm³ → 2.63 g/cm³) minus an 8 g steel can → jelly roll
  ≈ 2.4 g/cm³. Hatchard et al. (J. Electrochem. Soc. 148 (2001) A755) use ρ c_p ≈ 2.14e6 J/(m³ K)
  for the whole cell.
- Can: nickel-plated low-carbon steel, ρ = 7850 kg/m³, c_p = 475 J/(kg K), k = 50 W/(m K)
  (e.g. Incropera & DeWitt, Fundamentals of Heat and Mass Transfer, Table A.1, AISI 1010).
- Emissivity of a cell surface with a plastic wrap ≈ 0.8–0.9 (Kim et al., J. Power Sources 170 (2007)
  476 use 0.8).
"""
from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Material:
    """An orthotropic solid.

    Parameters
    ----------
    name : str
    density : float
        ρ [kg/m³].
    specific_heat : float
        c_p [J/(kg K)].
    conductivity_a : float
        k along the first axis [W/(m K)]: radial (axisymmetric) or in-plane x, y (pouch).
    conductivity_b : float
        k along the last axis [W/(m K)]: axial z (axisymmetric) or through-plane z (pouch).
    reference : str
    """

    name: str
    density: float
    specific_heat: float
    conductivity_a: float
    conductivity_b: float
    reference: str = ""

    def __post_init__(self):
        for k in ("density", "specific_heat", "conductivity_a", "conductivity_b"):
            if not getattr(self, k) > 0:
                raise ValueError(f"material {self.name!r}: {k} must be > 0, got {getattr(self, k)}")

    @property
    def volumetric_heat_capacity(self) -> float:
        """ρ c_p [J/(m³ K)]."""
        return self.density * self.specific_heat

    def with_(self, **changes) -> "Material":
        return replace(self, **changes)


JELLY_ROLL_CYLINDRICAL = Material(
    "jelly_roll_cylindrical", density=2400.0, specific_heat=1050.0, conductivity_a=0.20, conductivity_b=30.0,
    reference="Drake et al., J. Power Sources 252 (2014) 298; Steinhardt et al., J. Power Sources 522 (2022) 230829",
)
JELLY_ROLL_POUCH = Material(
    "jelly_roll_pouch", density=2500.0, specific_heat=1050.0, conductivity_a=25.0, conductivity_b=0.60,
    reference="Steinhardt et al., J. Power Sources 522 (2022) 230829 (in-plane 15–35, cross-plane 0.15–1.5 W/(m K))",
)
STEEL_CAN = Material(
    "steel_can", density=7850.0, specific_heat=475.0, conductivity_a=50.0, conductivity_b=50.0,
    reference="Incropera & DeWitt, Fundamentals of Heat and Mass Transfer, Table A.1 (plain carbon steel)",
)

EMISSIVITY = 0.8  # Kim et al., J. Power Sources 170 (2007) 476
STEFAN_BOLTZMANN = 5.670374419e-8  # W/(m² K⁴), CODATA 2018


@dataclass(frozen=True)
class CellMaterials:
    """Materials of one cell: the jelly roll, the can (unused for pouch meshes) and the surface emissivity."""

    jelly: Material = JELLY_ROLL_CYLINDRICAL
    casing: Material = STEEL_CAN
    emissivity: float = EMISSIVITY

    def with_(self, **changes) -> "CellMaterials":
        return replace(self, **changes)


CYLINDRICAL = CellMaterials()
POUCH = CellMaterials(jelly=JELLY_ROLL_POUCH)
