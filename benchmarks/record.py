"""Where every benchmark writes its result: ``benchmarks/results/<name>.json`` with machine facts and the
git revision, so a table in docs/benchmarks.md can always be traced to the code and machine it came from.

The environment variable ``TRISK_BENCH_RESULTS`` (a directory) redirects every result: `benchmarks/suite.py`
(``make benchmarks``) writes its snapshot under ``benchmarks/results/suite/`` that way."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def results_dir() -> Path:
    """``benchmarks/results``, or the directory ``TRISK_BENCH_RESULTS`` names."""
    return Path(os.environ.get("TRISK_BENCH_RESULTS") or RESULTS)


def machine() -> dict:
    """Python, platform, usable cores and total memory [GiB] of this machine."""
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    except (ValueError, OSError):
        mem = float("nan")
    return {"python": platform.python_version(), "platform": platform.platform(),
            "cores": len(os.sched_getaffinity(0)), "memory_gib": round(mem, 1)}


def git_revision() -> str:
    """The checked-out commit (``+dirty`` with uncommitted changes), or ``unknown`` outside a git clone."""
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_result(name: str, payload: dict, path: Path | None = None) -> Path:
    """Write ``payload`` plus ``benchmark``, ``date``, ``git_revision`` and ``machine`` to
    ``<results_dir()>/<name>.json`` (or ``path``); returns the path."""
    out = path or results_dir() / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"benchmark": name, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "git_revision": git_revision(), "machine": machine(), **payload}
    out.write_text(json.dumps(record, indent=1, default=float))
    return out
