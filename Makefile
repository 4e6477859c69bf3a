# mobiletrain — `make run` starts the server on embedded defaults, `make test` runs every check.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DATA_DIR ?= mobiletrain-data
NPM ?= npm
# The dashboard: TypeScript in web/, built into the package (served at / by the HTTP server).
WEB_STAMP := web/node_modules/.installed-stamp
WEB_DIST := src/mobiletrain/web/dist/index.html
WEB_SOURCES := $(shell find web/src -type f 2>/dev/null) web/index.html web/vite.config.ts web/tsconfig.json

.PHONY: run test lint typecheck proto proto-check bench bench-quick demo install clean web examples

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

$(WEB_STAMP): web/package.json web/package-lock.json
	cd web && $(NPM) ci --no-audit --no-fund
	touch $(WEB_STAMP)

$(WEB_DIST): $(WEB_STAMP) $(WEB_SOURCES)
	cd web && $(NPM) run build

web: $(WEB_DIST)

# The Node.js client example (examples/node), run by tests/e2e/test_node_example.py.
EXAMPLES_STAMP := examples/node/node_modules/.installed-stamp

$(EXAMPLES_STAMP): examples/node/package.json examples/node/package-lock.json
	cd examples/node && $(NPM) ci --no-audit --no-fund
	touch $(EXAMPLES_STAMP)

examples: $(EXAMPLES_STAMP)

run: $(STAMP) web
	$(VENV)/bin/mobiletrain serve --data-dir $(DATA_DIR)

demo: $(STAMP)
	$(VENV)/bin/mobiletrain demo

proto: $(STAMP)
	$(PY) scripts/gen_proto.py

proto-check: $(STAMP)
	$(PY) scripts/gen_proto.py --check

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests scripts bench
	$(VENV)/bin/ruff format --check src tests scripts bench
	$(VENV)/bin/lint-imports

typecheck: $(STAMP)
	$(VENV)/bin/mypy

test: $(STAMP) web examples proto-check lint typecheck
	$(PY) -m pytest -q -ra --durations=25 $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) bench/run.py

# CI smoke test: every benchmark still runs, with small inputs (no timing assertion; figures go
# to bench/results/partial.*, docs/benchmarks.md is left alone).
bench-quick: $(STAMP)
	$(PY) bench/run.py --quick

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache web/node_modules examples/node/node_modules src/mobiletrain/web/dist
