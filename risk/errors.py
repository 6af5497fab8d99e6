"""User-facing errors: bad studies, bad data files. The CLI turns them into one line and exit code 2."""
from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """Bad user input. ``str(err)`` is one line naming the file, the field and (if known) the line.

    Parameters
    ----------
    problem : what is wrong and, where possible, what to do.
    path : the offending file.
    field : dotted field path inside the file (``parameters.k_sei.prior.low``) or a column name.
    line : 1-based line number in the file, when known.
    """

    def __init__(self, problem: str, *, path: str | Path | None = None, field: str | None = None,
                 line: int | None = None):
        self.problem, self.path, self.field, self.line = problem, path, field, line
        super().__init__(self._format())

    def __reduce__(self):
        """Pickled with its fields (workbooks are read in worker processes, `risk.data.indentation`)."""
        return _rebuild, (type(self), self.problem, self.path, self.field, self.line)

    def _format(self) -> str:
        where = str(self.path) if self.path is not None else ""
        if self.line is not None:
            where += f":{self.line}"
        if self.field:
            where += f" [{self.field}]" if where else f"[{self.field}]"
        return f"{where}: {self.problem}" if where else self.problem


def _rebuild(cls, problem, path, field, line):
    return cls(problem, path=path, field=field, line=line)


class StudyError(InputError):
    """The study YAML is invalid."""


class DataError(InputError):
    """A real-data file is missing, corrupt, or in an unknown layout."""
