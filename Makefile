# make demo: set up everything missing, then train the XOR example.
# make test: set up everything missing, check the code (make lint: ruff, then mypy), then run the whole test suite.
# make coverage: the whole suite under coverage.py; prints the per-file table and the total.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
SYSTEM_PACKAGES := graphviz pocl-opencl-icd ocl-icd-libopencl1 openmpi-bin libopenmpi-dev chromium chromium-driver

.PHONY: demo test lint lint-tools ruff mypy coverage fuzz bench system-deps clean

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

# The checks run first, so a lint or type error fails the run before the tests start.
test: system-deps $(STAMP) lint
	$(BIN)/python -m pytest

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

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis examples/out .coverage htmlcov
