# mgreview: `make run` sets up and serves the review UI with demo cases; `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

LOCK := requirements.lock
# The review UI's translations: each messages.po is the source (in git), its .mo is compiled by setup.
TRANSLATIONS := review_ui/translations
CATALOGUES := $(patsubst %.po,%.mo,$(wildcard $(TRANSLATIONS)/*/LC_MESSAGES/messages.po))

.PHONY: setup system-deps run test lint typecheck pytest check-rulesets bench lock clean translations

setup: $(STAMP) $(CATALOGUES)

# requirements.lock pins every dependency (tested versions) as pip constraints: installs stay reproducible and a
# package the lock does not name still resolves. `make lock` rewrites it from the current .venv.
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -c 'import sys; assert (3, 11) <= sys.version_info[:2] < (3, 13), "mgreview needs Python 3.11 or 3.12 (durable-rules fails to import on 3.13)"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# setuptools prints a notice on every editable install (not a problem of ours): keep set-up quiet
	PYTHONWARNINGS=ignore $(BIN)/pip install --quiet -c $(LOCK) -e ".[dev]"
	touch $(STAMP)

%.mo: %.po $(STAMP)
	$(BIN)/pybabel compile -i $< -o $@ >/dev/null

# After marking new page text with _(): extract it and add it to every catalogue, then translate the new entries.
translations: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k _l --no-location --sort-output -o $(TRANSLATIONS)/messages.pot review_ui >/dev/null
	$(BIN)/pybabel update -i $(TRANSLATIONS)/messages.pot -d $(TRANSLATIONS) --no-fuzzy-matching --ignore-obsolete >/dev/null

lock:  # needs .venv (make setup); does not depend on it, since setup itself reads the lock
	{ echo "# Pinned versions of every dependency of mgreview[dev], tested together; used as pip constraints"; \
	  echo "# by 'make setup'. Regenerate with 'make lock' after changing pyproject.toml."; \
	  $(BIN)/pip freeze --exclude-editable | grep -v '^#'; } > $(LOCK)

# The browser tests drive Debian's Chromium (Playwright cannot download browsers here); PostgreSQL 15
# server binaries are expected on the machine. Installs Chromium when missing and apt-get is usable.
system-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian package chromium (browser tests)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "note: install the 'chromium' package to run the browser test (it is skipped without it)"; fi; }
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  echo "note: PostgreSQL server binaries not found: the PostgreSQL half of the tests is skipped (CI fails)"

run: setup
	$(BIN)/mgreview demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy engine audit review_ui

pytest: setup system-deps
	$(BIN)/pytest

check-rulesets: setup
	$(BIN)/mgreview rulesets check
	$(BIN)/mgreview rulesets test

test: lint typecheck check-rulesets pytest

bench: setup
	$(BIN)/python -m bench.throughput
	$(BIN)/python -m bench.worklist
	$(BIN)/python -m bench.cdshooks
	$(BIN)/python -m bench.load

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
