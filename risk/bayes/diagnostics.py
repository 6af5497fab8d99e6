"""MCMC diagnostics (R-hat, bulk/tail ESS, divergences, BFMI) → ``diagnostics.json``.

Failing diagnostics are loud: `check` raises `DiagnosticsFailed` carrying the summary.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import arviz as az
import numpy as np


class DiagnosticsFailed(RuntimeError):
    """MCMC diagnostics outside their thresholds; ``.summary`` is the `Diagnostics` record."""

    def __init__(self, summary: "Diagnostics"):
        self.summary = summary
        super().__init__("MCMC diagnostics failed: " + "; ".join(summary.messages)
                         + " (pass allow_bad_diagnostics=True to keep the posterior anyway)")


@dataclass(frozen=True)
class Thresholds:
    """Pass limits: R-hat ≤ ``rhat_max``, ESS ≥ ``ess_min`` (bulk and tail), divergences ≤
    ``divergences_max``, BFMI ≥ ``bfmi_min`` (Vehtari et al. 2021; Betancourt 2016)."""

    rhat_max: float = 1.01
    ess_min: float = 400.0
    divergences_max: int = 0
    bfmi_min: float = 0.3


@dataclass
class Diagnostics:
    """The ``diagnostics.json`` record of docs/contracts.md."""

    ok: bool
    rhat_max: float
    ess_bulk_min: float
    ess_tail_min: float
    divergences: int
    bfmi_min: float
    messages: list[str] = field(default_factory=list)
    rhat_by_variable: dict[str, float] = field(default_factory=dict)  # worst first: which quantities disagree

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2))


def _min_max(ds, reduce) -> float:
    vals = [np.asarray(ds[v].values, dtype=float).ravel() for v in ds.data_vars]
    vals = np.concatenate(vals) if vals else np.array([np.nan])
    vals = vals[np.isfinite(vals)]
    return float(reduce(vals)) if vals.size else float("nan")


def summarize(idata, var_names: list[str] | None = None, thresholds: Thresholds = Thresholds()) -> Diagnostics:
    """Compute the diagnostics of a posterior DataTree (groups ``posterior`` and ``sample_stats``).

    Parameters
    ----------
    idata : ArviZ DataTree with ``posterior (chain, draw, ...)`` and ``sample_stats`` (``diverging``,
        ``energy``).
    var_names : free variables to check (default: all posterior variables; deterministics whose
        draws are constant, e.g. a pinned cutpoint, are ignored by the finite filter).
    thresholds : pass limits.
    """
    post = idata["posterior"].to_dataset()
    if var_names is not None:
        post = post[var_names]
    # constant components (pinned values, unit diagonals of correlations) give NaN R-hat: drop them
    keep = {v: post[v] for v in post.data_vars if float(post[v].std()) > 0}
    post = post[list(keep)]
    rhat = az.rhat(post)
    ess_b = az.ess(post, method="bulk")
    ess_t = az.ess(post, method="tail")
    ss = idata["sample_stats"].to_dataset()
    div = int(ss["diverging"].sum()) if "diverging" in ss else 0
    if "energy" in ss:  # E-BFMI per chain (Betancourt 2016): mean(ΔE²) / Var(E)
        e = np.asarray(ss["energy"].transpose("chain", "draw").values, dtype=float)
        bfmi = np.mean(np.diff(e, axis=1) ** 2, axis=1) / np.var(e, axis=1)
    else:
        bfmi = np.array([np.nan])
    per_var = {v: _min_max(rhat[[v]], np.max) for v in rhat.data_vars}
    per_var = dict(sorted(((v, r) for v, r in per_var.items() if np.isfinite(r)), key=lambda kv: -kv[1]))
    d = Diagnostics(ok=True, rhat_max=_min_max(rhat, np.max), ess_bulk_min=_min_max(ess_b, np.min),
                    ess_tail_min=_min_max(ess_t, np.min), divergences=div,
                    bfmi_min=float(np.nanmin(bfmi)) if np.isfinite(bfmi).any() else float("nan"),
                    rhat_by_variable=per_var)
    t = thresholds
    if not d.rhat_max <= t.rhat_max:
        worst = [f"{v} {r:.3f}" for v, r in per_var.items() if r > t.rhat_max][:4]
        d.messages.append(f"R-hat max {d.rhat_max:.3f} > {t.rhat_max} ({', '.join(worst)})")
    if not d.ess_bulk_min >= t.ess_min:
        d.messages.append(f"bulk ESS min {d.ess_bulk_min:.0f} < {t.ess_min:.0f}")
    if not d.ess_tail_min >= t.ess_min:
        d.messages.append(f"tail ESS min {d.ess_tail_min:.0f} < {t.ess_min:.0f}")
    if d.divergences > t.divergences_max:
        d.messages.append(f"{d.divergences} divergent transitions (> {t.divergences_max})")
    if np.isfinite(d.bfmi_min) and d.bfmi_min < t.bfmi_min:
        d.messages.append(f"BFMI min {d.bfmi_min:.2f} < {t.bfmi_min}")
    d.ok = not d.messages
    return d


def check(diag: Diagnostics, allow_bad_diagnostics: bool = False) -> Diagnostics:
    """Raise `DiagnosticsFailed` unless ``diag.ok`` or ``allow_bad_diagnostics``; returns ``diag``."""
    if not diag.ok and not allow_bad_diagnostics:
        raise DiagnosticsFailed(diag)
    return diag
