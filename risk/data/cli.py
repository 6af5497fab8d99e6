"""``risk data`` commands (mounted by the lead's CLI): ``summary PATH [--json] [--plots DIR] [--kind K]``."""
from __future__ import annotations

import json
from pathlib import Path

import typer

from risk.errors import DataError

data_app = typer.Typer(help="Inspect real test data (indentation folders, Battery Failure Databank).",
                       no_args_is_help=True)


@data_app.callback()
def _main() -> None:
    """Real-data commands."""


@data_app.command()
def summary(path: Path = typer.Argument(..., help="indentation folder (tests.csv + raw/) or databank .xlsx"),
            as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
            plots: Path | None = typer.Option(None, "--plots", help="write QA PNGs to this folder"),
            kind: str | None = typer.Option(None, "--kind", help="indentation | ftrc (default: inferred)")) -> None:
    """Read PATH and summarise what was read (tests, families, channels, skipped files with reasons)."""
    from risk.data.registry import infer_kind, read
    from risk.data.summary import render, summarise

    try:
        kind = kind or infer_kind(path)
        if kind == "indentation":
            from risk.data.indentation import combine, read_folder
            folder_read = read_folder(path, on_error="skip")
            ds = combine(folder_read, path)
        else:
            folder_read = None
            ds = read(kind, path)
        result = summarise(ds)
        if plots is not None:
            if folder_read is None:
                raise DataError("QA plots exist for indentation data only", path=path, field="--plots")
            from risk.data.qa import plot_tests
            result["plots"] = [str(p) for p in plot_tests(folder_read.tests, plots)]
    except DataError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(result))
    else:
        render(result)
        if "plots" in result:
            typer.echo(f"{len(result['plots'])} QA plots in {plots}")
