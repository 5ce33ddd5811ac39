# Herald: `make run` serves on http://127.0.0.1:8080 with ./herald.db (`make run PORT=8081`
# for another port), installing only what running needs; `make test` checks everything.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed
PORT ?=

.PHONY: run test lint typecheck unit format clean soak reliability-figures bench bench-quick

# What running needs (pip shows its progress); $(STAMP) adds the development tools.
$(RUN_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install -e .
	touch $(RUN_STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install -e '.[dev]'
	touch $(STAMP) $(RUN_STAMP)

run: $(RUN_STAMP)
	$(BIN)/herald serve --database sqlite:///herald.db $(if $(PORT),--port $(PORT))

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
