"""Where a study run writes, and the rules that keep it there (issue 18).

The run directory is ``--out`` or ``runs/<study.name>/`` (``-quick`` appended with ``--quick``),
relative to the working directory. `run_dir(study, out, quick)` returns it, resolved, after checking:

1. it is not the working directory, the study file's folder, the data folder, nor any of their
   parents — these hold the project, the study and the data, never run artefacts;
2. it is not inside the data folder (run artefacts would enter the data hashes and the next ingest);
3. if it exists it is a folder, and either empty or a **run directory**: one that holds a file in
   `RUN_MARKERS` (``stages.json`` — the pipeline's completion record, ``provenance.json`` — written by
   every run before its first stage, or the run lock ``.lock``). Any other non-empty folder is refused:
   a run would mix its artefacts with someone's files and `--force` reruns would overwrite them.

Violations raise `StudyError` naming the study file and the field that chose the folder
(``study.name`` or ``--out``); the CLI prints one line and exits 2. ``risk validate`` applies the same
rules to the default run directory.
"""
from __future__ import annotations

from pathlib import Path

from risk.errors import StudyError

#: a non-empty folder is a run directory only if it holds one of these
RUN_MARKERS = ("stages.json", "provenance.json", ".lock")


def default_run_dir(study, quick: bool = False) -> Path:
    """``runs/<study.name>[-quick]`` relative to the working directory (not resolved)."""
    return Path("runs") / (study.study.name + ("-quick" if quick else ""))


def decoder_dir(run: Path) -> Path:
    """The decoder behind a run's calibrated posterior: ``model_refined/`` after simulation rounds
    (`risk.rounds`, ``sim2real.rounds``), else ``model/`` (the train stage's; it also holds the encoder)."""
    refined = Path(run) / "model_refined"
    return refined if refined.exists() else Path(run) / "model"


def is_run_dir(path: Path) -> bool:
    """True if ``path`` holds a run marker (`RUN_MARKERS`)."""
    return any((path / m).exists() for m in RUN_MARKERS)


def _same_or_parent(candidate: Path, of: Path) -> bool:
    return candidate == of or candidate in of.parents


def run_dir(study, out: Path | None = None, quick: bool = False) -> Path:
    """The checked, resolved run directory of a study (see the module doc for the rules)."""
    field = "--out" if out is not None else "study.name"
    source = Path(study.source) if study.source else None
    target = (Path(out) if out is not None else default_run_dir(study, quick)).expanduser()
    resolved = target.resolve()

    def refuse(problem: str):
        raise StudyError(f"run directory {target} ({resolved}) {problem}", path=source, field=field)

    protected = [(Path.cwd().resolve(), "the working directory")]
    if source is not None:
        protected.append((source.resolve().parent, "the study file's folder"))
    data = study.data_path()
    if data is not None:
        protected.append((data.resolve(), "the data path"))
    for place, what in protected:
        if _same_or_parent(resolved, place):
            refuse(f"is {what} or one of its parents; choose a folder of its own, e.g. runs/<name>")
    if data is not None and data.resolve() in resolved.parents:
        refuse("is inside the data path: run artefacts would mix with the data; choose a folder elsewhere")
    if resolved.exists():
        if not resolved.is_dir():
            refuse("exists and is not a folder")
        if any(resolved.iterdir()) and not is_run_dir(resolved):
            refuse(f"is an existing folder that is not a run directory (none of {', '.join(RUN_MARKERS)}); "
                   "choose an empty or new folder")
    return resolved
