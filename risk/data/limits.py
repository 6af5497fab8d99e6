"""Limits on real-data files, checked before any parser sees them (issue 18: hostile inputs).

Every check raises `DataError` naming the file and the field or limit, so the CLI prints one line and
exits 2 within seconds instead of letting a parser run out of memory or time.

Limits (module constants; the largest real workbook is about 18 MB unpacked, 38 041 rows × 11 columns)
------------------------------------------------------------------------------------------------------
- `MAX_MEMBER_BYTES` 256 MiB: uncompressed size of one zip member of an ``.xlsx`` (read from the zip
  directory, nothing is extracted to learn it; the streamed scan below also stops at it, so a directory
  that lies is caught too).
- `MAX_WORKBOOK_BYTES` 1 GiB: uncompressed size of all members together; `MAX_ZIP_MEMBERS` 4096 members.
- `MAX_SHEETS` 32 sheets (``<sheet>`` entries of ``xl/workbook.xml``).
- `MAX_ROWS` 2 000 000 rows per sheet, `MAX_COLUMNS` 16 384 (Excel's own) and `MAX_CELLS` 50 000 000 cells
  per sheet *as the readers allocate them*: calamine and openpyxl fill the rectangle from A1 to the last
  referenced cell, so one cell at ``XFD1048576`` in a 1 kB file asks for 17 G cells. The extent is taken
  from ``<dimension ref>``, the row numbers (``<row r=…>``, and the count of rows) and the cell
  references of every sheet, in one streamed pass over its XML (no XML parser, ~200 MB/s).
- `MAX_CSV_BYTES` 64 MiB for ``tests.csv`` (and ``--tests`` tables), which must be UTF-8 (a BOM is accepted).
- ``FileName`` values of ``tests.csv`` must be unique after `risk.data.families.summary_key` (case,
  separators, known typos and copy markers folded); the error names both lines.
- A data folder (``data.path`` of kind ``indentation``) may hold at most `MAX_DATA_ENTRIES` entries,
  only regular files and folders, and links only to places inside the folder. The folder itself may be
  anywhere (a ``data.path`` outside the project is legitimate), and may itself be a link.
"""
from __future__ import annotations

import os
import re
import stat
import zipfile
from pathlib import Path

from risk.errors import DataError

MAX_MEMBER_BYTES = 256 * 2**20
MAX_WORKBOOK_BYTES = 2**30
MAX_ZIP_MEMBERS = 4096
MAX_SHEETS = 32
MAX_ROWS = 2_000_000
MAX_COLUMNS = 16_384
MAX_CELLS = 50_000_000
MAX_CSV_BYTES = 64 * 2**20
MAX_DATA_ENTRIES = 100_000



class LimitError(DataError):
    """A data file breaks a limit of this module: fatal even where honest mistakes are skipped
    (``risk data summary`` lists unreadable workbooks and goes on; it stops on these)."""


_CHUNK = 4 * 2**20
_TAIL = 512  # bytes carried between chunks so that no tag or reference is cut in two
_SHEET_TAG = re.compile(rb"<(?:\w+:)?sheet[\s/>]")
_ROOT = re.compile(rb"<(?:(\w+):)?worksheet[\s>]")
_DIMENSION = re.compile(rb'dimension\s[^>]*?ref=["\']([A-Z]*)(\d*)(?::([A-Z]*)(\d*))?["\']')
# patterns start with a literal so that the scan runs at memchr speed; only references that can
# break a limit match: rows of ≥ 7 digits (≥ 1 000 000), cells beyond column Z or of row ≥ 1 000 000
_DEEP_ROW = re.compile(rb'row\s[^>]{0,200}?\br=["\'](\d{7,})["\']')
_FAR_REF = re.compile(rb'r=["\']([A-Z]{2,})(\d+)["\']|r=["\']([A-Z]+)(\d{7,})["\']')
#: a row tag takes ≥ 6 bytes (``<row/>``), a cell tag ≥ 4 (``<c/>``): smaller members cannot exceed the
#: counts, so rows and cells are only counted in members larger than these
_ROW_BYTES, _CELL_BYTES = 6, 4


# ----------------------------------------------------------------------------------------- workbooks
def _column_number(letters: bytes) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + (ch - 64)
    return n


def check_workbook(path: str | Path) -> None:
    """Reject an ``.xlsx`` whose zip directory or sheets exceed the limits, before it is parsed.

    Not-a-zip and missing files are left to the readers (they already name the file); a zip that cannot
    even be listed is reported here.
    """
    path = Path(path)
    if not path.is_file() or not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_ZIP_MEMBERS:
                raise LimitError(f"{len(infos)} zip members, more than MAX_ZIP_MEMBERS={MAX_ZIP_MEMBERS}",
                                path=path, field="zip")
            total = 0
            for info in infos:
                if info.file_size > MAX_MEMBER_BYTES:
                    raise LimitError(f"member {info.filename!r} unpacks to {info.file_size / 2**20:.0f} MiB, more than "
                                    f"MAX_MEMBER_BYTES={MAX_MEMBER_BYTES // 2**20} MiB", path=path, field=info.filename)
                total += info.file_size
            if total > MAX_WORKBOOK_BYTES:
                raise LimitError(f"workbook unpacks to {total / 2**20:.0f} MiB, more than "
                                f"MAX_WORKBOOK_BYTES={MAX_WORKBOOK_BYTES // 2**20} MiB", path=path, field="zip")
            names = {i.filename for i in infos}
            if "xl/workbook.xml" in names:
                n_sheets = len(_SHEET_TAG.findall(zf.read("xl/workbook.xml")))
                if n_sheets > MAX_SHEETS:
                    raise LimitError(f"{n_sheets} sheets, more than MAX_SHEETS={MAX_SHEETS}", path=path, field="sheets")
            for info in infos:
                if info.filename.startswith("xl/worksheets/") and info.filename.endswith(".xml"):
                    _check_sheet(zf, info, path)
    except DataError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError, EOFError) as err:
        raise LimitError(f"cannot read the zip container ({type(err).__name__}: {err}): corrupt file?", path=path) from None


def _check_sheet(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> None:
    """One streamed pass over a worksheet's XML: dimension, far references, and (large members) counts."""
    sheet = info.filename.rsplit("/", 1)[-1].removesuffix(".xml")
    count_rows = info.file_size > MAX_ROWS * _ROW_BYTES
    count_cells = info.file_size > MAX_CELLS * _CELL_BYTES
    rows = max_row = max_col = cells = 0
    dimension_seen = False
    prefix: bytes | None = None
    read = 0
    tail = b""
    with zf.open(info) as fh:
        while True:
            chunk = fh.read(_CHUNK)
            if not chunk:
                body, tail = tail, b""
            else:
                read += len(chunk)
                if read > MAX_MEMBER_BYTES:
                    raise LimitError(f"member {info.filename!r} unpacks to more than MAX_MEMBER_BYTES="
                                    f"{MAX_MEMBER_BYTES // 2**20} MiB (the zip directory understates it)",
                                    path=path, field=info.filename)
                buf = tail + chunk
                cut = buf.rfind(b"<")
                if cut < len(buf) - _TAIL:  # the last tag is complete (or absurdly long): scan everything
                    cut = len(buf)
                body, tail = buf[:cut], buf[cut:]
            if not dimension_seen:
                m = _DIMENSION.search(body)
                if m:
                    dimension_seen = True
                    c1, r1, c2, r2 = (g or b"" for g in m.groups())
                    max_row = max(max_row, int(r2 or r1 or 0))
                    max_col = max(max_col, _column_number(c2 or c1))
            if prefix is None:
                m = _ROOT.search(body)
                prefix = (m.group(1) or b"") if m else b""
            if count_rows:
                rows += body.count(b"<" + prefix + b"row")  # row tags (and the rare rowBreaks: an upper bound)
            if count_cells:
                cells += sum(body.count(b"<" + prefix + t) for t in (b"c ", b"c>", b"c/"))
            for r in _DEEP_ROW.findall(body):
                max_row = max(max_row, int(r))
            for c1, r1, c2, r2 in set(_FAR_REF.findall(body)):
                max_col = max(max_col, _column_number(c1 or c2))
                max_row = max(max_row, int(r1 or r2))
            _sheet_limits(path, sheet, max(rows, max_row), max_col, cells)
            if not chunk:
                break


def _sheet_limits(path: Path, sheet: str, n_rows: int, n_cols: int, cells: int) -> None:
    if n_rows > MAX_ROWS:
        raise LimitError(f"sheet {sheet} reaches row {n_rows:,}, more than MAX_ROWS={MAX_ROWS:,}",
                        path=path, field=f"{sheet}.rows")
    if n_cols > MAX_COLUMNS:
        raise LimitError(f"sheet {sheet} reaches column {n_cols:,}, more than MAX_COLUMNS={MAX_COLUMNS:,}",
                        path=path, field=f"{sheet}.columns")
    extent = max(cells, n_rows * max(n_cols, 1))
    if extent > MAX_CELLS:
        raise LimitError(f"sheet {sheet} spans {n_rows:,} rows × {max(n_cols, 1):,} columns = {extent:,} cells, more "
                        f"than MAX_CELLS={MAX_CELLS:,}", path=path, field=f"{sheet}.cells")


# ------------------------------------------------------------------------------------------- CSV text
def check_csv(path: str | Path) -> None:
    """A table of tests must be a regular file ≤ `MAX_CSV_BYTES` of UTF-8 text (a BOM is accepted)."""
    path = Path(path)
    if not path.exists():
        return  # the readers report a missing file in their own words
    _regular(path)
    size = path.stat().st_size
    if size > MAX_CSV_BYTES:
        raise LimitError(f"{size / 2**20:.0f} MiB, more than MAX_CSV_BYTES={MAX_CSV_BYTES // 2**20} MiB",
                        path=path, field="size")
    data = path.read_bytes()
    try:
        data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        hint = " (it looks like UTF-16)" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise LimitError(f"not UTF-8 text{hint}: byte 0x{data[err.start]:02x} at offset {err.start}; "
                        "save the table as UTF-8 (CSV UTF-8 in Excel)", path=path, line=line, field="encoding") from None


def check_unique_file_names(path: str | Path, names: list[tuple[int, str]]) -> None:
    """``(line, FileName)`` pairs of a tests table: no two may name the same test after normalisation.

    Two rows that fold to one `summary_key` (``LCO-1`` and ``lco_1``, or ``X`` and ``Copy of X``) would
    give one workbook two labels; the first would win silently.
    """
    from risk.data.families import summary_key

    seen: dict[str, tuple[int, str]] = {}
    for line, name in names:
        name = (name or "").strip()
        if not name:
            continue
        key = summary_key(name)
        if key in seen:
            first_line, first = seen[key]
            raise LimitError(f"FileName {name!r} duplicates {first!r} of line {first_line} (both are {key!r} "
                            "after normalising case, separators, typos and copy markers); keep one row",
                            path=path, line=line, field="FileName")
        seen[key] = (line, name)


# ----------------------------------------------------------------------------------------- folders
def _regular(path: Path) -> None:
    mode = path.stat().st_mode
    if not stat.S_ISREG(mode):
        raise LimitError("not a regular file (a FIFO, device or socket would block or never end)",
                        path=path, field="file type")


def check_data_folder(folder: str | Path) -> None:
    """Entries of a data folder: links stay inside it, only regular files and folders, bounded count.

    ``folder`` may itself be a link or lie outside the project; its resolved location is the boundary.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return
    root = folder.resolve()
    count = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            count += 1
            if count > MAX_DATA_ENTRIES:
                raise LimitError(f"more than MAX_DATA_ENTRIES={MAX_DATA_ENTRIES:,} files and folders",
                                path=folder, field="entries")
            p = Path(dirpath) / name
            shown = folder / p.relative_to(root)
            if p.is_symlink():
                try:
                    target = p.resolve(strict=True)
                except (OSError, RuntimeError):
                    raise LimitError(f"broken or looping link (→ {os.readlink(p)})", path=shown, field="link") from None
                if target != root and root not in target.parents:
                    raise LimitError(f"link points outside the data folder (→ {target}); copy the file in instead",
                                    path=shown, field="link")
                mode = target.stat().st_mode
            else:
                mode = p.lstat().st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise LimitError("not a regular file or folder (a FIFO, device or socket would block or never end)",
                                path=shown, field="file type")


def check_data_path(path: str | Path | None) -> None:
    """The study's ``data.path``: a folder is checked with `check_data_folder`; a file must be regular."""
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        check_data_folder(path)
    elif path.exists():
        _regular(path)
