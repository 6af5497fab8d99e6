"""Units: parsing, SI conversion, and every registered simulator declares units pint understands."""
from __future__ import annotations

import pytest

import simulators
from risk.units import compatible, parse_quantity, parse_unit, to_si


@pytest.mark.parametrize("text, si", [(("155", "degC"), 428.15), (("2", "A h"), 7200.0), (("5", "mm"), 5e-3),
                                      (("1500", "mAh"), 5400.0), (("10", "lbf"), 44.482216)])
def test_to_si(text, si):
    assert to_si(float(text[0]), text[1]) == pytest.approx(si, rel=1e-6)


def test_compact_spellings_are_understood():
    assert compatible("W/(m2 K)", "W m-2 K-1") and compatible("W/(m^2*K)", "W m-2 K-1")
    assert not compatible("J/K", "kg")
    assert parse_quantity("25 degC") == (25.0, "degree_Celsius")
    with pytest.raises(ValueError, match="unknown unit"):
        parse_unit("furlongs_per_fortnight_zz")


@pytest.mark.parametrize("name", simulators.available())
def test_every_registered_simulator_declares_parseable_units(name):
    cls = simulators.load(name)
    for item in (*cls.parameters, *cls.conditions):
        parse_unit(item.unit)
