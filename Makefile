# Two commands on a fresh machine:  make run   (venv + install + default study)   make test   (venv + install + tests)
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
STUDY ?= studies/indentation_pouch.yaml
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
PYTEST_ARGS ?= --durations=8

# The first Python 3.12 that really runs (a pyenv shim for an inactive version does not).
define find_python
for c in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12 /usr/local/bin/python3.12 /usr/bin/python3.12; do \
  if [ -x "$$(command -v $$c 2>/dev/null)" ] && $$c -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then echo $$c; break; fi; \
done
endef

.PHONY: run test venv sysdeps schema benchmarks clean

venv: $(STAMP)

# Packages are installed without byte-compiling them (--no-compile): pip's compilation of all 16 000 modules of the
# stack took 58 of the install's 136 s; the recipes below write the bytecode of what is really imported on first
# import instead (CACHE_BYTECODE: a PYTHONDONTWRITEBYTECODE=1 in the environment would make every process recompile
# every module it imports — 22 s for the whole stack against 10 s cached; the project's own sources, which pip
# never compiles, are cached the same way for the many worker processes). Measured 2026-12-07 on 2 cores: install
# 136 -> 78 s; the first import of the whole stack then 30 s, every later one 10.5 s.
PIP_INSTALL := $(PY) -m pip install -q --no-compile
CACHE_BYTECODE := PYTHONDONTWRITEBYTECODE=

$(STAMP): pyproject.toml
	@py=$$($(find_python)); \
	if [ -z "$$py" ]; then \
	  echo "error: Python 3.12 not found on PATH or under ~/.pyenv/versions. Install it: 'pyenv install 3.12' (then retry), or 'apt-get install python3.12 python3.12-venv'." >&2; exit 1; \
	fi; \
	if [ ! -x $(PY) ]; then echo "creating $(VENV) with $$py"; $$py -m venv $(VENV) || exit 1; fi
	$(PY) -m pip install -q --upgrade pip
	$(PIP_INSTALL) -e '.[test]'
	$(PIP_INSTALL) --no-deps 'dolfinx-external-operator==0.11.0'
	rm -f $(VENV)/.installed-*; touch $@

# Headless Chromium (HTML report check, PDF printing), pdftoppm, and OpenBLAS for PyTensor, from Debian.
sysdeps:
	@if ! command -v chromium >/dev/null || ! command -v pdftoppm >/dev/null || ! ldconfig -p | grep -q "libopenblas.so "; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium poppler-utils libopenblas-dev >/dev/null; \
	  else echo "error: install Debian packages: sudo apt-get install chromium poppler-utils libopenblas-dev" >&2; exit 1; fi; \
	fi

# One BLAS/OpenMP thread per process: the stages and tests run their own pools (Dask workers, fold processes, the
# Shapley draws' threads, NumPyro's chains), and multithreaded OpenBLAS beside them spins on cores others need.
# Measured on the quick default study's predict stage, alone on 2 cores: 53 s -> 45 s (user 93 -> 84 s).
ONE_THREAD := OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1

run: venv sysdeps
	$(ONE_THREAD) $(CACHE_BYTECODE) $(VENV)/bin/risk run $(STUDY)

# One pytest process per package: dolfinx/PETSc, torch, JAX and PyTensor each load native libraries
# (BLAS, OpenMP, HDF5) into one address space, and a long mixed session has crashed inside torch.
# pytest's exit 5 (no test collected) is a failure here: a suite that runs nothing proves nothing.
# The real --quick study runs that tests/risk and tests/integration read (tests/quick_runs.py) are built in
# the background from the start, beside the packages that do not need them (in its own process group,
# stopped when the recipe ends; a test that needs a run waits on its lock).
# The last package runs its tests in two worker processes (pytest-xdist): by then the background builds are done or
# nearly so, and its whole-study tests would otherwise leave a core idle.
TEST_GROUPS ?= tests/abuse_fe tests/simulators tests/sim2real tests/risk tests/integration
PARALLEL_GROUPS ?= tests/integration
PREBUILD ?= $(if $(filter tests/risk tests/integration,$(TEST_GROUPS)),indentation_pouch calorimetry_18650)
test: venv sysdeps
	@export $(ONE_THREAD) $(CACHE_BYTECODE); \
	if [ -n "$(PREBUILD)" ]; then setsid $(PY) -m tests.quick_runs $(PREBUILD) >/dev/null 2>&1 & bg=$$!; \
	  trap 'kill -TERM -- -$$bg 2>/dev/null' EXIT; fi; \
	rc=0; for g in $(TEST_GROUPS); do \
	  par=; case " $(PARALLEL_GROUPS) " in *" $$g "*) par="-n 2";; esac; \
	  echo "== $$g"; $(PY) -m pytest -q $(PYTEST_ARGS) $$par $$g; r=$$?; \
	  if [ $$r -eq 5 ]; then echo "error: pytest collected no tests in $$g" >&2; r=1; fi; \
	  if [ $$r -ne 0 ]; then rc=$$r; fi; \
	done; exit $$rc

schema: venv
	$(VENV)/bin/risk schema -o risk/schema/study.schema.json

# The benchmarks' extra dependencies (the `bench` extra: sbi), installed once per pyproject.toml like the venv.
BENCH_STAMP := $(VENV)/.bench-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

$(BENCH_STAMP): $(STAMP)
	$(PIP_INSTALL) -e '.[bench]'
	rm -f $(VENV)/.bench-*; touch $@

# Every script to the end at a size within 120 min on 2 cores (benchmarks/suite.py); results in benchmarks/results/suite/.
benchmarks: venv sysdeps $(BENCH_STAMP)
	$(CACHE_BYTECODE) $(PY) benchmarks/suite.py

clean:
	rm -rf runs .pytest_cache
