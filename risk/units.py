"""Unit parsing and conversion to SI (pint), shared by the study schema and the data readers.

Examples
--------
>>> to_si(155, "degC")
428.15
>>> si_unit("W/(m^2 K)")
'kilogram / kelvin / second ** 3'
"""
from __future__ import annotations

import re
from functools import lru_cache

import pint

_ALIASES = {"1": "dimensionless", "-": "dimensionless", "": "dimensionless", "%": "percent",
            "A h": "A*h", "Ah": "A*h", "mAh": "mA*h"}


@lru_cache(maxsize=1)
def registry() -> pint.UnitRegistry:
    return pint.UnitRegistry(autoconvert_offset_to_baseunit=True)


def _normalise(unit: str) -> str:
    """Accept the common compact spellings: ``m2`` → ``m**2``, ``m-2 K-1`` → ``m**-2 K**-1``, ``Ohm``, ``mOhm``, ``MOhm``."""
    text = _ALIASES.get(unit.strip(), unit.strip())
    text = re.sub(r"(?<=[A-Za-z])(-?\d+)(?![\d.])", r"**\1", text)
    return re.sub(r"(?<![A-Za-z])([mkMGuµ]?)Ohm\b", r"\1ohm", text)


def parse_unit(unit: str) -> pint.Unit:
    """Parse a unit string (``"W/(m^2 K)"``, ``"W m-2 K-1"``, ``"degC"``, ``"1"``); `ValueError` if pint cannot."""
    text = _normalise(unit)
    try:
        return registry().Unit(text)
    except Exception as err:  # pint raises several types (UndefinedUnitError, DefinitionSyntaxError, ...)
        raise ValueError(f"unknown unit {unit!r} ({type(err).__name__})") from None


def compatible(a: str, b: str) -> bool:
    """True when units ``a`` and ``b`` have the same dimensionality."""
    return parse_unit(a).dimensionality == parse_unit(b).dimensionality


def to_si(value: float, unit: str) -> float:
    """Convert ``value`` in ``unit`` to SI base units (offset units such as degC handled)."""
    q = registry().Quantity(value, parse_unit(unit))
    return float(q.to_base_units().magnitude)


def convert(value: float, unit: str, target: str) -> float:
    """Convert ``value`` from ``unit`` to ``target`` (must be compatible)."""
    return float(registry().Quantity(value, parse_unit(unit)).to(parse_unit(target)).magnitude)


def si_unit(unit: str) -> str:
    """The SI base unit of ``unit`` as text."""
    return str(registry().Quantity(1.0, parse_unit(unit)).to_base_units().units)


def parse_quantity(text: str | float | int, default_unit: str = "1") -> tuple[float, str]:
    """``"155 degC"`` → ``(155.0, "degC")``; a bare number takes ``default_unit``."""
    if isinstance(text, (int, float)):
        return float(text), default_unit
    m = re.fullmatch(r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(.*?)\s*", str(text))
    try:
        q = registry().Quantity(float(m[1]), parse_unit(m[2])) if m and m[2] else registry().Quantity(str(text))
    except Exception as err:
        raise ValueError(f"cannot read quantity {text!r} ({type(err).__name__})") from None
    if isinstance(q, (int, float)):
        return float(q), default_unit
    return float(q.magnitude), str(q.units)
