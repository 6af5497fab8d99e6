"""Prior distributions of physical parameters, shared by designs (unit cube → θ) and inference.

A `Prior` is a frozen description (`dist` plus its numbers) that can
- map a unit-cube sample to the parameter (`ppf`, used by Sobol/LHS designs),
- evaluate its log density (`logpdf`),
- be turned into a PyMC distribution by `risk` (see `risk.bayes`).

Supported `dist`: ``uniform(low, high)``, ``loguniform(low, high)``, ``normal(mu, sigma)``,
``lognormal(mu, sigma)`` (of log θ), ``truncnormal(mu, sigma, low, high)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import special, stats

DISTRIBUTIONS = ("uniform", "loguniform", "normal", "lognormal", "truncnormal")


@dataclass(frozen=True)
class Prior:
    """Prior of one scalar parameter, in the parameter's own SI unit."""

    dist: str
    low: float | None = None
    high: float | None = None
    mu: float | None = None
    sigma: float | None = None

    def __post_init__(self):
        if self.dist not in DISTRIBUTIONS:
            raise ValueError(f"unknown prior dist {self.dist!r}; expected one of {', '.join(DISTRIBUTIONS)}")
        needs = {
            "uniform": ("low", "high"),
            "loguniform": ("low", "high"),
            "normal": ("mu", "sigma"),
            "lognormal": ("mu", "sigma"),
            "truncnormal": ("mu", "sigma", "low", "high"),
        }[self.dist]
        missing = [k for k in needs if getattr(self, k) is None]
        if missing:
            raise ValueError(f"{self.dist} prior needs {', '.join(missing)}")
        if self.low is not None and self.high is not None and not self.low < self.high:
            raise ValueError(f"prior bounds inverted or empty: low={self.low} >= high={self.high}")
        if self.sigma is not None and not self.sigma > 0:
            raise ValueError(f"prior sigma must be > 0, got {self.sigma}")
        if self.dist == "loguniform" and not self.low > 0:
            raise ValueError(f"loguniform prior needs low > 0, got {self.low}")

    @cached_property
    def frozen(self) -> stats.rv_continuous:
        """The equivalent frozen `scipy.stats` distribution (built once: freezing costs ~1.5 ms)."""
        if self.dist == "uniform":
            return stats.uniform(self.low, self.high - self.low)
        if self.dist == "loguniform":
            return stats.loguniform(self.low, self.high)
        if self.dist == "normal":
            return stats.norm(self.mu, self.sigma)
        if self.dist == "lognormal":
            return stats.lognorm(s=self.sigma, scale=np.exp(self.mu))
        a, b = (self.low - self.mu) / self.sigma, (self.high - self.mu) / self.sigma
        return stats.truncnorm(a, b, loc=self.mu, scale=self.sigma)

    def ppf(self, u: np.ndarray) -> np.ndarray:
        """Quantile function: unit-cube samples ``u`` (any shape, in (0, 1)) → parameter values.

        Closed forms where they agree with scipy to the last bits (the encoder draws prior samples thousands
        of times; scipy's generic ``ppf`` and re-freezing cost 75 % of the quick calorimetry encoder fit, 47 → 20 s);
        scipy for the truncated normal."""
        u = np.asarray(u, dtype=float)
        if self.dist == "uniform":
            return self.low + (self.high - self.low) * u
        if self.dist == "loguniform":
            return np.exp(np.log(self.low) + (np.log(self.high) - np.log(self.low)) * u)
        if self.dist == "normal":
            return self.mu + self.sigma * special.ndtri(u)
        if self.dist == "lognormal":
            return np.exp(self.mu + self.sigma * special.ndtri(u))
        return self.frozen.ppf(u)  # scipy's tail-safe inversion (a closed form differs by ~1e-12 relative)

    def logpdf(self, x: np.ndarray) -> np.ndarray:
        return self.frozen.logpdf(np.asarray(x, dtype=float))

    def sample(self, rng: np.random.Generator, size: int | tuple[int, ...]) -> np.ndarray:
        return self.ppf(rng.uniform(size=size))

    @property
    def support(self) -> tuple[float, float]:
        lo, hi = self.frozen.support()
        return float(lo), float(hi)

    @property
    def log_scale(self) -> bool:
        """True where the parameter is naturally sampled on a log axis (loguniform, lognormal)."""
        return self.dist in ("loguniform", "lognormal")
