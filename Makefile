# Wharf: `make run` starts the whole portal on the embedded defaults; `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# CI and this machine: the running PostgreSQL and Redis. Override to use others.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
TEST_DATA_DIR ?= $(CURDIR)/test-output/data
PYTEST_ARGS ?=
# pytest-xdist worker processes for `make test` (0: all in pytest's own process, quicker to start for a few tests).
TEST_WORKERS ?= 2

.PHONY: run test lint format check-migrations clean

$(VENV)/.run-deps: requirements.txt
	scripts/system-deps.sh run
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.test-deps: $(VENV)/.run-deps requirements-dev.txt
	scripts/system-deps.sh test
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

run: $(VENV)/.run-deps node_modules/.installed
	WHARF_EXAMPLE_USERS=$(if $(EXAMPLE_USERS),1,0) $(PY) manage.py run

# pytest-xdist: the tests that need no real service spread over TEST_WORKERS processes, each with a test database
# of its own; those driving real services run one after another in one of them (tests/conftest.py).
test: $(VENV)/.test-deps node_modules/.installed
	WHARF_DATABASE_URL=$(TEST_DATABASE_URL) WHARF_TEST_REDIS_URL=$(TEST_REDIS_URL) WHARF_DATA_DIR=$(TEST_DATA_DIR) \
		$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

lint: $(VENV)/.test-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: $(VENV)/.test-deps
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

check-migrations: $(VENV)/.test-deps
	$(PY) manage.py makemigrations --check --dry-run

clean:
	rm -rf $(VENV) node_modules test-output
