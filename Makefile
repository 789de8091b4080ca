# mgreview: `make run` sets up and runs the main job; `make test` sets up and runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test lint typecheck pytest check-rulesets bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert (3, 11) <= sys.version_info[:2] < (3, 13), "mgreview needs Python 3.11 or 3.12 (durable-rules fails to import on 3.13)"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: setup
	@mkdir -p out
	$(BIN)/mgreview evaluate samples/intake.jsonl -o out/results.jsonl --rejects out/rejects.jsonl; \
	  status=$$?; test $$status -le 1 || exit $$status
	@echo "results: out/results.jsonl   rejects: out/rejects.jsonl"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy engine audit

pytest: setup
	$(BIN)/pytest

check-rulesets: setup
	$(BIN)/mgreview rulesets check

test: lint typecheck check-rulesets pytest

bench: setup
	$(BIN)/python -m tests.bench

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
