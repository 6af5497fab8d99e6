"""Time to reject each hostile input (issue 18) with the real CLI: ``python -m risk.cli`` in a subprocess.

The cases are the corpus the tests check (risk/schema/hostile_corpus.py), generated in a temporary folder. Each row
is the wall time of one CLI process, interpreter start and imports included (``risk --help`` alone is
printed for reference); the acceptance is exit code 2, the file and field named, in < 5 s.
Prints a table and writes benchmarks/results/hostile_inputs.json.

Run: ``.venv/bin/python benchmarks/hostile_inputs.py``
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from risk.schema.hostile_corpus import CASES

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import write_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

LIMIT_S = 5.0


def _baseline(tmp: Path) -> float:
    """Wall time of a CLI process that does nothing but start (`risk --help`)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "risk.cli", "--help"], capture_output=True, cwd=tmp, check=True)
    return time.perf_counter() - t0


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as d:
        base = _baseline(Path(d))
        for case in CASES:
            tmp = Path(d) / case.__name__
            tmp.mkdir()
            argv, fragments = case(tmp)
            t0 = time.perf_counter()
            res = subprocess.run([sys.executable, "-m", "risk.cli", *argv], capture_output=True, text=True,
                                 cwd=tmp / "work", timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
            wall = time.perf_counter() - t0
            msg = " ".join(res.stderr.split())
            rows.append({"case": case.__name__.removeprefix("case_"), "command": argv[0] if argv[0] != "data" else "data summary",
                         "exit_code": res.returncode, "wall_s": round(wall, 3),
                         "named": all(f in msg for f in fragments), "ok": res.returncode == 2 and wall < LIMIT_S,
                         "message": msg[:300]})
    width = max(len(r["case"]) for r in rows)
    print(f"CLI start-up alone (risk --help): {base:.2f} s")
    print(f"{'case':<{width}} {'command':<13} {'exit':>4} {'wall [s]':>8} {'named':>5} {'< 5 s':>5}")
    for r in rows:
        print(f"{r['case']:<{width}} {r['command']:<13} {r['exit_code']:>4} {r['wall_s']:>8.2f} "
              f"{'yes' if r['named'] else 'NO':>5} {'yes' if r['ok'] else 'NO':>5}")
    # benchmark, date, git revision and machine (python, platform, cores, memory) are added by write_result
    out = write_result("hostile_inputs", {"limit_s": LIMIT_S, "cli_startup_s": round(base, 3),
                                          "created_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "cases": rows})
    print(f"wrote {out.relative_to(ROOT)}; {sum(r['ok'] for r in rows)}/{len(rows)} rejected with exit 2 in < {LIMIT_S:g} s")


if __name__ == "__main__":
    main()
