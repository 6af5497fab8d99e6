"""Numbers for people: probabilities as "1 in 3,400", quantities with units, short hashes.

Examples
--------
>>> one_in(1 / 3400)
'1 in 3,400'
>>> probability_words(0.025, 0.005, 0.08)
'about 1 in 40 (90 % credible: 1 in 200 – 1 in 12)'
>>> quantity(0.0123, "m")
'0.0123 m'
"""
from __future__ import annotations

import math
from typing import Any


def _sig(x: float, digits: int = 2) -> float:
    """Round ``x`` to ``digits`` significant figures."""
    if x == 0 or not math.isfinite(x):
        return x
    return round(x, digits - 1 - int(math.floor(math.log10(abs(x)))))


def group(x: float) -> str:
    """Integer-like number with thousands separators: ``3400 → '3,400'``."""
    if abs(x) >= 1e12:
        return f"{x:.2g}".replace("e+", " × 10^")
    return f"{int(round(x)):,}"


def one_in(p: float) -> str:
    """Probability as "1 in N" (N to two significant figures); percentages above 20 %.

    ``0`` gives ``"0 (none in any draw)"``; NaN gives ``"not available"``.
    """
    if p is None or not math.isfinite(p):
        return "not available"
    if p <= 0:
        return "0 (none in any draw)"
    if p >= 0.2:
        return f"{_sig(100 * p):g} %"
    return f"1 in {group(_sig(1.0 / p))}"


def probability_words(mean: float, low: float, high: float, level: int = 90) -> str:
    """``"about 1 in 40 (90 % credible: 1 in 200 – 1 in 12)"``."""
    return f"about {one_in(mean)} ({level} % credible: {one_in(low)} – {one_in(high)})"


def percent(p: float, digits: int = 2) -> str:
    """``0.0123 → '1.2 %'`` (two significant figures)."""
    if p is None or not math.isfinite(p):
        return "not available"
    return f"{_sig(100 * p, digits):g} %"


def number(x: Any, digits: int = 3) -> str:
    """A number to ``digits`` significant figures with separators; text passes through."""
    if isinstance(x, bool) or x is None:
        return {True: "yes", False: "no", None: "—"}[x]
    if isinstance(x, str):
        return x
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not math.isfinite(x):
        return "not available" if math.isnan(x) else ("∞" if x > 0 else "−∞")
    if x == 0:
        return "0"
    if 1e-3 <= abs(x) < 1e6:
        v = _sig(x, digits)
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:g}"
    mant, exp = f"{x:.{digits - 1}e}".split("e")
    return f"{mant} × 10^{int(exp)}"


def quantity(x: Any, unit: str | None, digits: int = 3) -> str:
    """Number with its unit (``"1"`` and empty units print as a bare number)."""
    text = number(x, digits)
    if unit in (None, "", "1", "-"):
        return text
    return f"{text} {unit}"


def money(x: float, currency: str) -> str:
    """Currency amount with separators: ``1234567.8, 'EUR' → 'EUR 1,234,568'``."""
    if x is None or not math.isfinite(x):
        return "not available"
    if abs(x) >= 100:
        return f"{currency} {x:,.0f}"
    return f"{currency} {number(x)}"


def short_hash(h: Any, n: int = 12) -> str:
    """First ``n`` characters of a hash string (the full value is kept in a tooltip)."""
    s = str(h)
    return s if len(s) <= n else s[:n] + "…"
