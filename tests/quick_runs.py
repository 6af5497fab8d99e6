"""Real ``risk run STUDY --quick`` run directories, built once and shared by every test package.

``make test`` runs one pytest process per package; the report, export and browser tests (tests/risk) and
the end-to-end study tests (tests/integration) read the artefacts of the same real quick runs, so each
study runs once per source revision. The cache lives in ``.pytest_cache/trisk-quick-runs/`` under a key
that hashes the study file and every source file of the four packages (a code change is a new run);
``make clean`` removes it. Builders serialise on a lock file, so concurrent pytest processes wait for one
build instead of racing.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".pytest_cache" / "trisk-quick-runs"
SOURCES = ("risk", "sim2real", "simulators", "abuse_fe")
SUFFIXES = {".py", ".yaml", ".yml", ".json", ".j2", ".html", ".css", ".toml"}
#: the studies ``make test`` builds in the background while the first test packages run
STUDIES = ("indentation_pouch", "calorimetry_18650")
#: the subprocess's hang guard: a quick build takes ~9 min on 2 cores beside the test packages
BUILD_TIMEOUT = 2700


@dataclass(frozen=True)
class QuickRun:
    """A run directory of ``risk run <study> --quick`` and the outcome of the command that built it."""
    study: Path
    out: Path
    cmd: tuple[str, ...]
    returncode: int
    stderr: str


def source_key(study: Path) -> str:
    """sha256 (16 hex) of the study file, pyproject.toml and every source file of the packages."""
    h = hashlib.sha256()
    files = [study, REPO / "pyproject.toml"]
    for pkg in SOURCES:
        files += sorted(p for p in (REPO / pkg).rglob("*") if p.suffix in SUFFIXES and "__pycache__" not in p.parts)
    for p in files:
        h.update(str(p.relative_to(REPO)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def quick_run(stem: str) -> QuickRun:
    """The run directory of ``studies/<stem>.yaml --quick`` for this source revision (built on first use)."""
    study = REPO / "studies" / f"{stem}.yaml"
    out = CACHE / f"{stem}-{source_key(study)}"
    cmd = (sys.executable, "-m", "risk.cli", "run", str(study), "--quick", "--out", str(out))
    record = out.with_suffix(".result.json")
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{stem}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time; the others wait, then read its record
        if not record.exists():
            for old in CACHE.glob(f"{stem}-*"):  # earlier revisions' runs (and an interrupted build)
                shutil.rmtree(old) if old.is_dir() else old.unlink()
            try:
                res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=BUILD_TIMEOUT)
                done = {"returncode": res.returncode, "stderr": res.stderr[-20000:]}
            except subprocess.TimeoutExpired as err:  # recorded, so the next test fails fast instead of rebuilding
                tail = err.stderr.decode(errors="replace")[-20000:] if isinstance(err.stderr, bytes) else (err.stderr or "")
                done = {"returncode": -9, "stderr": f"{tail}\nhang guard: no result after {BUILD_TIMEOUT} s"}
            record.write_text(json.dumps(done))
        done = json.loads(record.read_text())
    return QuickRun(study, out, cmd, done["returncode"], done["stderr"])


def main(stems: list[str]) -> None:
    """Build the quick runs of ``stems`` (default `STUDIES`) in order. ``make test`` starts this in the
    background before the first test package, so the builds overlap the packages that do not need them;
    a test that needs a run waits on its lock, and a failed build is read from its record by the tests.
    One after the other: built concurrently beside the test packages, each build's NUTS and fold workers
    oversubscribe the 2 cores (indentation calibrate 343 s instead of 174 s; the suite took longer)."""
    for stem in stems or STUDIES:
        quick_run(stem)


if __name__ == "__main__":
    main(sys.argv[1:])
