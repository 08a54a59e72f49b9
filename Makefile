# Two commands on a fresh machine with Python 3.11: `make demo` and `make test`.
# Each creates its own virtual environment (.venv) and installs what it needs.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo emulator-tour test lint typecheck unit bench soak clean

# The editable install puts the checkout on sys.path (a .pth line, setuptools' "compat"
# mode) rather than installing an import hook: the hook cost every process 20 ms at start
# (ivmctl and each worker), which no regular install has (docs/performance.md). Where a
# setuptools no longer offers that mode, the default editable install is used.
$(STAMP): pyproject.toml Makefile
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "make: $(PYTHON) not found; set PYTHON=/path/to/python3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' --config-settings editable_mode=compat 2>/dev/null \
		|| $(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

demo: $(STAMP)
	@PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

emulator-tour: $(STAMP)
	@PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/emulator-tour.sh

lint: $(STAMP)
	$(BIN)/ruff check ivmctl tests benchmarks
	$(BIN)/ruff format --check ivmctl tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python scripts/run_pytest.py -m "not soak"

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python -m benchmarks

soak: $(STAMP)
	$(BIN)/python scripts/run_pytest.py -m soak

clean:
	rm -rf $(VENV) .ivmctl .pytest_cache .mypy_cache .ruff_cache
