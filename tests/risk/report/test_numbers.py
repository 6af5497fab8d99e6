"""Human-readable number formatting."""
import math

import pytest

from risk.report import numbers


@pytest.mark.parametrize("p, text", [(1 / 3400, "1 in 3,400"), (1 / 40, "1 in 40"),
                                     (0.0123, "1 in 81"), (0.5, "50 %"), (0.0, "0 (none in any draw)"),
                                     (math.nan, "not available"), (1e-7, "1 in 10,000,000")])
def test_one_in(p, text):
    assert numbers.one_in(p) == text


def test_probability_words_reads_like_the_issue():
    assert numbers.probability_words(1 / 40, 1 / 200, 1 / 12) == \
        "about 1 in 40 (90 % credible: 1 in 200 – 1 in 12)"


@pytest.mark.parametrize("x, unit, text", [(0.0123456, "m", "0.0123 m"), (1234567.0, "J", "1.23 × 10^6 J"),
                                           (4321.0, "s", "4,320 s"), (0.5, "1", "0.5"),
                                           (True, None, "yes"), (math.inf, "K", "∞ K")])
def test_quantity(x, unit, text):
    assert numbers.quantity(x, unit) == text


def test_money_and_hash():
    assert numbers.money(1234567.8, "EUR") == "EUR 1,234,568"
    assert numbers.short_hash("abcdef0123456789", 6) == "abcdef…"
