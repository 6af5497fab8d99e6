"""Run every benchmark script to the end, one after the other, at a size that fits `make benchmarks`' budget.

``make benchmarks`` calls this script. Each script in ``benchmarks/`` (the helper modules `record` and `ensembles`
excepted) runs in its own process with the arguments of `SUITE_ARGS` (none: its own defaults); a script that fails
is recorded and the suite goes on, and exits 1 at the end. Budget: `BUDGET_S` = 120 min on 2 cores, install
included (issue 16); the scripts whose headline run is larger than the budget allows run smaller here and say
so in `SUITE_ARGS` (the SBC at 20 replicates instead of 100, the parameterisation arms at 500 draws instead of
1000, the FE timings without the fine mesh).

Results: every script writes its JSON under ``benchmarks/results/suite/`` (through `record.write_result`, which
honours ``TRISK_BENCH_RESULTS``), so a suite run is one snapshot of all benchmarks at one git revision and never
overwrites the headline records in ``benchmarks/results/`` (written by the documented commands of
docs/benchmarks.md). ``suite.json`` there lists each script's arguments, wall time and exit status, in order.
Scripts that need the default study's run directory share ``runs/indentation_pouch`` (made once by the first).

    python benchmarks/suite.py [--only a,b] [--skip a,b] [--list]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from record import write_result  # noqa: E402

BUDGET_S = 120 * 60.0  # make benchmarks on 2 cores, install included (issue 16)
HELPERS = {"record", "ensembles", "suite"}  # modules, not benchmarks
OUT = REPO / "benchmarks" / "results" / "suite"
# Timing benchmarks first (the machine is quietest then), the long accuracy benchmarks last.
ORDER = ("simulators_throughput", "sim2real_speed", "coupled_chain_batch", "coupled_fe_path", "ensemble_runner",
         "fe_thermal", "fe_indentation", "short_electrochem", "hostile_inputs", "bayes_nuts_vs_pymc", "calibration_parameterisation",
         "crossval_folds", "encoder_vs_nuts", "real_data_efficiency", "physics_validation", "misspecification",
         "sim2real_vs_npe", "sbc_pipeline")
SUITE_ARGS = {
    # headline: 4 arms x (1000 + 1000) draws (~10 min); the ESS/s ratios need no more than 500 + 500
    "calibration_parameterisation": ["--draws", "500", "--tune", "500"],
    # headline adds the fine mesh on 1 and 2 ranks (~3 min): convergence to 0.1 % is recorded there
    "fe_indentation": ["--quick"],
    # headline: 100 replicates in 10 batches (60-85 min); here 2 batches, 5 expected ranks per bin
    "sbc_pipeline": ["--replicates", "20", "--bins", "4", "--out", "benchmarks/results/suite/sbc_pipeline.json"],
}


def scripts() -> list[str]:
    """Benchmark scripts in suite order (any script not in `ORDER` runs after those, alphabetically)."""
    found = sorted(p.stem for p in HERE.glob("*.py") if p.stem not in HELPERS)
    return [s for s in ORDER if s in found] + [s for s in found if s not in ORDER]


def run_one(name: str, env: dict) -> dict:
    """Run ``benchmarks/<name>.py`` with its suite arguments; its wall time [s] and exit status."""
    argv = [sys.executable, str(HERE / f"{name}.py"), *SUITE_ARGS.get(name, [])]
    print(f"\n== {name} {' '.join(SUITE_ARGS.get(name, []))}", flush=True)
    t0 = time.perf_counter()
    rc = subprocess.run(argv, cwd=REPO, env=env).returncode
    wall = time.perf_counter() - t0
    print(f"== {name}: exit {rc}, {wall:.0f} s", flush=True)
    return {"script": name, "args": SUITE_ARGS.get(name, []), "wall_s": round(wall, 1), "exit": rc}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated script names to run (default: all)")
    ap.add_argument("--skip", default="", help="comma-separated script names to leave out")
    ap.add_argument("--list", action="store_true", help="print the scripts and their suite arguments, run nothing")
    args = ap.parse_args(argv)
    names = scripts()
    only, skip = {s for s in args.only.split(",") if s}, {s for s in args.skip.split(",") if s}
    unknown = (only | skip) - set(names)
    if unknown:
        ap.error(f"unknown benchmark(s) {sorted(unknown)}; available: {', '.join(names)}")
    names = [s for s in names if (not only or s in only) and s not in skip]
    if args.list:
        for s in names:
            print(s, " ".join(SUITE_ARGS.get(s, [])))
        return 0
    env = dict(os.environ, TRISK_BENCH_RESULTS=str(OUT))
    t0 = time.perf_counter()
    rows = []
    for s in names:
        rows.append(run_one(s, env))
        # rewritten after every script: an interrupted suite keeps the times it measured
        write_result("suite", {"budget_s": BUDGET_S, "complete": False, "total_s": round(time.perf_counter() - t0, 1),
                               "rows": rows}, path=OUT / "suite.json")
    total = time.perf_counter() - t0
    failed = [r["script"] for r in rows if r["exit"] != 0]
    write_result("suite", {"budget_s": BUDGET_S, "complete": True, "total_s": round(total, 1), "failed": failed,
                           "rows": rows}, path=OUT / "suite.json")
    print(f"\n{'script':<30}{'wall [s]':>10}{'exit':>6}  arguments")
    for r in rows:
        print(f"{r['script']:<30}{r['wall_s']:>10.0f}{r['exit']:>6}  {' '.join(r['args'])}")
    print(f"{'total':<30}{total:>10.0f}        budget {BUDGET_S:.0f} s (install excluded here)")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
