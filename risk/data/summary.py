"""Summary of a real-data dataset: a dict for ``--json`` and a rich table for the terminal."""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import xarray as xr


def summarise(ds: xr.Dataset) -> dict:
    """``{"kind", "tests", "families": {name: count}, "skipped": [{"file", "reason"}], ...}``.

    For indentation also ``channels`` (tests with each curve/feature present), ``shorts_detected``,
    ``hazard_labelled``, ``unmatched_summary_rows``, ``unmatched_files``; for ftrc ``missing_counts``.
    """
    kind = ds.attrs.get("kind", "")
    fam_var = "cell_family" if "cell_family" in ds else "cell_type"
    families = dict(sorted(Counter(str(v) for v in ds[fam_var].values).items()))
    out = {"kind": kind, "tests": int(ds.sizes["test"]), "families": families,
           "skipped": json.loads(ds.attrs.get("skipped", "[]"))}
    if kind == "indentation":
        channels = {}
        for name in ("force_indenter", "voltage", "temperature_max_tc"):
            channels[name] = int(np.isfinite(ds[name].values).any(axis=1).sum())
        for name in ("displacement_short_onset", "temperature_peak", "temperature_rise_rate_max"):
            channels[name] = int(np.isfinite(ds[name].values).sum())
        out.update(channels=channels, shorts_detected=int(ds["short_detected"].values.sum()),
                   hazard_labelled=int(np.isfinite(ds["hazard_level"].values).sum()),
                   temperature_censored=int(ds["temperature_peak_censored"].values.sum()),
                   force_suspect=[str(t) for t in ds["test"].values[ds["force_suspect"].values.astype(bool)]],
                   unmatched_summary_rows=json.loads(ds.attrs.get("unmatched_summary_rows", "[]")),
                   unmatched_files=json.loads(ds.attrs.get("unmatched_files", "[]")))
    elif kind == "ftrc":
        out.update(missing_counts={k: v for k, v in json.loads(ds.attrs.get("missing_counts", "{}")).items() if v},
                   bottom_rupture=int(ds["bottom_rupture"].values.sum()),
                   triggers=dict(Counter(str(v) for v in ds["trigger"].values)))
    return out


def render(summary: dict, console=None) -> None:
    """Print `summarise` output as rich tables."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    console.print(f"[bold]{summary['kind']}[/bold]: {summary['tests']} tests")
    t = Table(title="families")
    t.add_column("family")
    t.add_column("tests", justify="right")
    for k, v in summary["families"].items():
        t.add_row(k, str(v))
    console.print(t)
    for key in ("channels", "missing_counts", "triggers"):
        if key in summary:
            t = Table(title=key)
            t.add_column("name")
            t.add_column("count", justify="right")
            for k, v in summary[key].items():
                t.add_row(k, str(v))
            console.print(t)
    for key in ("shorts_detected", "hazard_labelled", "temperature_censored", "bottom_rupture"):
        if key in summary:
            console.print(f"{key}: {summary[key]}")
    if summary.get("force_suspect"):
        console.print(f"force suspect (peak < 20 N): {', '.join(summary['force_suspect'])}")
    if summary.get("unmatched_summary_rows"):
        console.print(f"tests.csv rows without a file: {summary['unmatched_summary_rows']}")
    if summary.get("unmatched_files"):
        console.print(f"files without a tests.csv row ({len(summary['unmatched_files'])}): "
                      f"{', '.join(summary['unmatched_files'])}")
    t = Table(title=f"skipped files ({len(summary['skipped'])})")
    t.add_column("file")
    t.add_column("reason")
    for s in summary["skipped"]:
        t.add_row(s["file"], s["reason"])
    console.print(t)
