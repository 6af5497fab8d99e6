"""The ``risk`` command line: validate a study, run it end to end, or run one stage.

Exit codes: 0 success · 2 bad input (study, data file; one line naming file, line and field) ·
3 failing sampler diagnostics (unless ``inference.allow_bad_diagnostics``).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from risk.errors import InputError

app = typer.Typer(name="risk", help="Thermal-runaway risk studies: simulate → fidelity → convergence → ingest → train → calibrate → crossvalidate → "
                       "predict → report → export.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
console = Console(stderr=True)

StudyArg = Annotated[Path, typer.Argument(help="study YAML file", show_default=False)]
OutOpt = Annotated[Path | None, typer.Option("--out", help="run directory (default runs/<study name>/)")]
ForceOpt = Annotated[bool, typer.Option("--force", help="redo stages even if their inputs are unchanged")]
QuickOpt = Annotated[bool, typer.Option("--quick", help="tiny sizes (the study's quick: overrides) for smoke tests")]
ClusterOpt = Annotated[str | None, typer.Option("--cluster", help="Dask scheduler address (tcp://host:port); default: the study's")]


def _fail(err: InputError, code: int = 2):
    console.print(f"[red]error:[/red] {escape(str(err))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _context(study_path: Path, out: Path | None, force: bool, quick: bool, cluster: str | None):
    from risk.pipeline import RunContext
    from risk.rundir import default_run_dir, run_dir
    from risk.study import load_study

    study = load_study(study_path, quick=quick)
    run_dir(study, out, quick)  # refuses the project, the data, their parents and foreign folders
    return RunContext(study=study, out=out or default_run_dir(study, quick), quick=quick, force=force,
                      cluster=cluster, console=console)


def _run(study_path: Path, out, force, quick, cluster, only: list[str] | None):
    from risk.pipeline import Pipeline, data_hashes

    try:  # input checks first, before the heavy imports: a hostile input is refused in about a second
        ctx = _context(study_path, out, force, quick, cluster)
        hashes = data_hashes(ctx.study.data_path())  # checks the data folder's links first
    except InputError as err:
        _fail(err)
    from risk.bayes.diagnostics import DiagnosticsFailed
    from risk.report.pdf import MissingToolError
    from risk.provenance import provenance, write_provenance
    from risk.runlock import RunLock
    from risk.stages import STAGES

    try:
        with RunLock(ctx.out):  # one writer per run directory (exit 2 naming the holder's PID)
            (ctx.out / "study.yaml").write_text(Path(study_path).read_text())
            seeds = {s.name: ctx.stage_seed(s.name) for s in STAGES}
            write_provenance(ctx.out / "provenance.json", provenance(ctx.study, hashes, seeds))
            status = Pipeline(STAGES, ctx).run(only=only)
    except InputError as err:
        _fail(err)
    except DiagnosticsFailed as err:
        console.print(f"[red]error:[/red] sampler diagnostics failed ({escape('; '.join(err.summary.messages))}); "
                      "see diagnostics.json, or set inference.allow_bad_diagnostics to keep the result",
                      highlight=False, soft_wrap=True)
        raise typer.Exit(3)
    except MissingToolError as err:
        console.print(f"[red]error:[/red] {escape(str(err))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    console.print(f"[green]done[/green] → {ctx.out}  ({', '.join(f'{k}: {v}' for k, v in status.items())})")
    _exit_on_bad_diagnostics(ctx)


def _exit_on_bad_diagnostics(ctx):
    """Exit 3 when the run's posterior failed its diagnostics (also on a cached rerun), unless allowed."""
    diag_path = ctx.out / "diagnostics.json"
    if not diag_path.exists():
        return
    diag = json.loads(diag_path.read_text())
    if not diag.get("ok", True) and ctx.study.inference.allow_bad_diagnostics:
        console.print(f"[yellow]warning:[/yellow] sampler diagnostics failed ({escape('; '.join(diag.get('messages', [])))}) "
                      "and inference.allow_bad_diagnostics keeps the result; the report says so",
                      highlight=False, soft_wrap=True)
    elif not diag.get("ok", True):
        console.print(f"[red]error:[/red] sampler diagnostics failed ({escape('; '.join(diag.get('messages', [])))}); "
                      f"the report ({ctx.out / 'report.html'}) carries the warning. Sample longer, or set "
                      "inference.allow_bad_diagnostics to accept the result", highlight=False, soft_wrap=True)
        raise typer.Exit(3)


@app.command()
def validate(studies: Annotated[list[Path], typer.Argument(help="study YAML files")],
             quick: QuickOpt = False):
    """Check study files against the schema (and their simulators) and where their default run directory
    would be (runs/<name>/ from here); exit 2 on the first error."""
    from risk.rundir import run_dir
    from risk.study import load_study

    for path in studies:
        try:
            s = load_study(path, quick=quick)
            run_dir(s, None, quick)
        except InputError as err:
            _fail(err)
        console.print(f"[green]✓[/green] {path}: study {s.study.name!r}, simulator {s.simulator.name!r}")


@app.command()
def run(study: StudyArg, out: OutOpt = None, force: ForceOpt = False, quick: QuickOpt = False,
        cluster: ClusterOpt = None):
    """Run every stage of a study, skipping stages whose inputs are unchanged."""
    _run(study, out, force, quick, cluster, None)


def _stage_command(name: str, doc: str):
    def command(study: StudyArg, out: OutOpt = None, force: ForceOpt = False, quick: QuickOpt = False,
                cluster: ClusterOpt = None):
        _run(study, out, force, quick, cluster, [name])

    command.__doc__ = doc
    app.command(name=name)(command)


for _name, _doc in [("simulate", "Run (or resume) the simulation ensemble → ensemble.zarr."),
                    ("fidelity", "The simulator against the higher-fidelity simulator it reduces → fidelity.json."),
                    ("convergence", "The simulator on refined discretisations (grid convergence index) → "
                                    "mesh_convergence.json."),
                    ("ingest", "Read the study's real tests → real.nc."),
                    ("train", "Train the sim2real decoder (frozen) and encoder → model/."),
                    ("calibrate", "Hierarchical Bayesian calibration with NumPyro NUTS → posterior.nc."),
                    ("crossvalidate", "Grouped cross-validation of the physics model and its baselines → crossval.json."),
                    ("report", "Rebuild report.html and report.pdf from saved artefacts."),
                    ("export", "Write the insurer exports (Parquet/CSV/JSON).")]:
    _stage_command(_name, _doc)


@app.command()
def predict(target: Annotated[Path, typer.Argument(help="a study YAML (runs the predict stage) or, with --tests, a run directory")],
            tests: Annotated[Path | None, typer.Option("--tests", help="tests.csv or a databank workbook of unseen tests")] = None,
            raw: Annotated[Path | None, typer.Option("--raw", help="raw workbooks of the tests (indentation)")] = None,
            output: Annotated[Path | None, typer.Option("--output", help="CSV to write (with --tests)")] = None,
            model: Annotated[str, typer.Option("--model", help="physics (default: the calibrated physics model; "
                                               "uncovered chemistries fall back to metadata) or metadata (baseline)")] = "physics",
            out: OutOpt = None, force: ForceOpt = False, quick: QuickOpt = False, cluster: ClusterOpt = None):
    """P(TR | scenario) for a study, or predictions for tests the model has never seen (--tests)."""
    if tests is None:
        _run(target, out, force, quick, cluster, ["predict"])
        return
    from risk.data.limits import check_csv, check_workbook

    try:
        if not target.is_dir():
            raise InputError("with --tests, the target must be a run directory (runs/<study>/)", path=target)
        # the limits before the model's heavy imports (predict_tests checks again, for library callers)
        check_workbook(tests) if tests.suffix.lower() in (".xlsx", ".xlsm") else check_csv(tests)
        from risk.predict.newtests import predict_tests

        table = predict_tests(target, tests, raw, model=model)
    except InputError as err:
        _fail(err)
    if output is None:
        sys.stdout.write(table.to_csv(index=False))
    else:
        table.to_csv(output, index=False)
        console.print(f"[green]wrote[/green] {output} ({len(table)} tests)")


@app.command()
def sample(run: Annotated[Path, typer.Argument(help="a calibrated run directory (runs/<study>/)")],
           family: Annotated[str, typer.Option("--family", help="cell family (one the run does not know: a new family)")],
           soc: Annotated[float, typer.Option("--soc", help="state of charge, fraction 0-1")],
           n: Annotated[int, typer.Option("-n", help="number of synthetic tests")] = 100,
           output: Annotated[Path | None, typer.Option("--output", help="CSV to write (default: stdout)")] = None,
           condition: Annotated[list[str] | None, typer.Option("--condition", help="other condition name=quantity, e.g. "
                                                               "heater_power='900 W'; repeatable")] = None,
           seed: Annotated[int, typer.Option("--seed")] = 0):
    """Draw synthetic tests from the calibrated model (conditions, observables, hazard level, runaway) for
    what-if studies: one posterior draw and one new cell of the family per test."""
    from risk.study import _quantity_si

    try:
        given = {}
        for item in condition or []:
            name, sep, value = item.partition("=")
            if not sep:
                raise InputError(f"--condition takes name=quantity, got {item!r}", field="condition")
            try:
                given[name.strip()] = _quantity_si(value.strip())
            except ValueError as err:
                raise InputError(str(err), field=f"condition {name.strip()}") from None
        from risk.predict.synthetic import synthetic_tests

        table = synthetic_tests(run, family, soc, n, conditions=given, seed=seed)
    except InputError as err:
        _fail(err)
    if output is None:
        sys.stdout.write(table.to_csv(index=False))
    else:
        table.to_csv(output, index=False)
        console.print(f"[green]wrote[/green] {output} ({len(table)} synthetic tests of {family})")


@app.command("simulate-one")
def simulate_one(name: Annotated[str, typer.Argument(help="registered simulator name (e.g. fe_thermal_18650)")],
                 output: Annotated[Path, typer.Option("--output", "-o", help="result NetCDF")],
                 ranks: Annotated[int, typer.Option("--ranks", "-n", min=1, help="MPI processes (mpiexec -n)")] = 1,
                 theta: Annotated[str, typer.Option(help="JSON dict of parameters (missing: prior medians)")] = "{}",
                 condition: Annotated[str, typer.Option(help="JSON dict of conditions (missing: defaults)")] = "{}",
                 option: Annotated[list[str] | None, typer.Option(help="simulator option k=v (JSON value); repeatable")] = None,
                 timeout: Annotated[float | None, typer.Option(help="seconds before the run is killed")] = None):
    """Run one simulation, optionally under MPI (large FE meshes): prior medians unless --theta says otherwise."""
    from simulators.mpi import MPIRunError, run_under_mpi
    from simulators.registry import load

    try:
        try:
            cls = load(name)
        except KeyError as err:
            raise InputError(str(err).strip("'\""), field="simulator") from None
        try:
            th, cond = json.loads(theta), json.loads(condition)
            opts = {k: _json_or_str(v) for k, _, v in (o.partition("=") for o in option or [])}
        except json.JSONDecodeError as err:
            raise InputError(f"--theta/--condition must be JSON objects: {err}") from None
        th = {p.name: float(p.prior.ppf(0.5)) for p in cls.parameters} | th
        if ranks > 1:
            ds = run_under_mpi(name, opts, th, cond, ranks, timeout)
        else:
            ds = cls(**opts).run(th, cond)
    except InputError as err:
        _fail(err)
    except ValueError as err:  # unknown parameter / condition / option
        _fail(InputError(str(err), field=name))
    except (MPIRunError, RuntimeError) as err:  # the simulation itself failed
        _fail(InputError(str(err), field=name), code=1)
    output.parent.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(output)
    console.print(f"[green]wrote[/green] {output}: runaway={bool(ds['thermal_runaway'])} "
                  f"T_peak={float(ds['temperature_peak']):.1f} K (ranks={ranks})")


def _json_or_str(value: str):
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


@app.command()
def schema(output: Annotated[Path | None, typer.Option("--output", "-o", help="write here instead of stdout")] = None):
    """Print the JSON Schema of study files (for editors)."""
    from risk.study import json_schema

    text = json.dumps(json_schema(), indent=2)
    if output:
        output.write_text(text + "\n")
    else:
        sys.stdout.write(text + "\n")


def _mount_data():
    try:
        from risk.data.cli import data_app
    except ImportError:
        return
    app.add_typer(data_app, name="data", help="Inspect real test data (summary tables, QA plots).")


_mount_data()


def main():  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
