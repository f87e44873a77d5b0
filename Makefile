# chat-stream — every target creates .venv itself with the machine's python3 and installs
# `.[dev]` (the service plus the local, analytics and notebooks extras and the tools) once.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install tools run test lint bench format clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

run: $(STAMP)
	$(BIN)/chat-stream dev

# Test tools pip does not bring, installed in this one place. Debian packages when missing and we
# are root (plpgsql_check for `supabase db lint`; chromium for the browser tests), and the Supabase
# CLI pinned in package.json/package-lock.json (`npm ci`: node_modules/.bin/supabase). Off CI a
# tool that cannot be installed is a warning and its tests skip naming the command; with CI=true
# it fails the run.
APT_PACKAGES := postgresql-15-plpgsql-check chromium
NPM_STAMP    := node_modules/.installed-$(shell cat package-lock.json | cksum | cut -d' ' -f1)

tools: $(NPM_STAMP)
	@missing=$$(for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	elif [ "$$CI" = true ]; then \
	  echo "make tools: missing $$missing; run as root: apt-get install -y $$missing"; exit 1; \
	else echo "make tools: missing $$missing (as root: apt-get update && apt-get install -y $$missing)"; fi

$(NPM_STAMP): package.json package-lock.json
	@if npm ci --no-fund --no-audit; then rm -f node_modules/.installed-*; touch $@; \
	elif [ "$$CI" = true ]; then echo "make tools: npm ci failed: the Supabase CLI is required"; exit 1; \
	else echo "make tools: npm ci failed; the Supabase CLI tests will skip (run: npm ci)"; fi

test: lint tools
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
	rm -rf $(VENV) .local .pytest_cache node_modules
