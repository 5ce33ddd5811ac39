# Herald: `make run` serves on http://127.0.0.1:8080 with ./herald.db; `make test` checks everything.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit format clean soak reliability-figures bench bench-quick

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/herald serve --database sqlite:///herald.db

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)  # four workers, one test file each at a time (module-scoped servers stay whole)
	$(BIN)/pytest -q -n 4 --dist loadfile

test: lint typecheck unit

# minutes of load, ten kills, larger fuzzing budgets; publishes its figures (RELIABILITY.md)
soak: $(STAMP)
	HERALD_SOAK=1 HERALD_SOAK_SECONDS=180 HERALD_SOAK_KILLS=10 HERALD_FUZZ_EXAMPLES=100 \
		$(BIN)/pytest -q tests/reliability
	$(BIN)/python reliability/render.py --publish reliability/runs/latest-soak.json

# after a whole `make test`: its reliability counters into results.json and RELIABILITY.md
reliability-figures: $(STAMP)
	$(BIN)/python reliability/render.py --publish reliability/runs/latest-quick.json

format: $(STAMP)
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

bench: $(STAMP)  # every benchmark, a 10M-event query store (built once into bench/scratch)
	$(BIN)/python -m bench.run

bench-quick: $(STAMP)  # about two minutes, a 1M-event query store
	$(BIN)/python -m bench.run --quick

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
