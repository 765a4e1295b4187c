# make demo: set up everything missing, then train the XOR example.
# make test: set up everything missing, check the code (make lint: ruff, then mypy), then run the whole test suite.
# make coverage: the whole suite under coverage.py; prints the per-file table and the total.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
SYSTEM_PACKAGES := graphviz pocl-opencl-icd ocl-icd-libopencl1 openmpi-bin libopenmpi-dev chromium chromium-driver

.PHONY: demo test lint lint-tools ruff mypy coverage fuzz bench gpu-check gpu-wheels system-deps bytecode clean

$(STAMP): setup.cfg pyproject.toml
	@$(MAKE) --no-print-directory system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[opencl,dev,examples,distributed]'
	@touch $(STAMP)

# graphviz (dot) renders graphs; pocl gives OpenCL on the CPU when there is no GPU; Open MPI
# runs the data-parallel (sg.distributed) tests and example under mpirun, and mpi4py builds on it;
# chromium and chromium-driver (headless, driven by selenium) test the graph explorer page in a real browser.
system-deps:
	@missing=""; \
	command -v dot >/dev/null 2>&1 || missing="$$missing graphviz"; \
	ls /etc/OpenCL/vendors/*.icd >/dev/null 2>&1 || missing="$$missing pocl-opencl-icd ocl-icd-libopencl1"; \
	command -v mpirun >/dev/null 2>&1 && command -v mpicc >/dev/null 2>&1 || missing="$$missing openmpi-bin libopenmpi-dev"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null 2>&1 || missing="$$missing chromium-driver"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing system packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else \
		echo "symgraph wants these system packages:$$missing"; \
		echo "  Debian/Ubuntu: sudo apt-get install$$missing"; \
		echo "  macOS: brew install graphviz (OpenCL ships with the system)"; \
		echo "continuing without them: tests that render graphs (graphviz), run OpenCL (pocl), MPI or a browser"; \
		echo "are reported as skipped, each with the reason; the numpy backend and to_dot(...).source still work"; \
	fi

demo: $(STAMP)
	$(BIN)/python examples/xor.py

# The checks run first, so a lint or type error fails the run before the tests start. The tests
# run in one process per core (pytest-xdist), each test file in one of them: on a fresh machine
# most of the time is pocl building kernels, one build per core at a time (a fresh clone's pytest
# took 15 minutes in one process, 8 in two, on a 2-core VM).
test: system-deps $(STAMP) lint bytecode
	$(BIN)/python -m pytest -n auto --dist loadfile

# Bytecode files, as installing a package writes them: where Python writes none itself
# (PYTHONDONTWRITEBYTECODE), each process the tests start (examples, MPI ranks, dask workers)
# would compile every module it imports from source. Up-to-date files are left as they are.
bytecode: $(STAMP)
	$(BIN)/python -m compileall -q symgraph backends examples >/dev/null

# ruff and mypy (configured in pyproject.toml) over the installed package: symgraph/ and backends/.
lint: ruff mypy

# Both come with the dev extras; a .venv made before they joined them gets them here.
lint-tools: $(STAMP)
	@$(BIN)/python -m ruff --version >/dev/null 2>&1 && $(BIN)/python -m mypy --version >/dev/null 2>&1 || \
		$(BIN)/python -m pip install -q -e '.[dev]'

ruff: lint-tools
	$(BIN)/python -m ruff check symgraph backends

mypy: lint-tools
	$(BIN)/python -m mypy

# symgraph/ and backends/ are both measured ([coverage:run] in setup.cfg); htmlcov/ has the detail.
coverage: $(STAMP)
	$(BIN)/python -m pytest --cov --cov-report=term --cov-report=html

fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz SYMGRAPH_LONG_TESTS=1 $(BIN)/python -m pytest

# PyTensor and JAX are optional peers: measured when they install, skipped with a note otherwise.
bench: $(STAMP)
	-$(BIN)/python -m pip install -q -e '.[bench]' || echo "benchmark peers (pytensor, jax) not installed: measuring symgraph and numpy only"
	$(BIN)/python -m benchmarks

# The GPU check (issue 21): on a fresh machine with a GPU, in under five minutes, installs what is
# missing (pyopencl and graphviz from .whl/ when it is there, else from the package index; this
# checkout, editable), lists the OpenCL devices, measures W1 at 1e8, float32 GEMM 4096^3, W3 and W8
# on the GPU, runs the OpenCL tests there, prints a table and writes benchmarks/results/gpu.json.
# Exit status 3 when there is no GPU (GPU_CHECK_FLAGS=--allow-cpu checks the script on a CPU device).
# It runs on the machine's own Python (no .venv is made there: that machine may have no network).
GPU_PYTHON ?= $(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON))
GPU_CHECK_FLAGS ?=
gpu-check:
	$(GPU_PYTHON) -m benchmarks.gpu_check $(GPU_CHECK_FLAGS)

# Wheels for a GPU machine without network (bring .whl/ along): CPython $(GPU_WHEEL_PYTHON), x86-64 Linux.
GPU_WHEEL_PYTHON ?= 3.12
gpu-wheels:
	$(PYTHON) -m pip download -q --no-deps --only-binary=:all: --python-version $(GPU_WHEEL_PYTHON) \
		--implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
		--platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
		pyopencl pytools platformdirs siphash24 typing_extensions graphviz

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis examples/out .coverage htmlcov
