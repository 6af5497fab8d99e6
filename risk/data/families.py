"""Test metadata from indentation file names: cell family, capacity, SOC; the join with ``tests.csv``.

The indentation dataset names each workbook after the test (``500mAh1-20S0C``, ``OE-10Ahr-NMC-70SOC-cell7``,
``SNL_NMC-LMO_Graphite_26Ah_50SOC_a``); the names carry typos (``Sorteria``/``Soetria`` for Soteria,
``S0C`` with a zero, ``NisanLeaf``, ``Ahr``) and copy markers (``Copy of``, ``-copy``, ``-original``).

Rules (applied to the lower-cased stem after `normalise_stem`)
--------------------------------------------------------------
- SOC: the number before ``SOC`` (``S0C`` accepted) → ``soc`` in 0–1.
- Capacity stated in the name: ``<x>mAh`` or ``<x>Ah`` (``mAhr``/``Ahr`` accepted) → A h.
- Family, first rule that matches (`FAMILY_RULES`):
  ``snl_<chem>_graphite_<c>ah`` → ``Sandia <CHEM> <c> Ah``; ``soteria`` + ``scc`` → ``Soteria SCC``;
  ``soteria`` + ``control`` → ``Soteria control``; ``soteria`` alone → ``Soteria (unspecified)`` (the
  reader then tries the workbook's sheet names with the same rules); ``chevyvolt`` → ``Chevy Volt``;
  ``nissanleaf`` → ``Nissan Leaf``; ``lfp`` → ``LFP <c> Ah``; ``nmc`` → ``NMC <c> Ah``;
  ``lco`` → ``LCO <c> Ah`` (cells of 6–7 Ah belong to the 6.4 Ah family: the names carry the measured
  capacity of each cell); a name that is only ``<c>mAh<n>-<s>SOC`` is the ORNL small LCO pouch series →
  ``LCO pouch <c> Ah``. Anything else → ``unknown`` (kept, never dropped).
- Nominal capacity: the family's capacity (`FAMILY_NOMINAL_AH`, e.g. 6.4 Ah, 26 Ah for the Chevy Volt and
  33 Ah for the Nissan Leaf as listed in the dataset's ``tests.csv``) else the capacity in the name else the
  ``Capacity_mAh`` of the matched ``tests.csv`` row else NaN.
- A vehicle model year before the vehicle name (``2017ChevyVolt``) is dropped for the join.

Join with tests.csv
-------------------
`summary_key` maps both a raw file stem and a ``FileName`` of ``tests.csv`` to a canonical key (case folded,
typos and copy markers removed, separators unified); rows and files are matched on equal keys. Rows without
a file and files without a row are reported, never silently dropped.
"""
from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path

from risk.errors import DataError

#: Nominal capacity [A h] of families whose name does not carry it (values from the dataset's tests.csv).
FAMILY_NOMINAL_AH: dict[str, float] = {
    "LCO 6.4 Ah": 6.4,
    "Chevy Volt": 26.0,
    "Nissan Leaf": 33.0,
}

_COPY_MARKERS = (r"^copy of\s+", r"[-_ ]copy$", r"[-_ ]origina(l)?$")
_TYPOS = ((r"sorteria|soetria|soteria|sortera", "soteria"), (r"nis+an[-_ ]?leaf", "nissanleaf"),
          (r"s0c", "soc"), (r"(?<=\d)\s*mahr\b", "mah"), (r"(?<=\d)\s*ahr\b", "ah"),
          (r"chevy[-_ ]?volt", "chevyvolt"), (r"^(19|20)\d\d(?=chevyvolt|nissanleaf)", ""))

SUMMARY_COLUMNS = ("FileName", "ObservedScoreText", "ObservedScore", "CalculatedScore", "Capacity_mAh",
                   "SOC_pct")


def copy_marker(stem: str) -> str | None:
    """The copy marker in a file stem (``'Copy of'``, ``'-copy'``, ``'-original'``), or None."""
    low = stem.lower().strip()
    for pattern in _COPY_MARKERS:
        m = re.search(pattern, low)
        if m:
            return m.group(0).strip(" -_")
    return None


def normalise_stem(stem: str) -> str:
    """Lower-case stem with copy markers removed and the known typos fixed (``S0C`` → ``soc``, ...)."""
    low = stem.lower().strip()
    changed = True
    while changed:
        changed = False
        for pattern in _COPY_MARKERS:
            new = re.sub(pattern, "", low)
            changed |= new != low
            low = new
    for pattern, repl in _TYPOS:
        low = re.sub(pattern, repl, low)
    return low


def summary_key(stem: str) -> str:
    """Canonical key to join a raw file stem with a ``tests.csv`` ``FileName`` (separators unified)."""
    return re.sub(r"[-_\s]+", "-", normalise_stem(stem)).strip("-")


@dataclass(frozen=True)
class TestName:
    """Metadata parsed from a test file stem. ``capacity_name_ah`` is the capacity written in the name."""

    stem: str
    cell_family: str
    soc: float
    capacity_name_ah: float
    capacity_nominal_ah: float


def _soc(low: str) -> float:
    m = re.search(r"(\d+(?:\.\d+)?)\s*soc", low)
    return float(m.group(1)) / 100.0 if m else math.nan


def _capacity_ah(low: str) -> float:
    m = re.search(r"(\d+(?:\.\d+)?)\s*mah", low)
    if m:
        return float(m.group(1)) / 1000.0
    m = re.search(r"(\d+(?:\.\d+)?)\s*ah", low)
    return float(m.group(1)) if m else math.nan


def _fmt_ah(c: float) -> str:
    return f"{c:g} Ah"


def _family(low: str, cap: float) -> str:
    m = re.search(r"snl_([a-z\-]+?)_graphite_(\d+(?:\.\d+)?)ah", low)
    if m:
        return f"Sandia {m.group(1).upper()} {_fmt_ah(float(m.group(2)))}"
    if "soteria" in low:
        if "scc" in low:
            return "Soteria SCC"
        if "control" in low or "contro" in low:
            return "Soteria control"
        return "Soteria (unspecified)"
    if "chevyvolt" in low:
        return "Chevy Volt"
    if "nissanleaf" in low:
        return "Nissan Leaf"
    for chem in ("lfp", "nmc", "lco"):
        if re.search(rf"(^|[^a-z]){chem}", low):
            if math.isnan(cap):
                return chem.upper()
            if chem == "lco" and 6.0 <= cap < 7.0:
                return "LCO 6.4 Ah"
            return f"{chem.upper()} {_fmt_ah(cap)}"
    if re.fullmatch(r"\d+mah\d*-\d+soc", low):
        return f"LCO pouch {_fmt_ah(cap)}"
    return "unknown"


#: Chemistry of the families whose name does not carry it (Lin et al., J. Energy Storage 61 (2023) 106798;
#: the dataset's SOURCE.md: the Chevy Volt cell is NMC-LMO, the Nissan Leaf cell LMO-LNO). The Soteria
#: consortium cells' cathode is not stated in the dataset: "unspecified".
FAMILY_CHEMISTRY: dict[str, str] = {"Chevy Volt": "NMC-LMO", "Nissan Leaf": "LMO-LNO"}


def chemistry_format(family: str) -> tuple[str, str]:
    """(chemistry, format) of an indentation cell family; every cell of this dataset is a pouch cell
    (SOURCE.md). Unknown families → ``("unknown", "unknown")``.

    >>> chemistry_format("LCO pouch 2 Ah")
    ('LCO', 'pouch')
    """
    if family in FAMILY_CHEMISTRY:
        return FAMILY_CHEMISTRY[family], "pouch"
    m = re.match(r"(?:Sandia )?(LCO|LFP|NMC-LMO|LMO-LNO|NMC)\b", family)
    if m:
        return m.group(1), "pouch"
    if family.startswith("Soteria"):
        return "unspecified", "pouch"
    return "unknown", "unknown"


def parse_test_name(stem: str, sheet_names: tuple[str, ...] = ()) -> TestName:
    """Cell family, SOC [1] and capacities [A h] from a test file stem.

    Parameters
    ----------
    stem : file name without extension, e.g. ``"OE-10Ahr-NMC-70SOC-cell7"``.
    sheet_names : sheet names of the workbook; used only when the stem leaves the Soteria variant
        unspecified (the averaged sheet of some workbooks is named ``Sorteria-Control-80SOC-...``).

    Examples
    --------
    >>> parse_test_name("500mAh1-20S0C").cell_family
    'LCO pouch 0.5 Ah'
    """
    low = normalise_stem(stem)
    cap = _capacity_ah(low)
    family = _family(low, cap)
    if family == "Soteria (unspecified)":
        for sheet in sheet_names:
            other = _family(normalise_stem(sheet), cap)
            if other in ("Soteria SCC", "Soteria control"):
                family = other
                break
    nominal = FAMILY_NOMINAL_AH.get(family, cap)
    return TestName(stem=stem, cell_family=family, soc=_soc(low), capacity_name_ah=cap,
                    capacity_nominal_ah=nominal)


@dataclass(frozen=True)
class SummaryRow:
    """One row of ``tests.csv`` in SI-friendly form (hazard level 1–7 or NaN, SOC 0–1, capacity A h)."""

    file_name: str
    line: int
    hazard_level: float
    hazard_text: str
    calculated_score: float
    capacity_ah: float
    soc: float


def _num(text: str, path: Path, line: int, field: str) -> float:
    text = (text or "").strip()
    if text == "":
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise DataError(f"not a number: {text!r}", path=path, line=line, field=field) from None


def read_summary(path: str | Path) -> list[SummaryRow]:
    """Read the dataset's ``tests.csv`` (columns `SUMMARY_COLUMNS`). Raises `DataError` on bad input."""
    path = Path(path)
    if not path.is_file():
        raise DataError("summary table not found (expected tests.csv beside raw/)", path=path)
    from risk.data.limits import check_csv, check_unique_file_names

    check_csv(path)
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in ("FileName", "ObservedScore", "Capacity_mAh", "SOC_pct")
                   if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"missing columns {missing}; found {reader.fieldnames}", path=path, line=1)
        rows = []
        for i, rec in enumerate(reader, start=2):
            level = _num(rec.get("ObservedScore", ""), path, i, "ObservedScore")
            if not math.isnan(level) and not (1 <= level <= 7):
                raise DataError(f"hazard level {level} outside 1–7", path=path, line=i, field="ObservedScore")
            soc_pct = _num(rec["SOC_pct"], path, i, "SOC_pct")
            if not math.isnan(soc_pct) and not (0 <= soc_pct <= 100):
                raise DataError(f"SOC {soc_pct:g} % outside 0–100 %", path=path, line=i, field="SOC_pct")
            cap_mah = _num(rec["Capacity_mAh"], path, i, "Capacity_mAh")
            if not math.isnan(cap_mah) and not cap_mah > 0:
                raise DataError(f"capacity {cap_mah:g} mAh must be > 0", path=path, line=i, field="Capacity_mAh")
            rows.append(SummaryRow(
                file_name=(rec["FileName"] or "").strip(), line=i, hazard_level=level,
                hazard_text=(rec.get("ObservedScoreText") or "").strip(),
                calculated_score=_num(rec.get("CalculatedScore", ""), path, i, "CalculatedScore"),
                capacity_ah=cap_mah / 1000.0, soc=soc_pct / 100.0))
    check_unique_file_names(path, [(r.line, r.file_name) for r in rows])
    return rows


def join_summary(stems: list[str], rows: list[SummaryRow]
                 ) -> tuple[dict[str, SummaryRow], list[SummaryRow], list[str]]:
    """Match file stems to ``tests.csv`` rows on `summary_key`.

    Returns
    -------
    matched : stem → row
    unmatched_rows : rows with no file
    unmatched_files : stems with no row
    """
    by_key: dict[str, SummaryRow] = {}
    for row in rows:
        by_key.setdefault(summary_key(row.file_name), row)
    matched: dict[str, SummaryRow] = {}
    used: set[str] = set()
    for stem in stems:
        key = summary_key(stem)
        if key in by_key and key not in used:
            matched[stem] = by_key[key]
            used.add(key)
    unmatched_rows = [r for r in rows if summary_key(r.file_name) not in used]
    unmatched_files = [s for s in stems if s not in matched]
    return matched, unmatched_rows, unmatched_files
