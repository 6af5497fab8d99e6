"""Simulated indentation outcomes → the 1–7 observed-hazard levels of the ORNL/Sandia indentation dataset.

The dataset (Lin et al., J. Energy Storage 61 (2023) 106798; Mendeley doi:10.17632/sn2kv34r4h) scores
each test by what was seen:

===== =========================================================================================
level observed effect
===== =========================================================================================
1     no effect, instant local Joule heating, no internal discharge
2     no effect, local heating, internal discharge
3     moderate: extended Joule heating, local reactions (no spread)
4     moderate: extended Joule heating, local reactions (limited spread)
5     pouch swelling, extended Joule heating, local reactions
6     rupture of pouch, gas release
7     rupture of pouch, smoke, gas release, fire (thermal runaway)
===== =========================================================================================

A simulation does not see smoke or swelling, so each level is tied to a physical quantity the coupled
model computes, with the thresholds in `HazardRules` (defaults justified below; they are plain
numbers so that a study can recalibrate them against the labelled tests):

- ``short`` — an internal short occurred (the failure criterion was met). No short → level 1.
- ``discharge_fraction`` — charge passed through the short / capacity. Below
  ``discharge_min`` (2 %) the short did not discharge the cell ("no internal discharge") → 1.
- ``local_reaction_fraction`` — fraction of the releasable decomposition heat of the hot-spot volume
  actually released. Below ``local_reaction_min`` (5 %) there are no "local reactions" → 2.
- ``spread_fraction`` — the same fraction for the bulk of the cell (outside the hot spot). Below
  ``spread_min`` (0.5 %) the reactions did not spread → 3, else → 4.
- ``temperature_bulk_peak`` — peak mean temperature of the cell. Electrolyte vapour and SEI/anode
  decomposition gas swell a pouch from ≈ 110–130 °C (``swelling_temperature`` = 120 °C) → 5; the pouch
  seal opens (rupture, gas release) from ≈ 150–170 °C (``rupture_temperature`` = 160 °C) → 6
  (pouch venting temperatures: Feng et al., Energy Storage Mater. 10 (2018) 246, Table 2 & Fig. 6).
- ``thermal_runaway`` → 7.

Levels are checked from the top (7) down; the first rule that holds gives the level.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

#: the dataset's level descriptions
LEVELS: dict[int, str] = {
    1: "no effect, instant local Joule heating, no internal discharge",
    2: "no effect, local heating, internal discharge",
    3: "moderate effect, extended Joule heating, local reactions (no spread)",
    4: "moderate effect, extended Joule heating, local reactions (limited spread)",
    5: "pouch swelling, extended Joule heating, local reactions",
    6: "rupture of pouch, gas release",
    7: "rupture of pouch, smoke, gas release, fire (thermal runaway)",
}


@dataclass(frozen=True)
class HazardRules:
    """Thresholds of the outcome → level mapping (see the module docstring)."""

    discharge_min: float = 0.02  # [1]
    local_reaction_min: float = 0.05  # [1]
    spread_min: float = 0.005  # [1]
    swelling_temperature: float = 393.15  # [K] 120 °C
    rupture_temperature: float = 433.15  # [K] 160 °C


def hazard_level(outcome: Mapping[str, float], rules: HazardRules = HazardRules()) -> int:
    """The 1–7 hazard level of one simulated test.

    Parameters
    ----------
    outcome : mapping with ``short`` (bool), ``thermal_runaway`` (bool), ``temperature_bulk_peak`` [K],
        ``discharge_fraction`` [1], ``local_reaction_fraction`` [1], ``spread_fraction`` [1].

    Returns
    -------
    int in 1..7
    """
    if not bool(outcome["short"]):
        return 1
    if bool(outcome["thermal_runaway"]):
        return 7
    T = float(outcome["temperature_bulk_peak"])
    if T >= rules.rupture_temperature:
        return 6
    if T >= rules.swelling_temperature:
        return 5
    if not float(outcome["discharge_fraction"]) >= rules.discharge_min:
        return 1
    if not float(outcome["local_reaction_fraction"]) >= rules.local_reaction_min:
        return 2
    if not float(outcome["spread_fraction"]) >= rules.spread_min:
        return 3
    return 4


def hazard_levels(outcomes: Mapping[str, np.ndarray], rules: HazardRules = HazardRules()) -> np.ndarray:
    """Vectorised `hazard_level` over arrays of equal shape (int array)."""
    keys = ("short", "thermal_runaway", "temperature_bulk_peak", "discharge_fraction",
            "local_reaction_fraction", "spread_fraction")
    arrs = np.broadcast_arrays(*(np.asarray(outcomes[k]) for k in keys))
    out = np.empty(arrs[0].shape, dtype=int)
    for idx in np.ndindex(out.shape):
        out[idx] = hazard_level({k: a[idx] for k, a in zip(keys, arrs)}, rules)
    return out
