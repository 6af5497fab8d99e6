"""The stages of a study, in order: simulate → ingest → train → calibrate → predict → report → export.

Each function takes a `RunContext`, writes its artefacts into the run directory and returns a small
JSON summary for ``stages.json``. Heavy packages are imported inside the stage that needs them.
"""
from __future__ import annotations

import json

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from risk.pipeline import RunContext, Stage


def progress_bar(ctx: RunContext) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=ctx.console, transient=False)


def simulate(ctx: RunContext) -> dict:
    """Ensemble over the priors on Dask → ``ensemble.zarr`` (+ ``failures.jsonl``)."""
    from simulators.ensemble import design, run_ensemble

    s = ctx.study
    plan = design(s.priors(), s.condition_values(), s.ensemble.size, s.ensemble.design, ctx.stage_seed("simulate"))
    with progress_bar(ctx) as bar:
        task = bar.add_task(f"simulating {s.simulator.name}", total=len(plan))
        res = run_ensemble(s.simulator.name, dict(s.simulator.options), plan, ctx.path("ensemble.zarr"),
                           cluster=ctx.cluster or s.ensemble.cluster, workers=s.ensemble.workers,
                           threads_per_worker=s.ensemble.threads_per_worker, timeout=s.ensemble.timeout,
                           attrs={"study_hash": s.hash},
                           progress=lambda done, total: bar.update(task, completed=done))
    if len(res.failed):
        ctx.console.print(f"[yellow]{len(res.failed)} simulations failed; see {ctx.path('failures.jsonl')}[/yellow]")
    ok = res.n_done_before + len(res.computed)
    if ok == 0:
        from risk.errors import InputError

        raise InputError("every simulation failed; see failures.jsonl", path=ctx.path("failures.jsonl"))
    return {"samples": res.n_total, "finished": ok, "failed": len(res.failed) + 0,
            "computed_now": len(res.computed), "seconds": round(res.wall_time, 2)}


def ingest(ctx: RunContext) -> dict:
    """Real tests → ``real.nc`` (same observables as the simulations)."""
    s = ctx.study
    if s.data is None:
        return {"tests": 0, "note": "study has no data section"}
    from risk.data import read, write_real

    ds = read(s.data.kind, s.data_path())
    if s.data.families:
        keep = ds["cell_family"].isin(s.data.families)
        ds = ds.sel(test=keep.values)
    write_real(ds, ctx.path("real.nc"))
    return {"tests": int(ds.sizes.get("test", 0)), "kind": s.data.kind}


def report(ctx: RunContext) -> dict:
    """``report.html`` + ``report.pdf`` from the saved artefacts (never recomputes)."""
    from risk.report.build import build_report

    html, pdf = build_report(ctx.out, ctx.study.model_dump(mode="json"), pdf="pdf" in ctx.study.report.formats)
    return {"html": html.name, "pdf": pdf.name if pdf else None}


def export(ctx: RunContext) -> dict:
    """Insurer exports: ``exports/risk.{parquet,csv,json}`` and the exceedance curve."""
    from risk.export import write_exports

    files = write_exports(ctx.out, ctx.study.model_dump(mode="json"))
    return {"files": sorted(files)}


STAGES: list[Stage] = [
    Stage("simulate", simulate, sections=("simulator", "parameters", "conditions", "ensemble"),
          artefacts=("ensemble.zarr",), description="ensemble of simulations over the priors"),
    Stage("ingest", ingest, sections=("data",), artefacts=(), reads_data=True,
          description="real tests → real.nc"),
]
