# chat-stream — every target creates .venv itself with the machine's python3 and installs
# `.[dev]` (the service plus the local, analytics and notebooks extras and the tools) once.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install run test lint bench format clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

# Test-only: the official supabase-js client (tests/js, pinned by its lockfile).
JS_STAMP := tests/js/node_modules/.package-lock.json

$(JS_STAMP): tests/js/package-lock.json
	@if command -v npm >/dev/null; then npm ci --prefix tests/js --no-audit --no-fund --ignore-scripts --loglevel=error; \
	else echo "npm not found: the supabase-js tests will skip (CI fails them)"; fi

install: $(STAMP) $(JS_STAMP)

run: $(STAMP)
	$(BIN)/chat-stream dev

test: lint $(JS_STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench.stream

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .local .pytest_cache
