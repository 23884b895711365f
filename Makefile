# Two commands set everything up on a fresh machine: `make run` and `make test`.
# Everything else is a building block of those two.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: run test soak lint format bench install system-test-deps clean-var

install: $(PY_STAMP) $(NODE_STAMP)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(PY_STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# analytics-python 1.x (a client the ingestion tests drive) lives in its own folder:
	# its module `analytics` must not shadow this project's `analytics` app. 1.2.9 is the
	# newest 1.x whose requirements fit beside rudder-sdk-python (1.3+ pins backoff 1.10).
	$(BIN)/python -m pip install --quiet --no-deps --upgrade --target $(VENV)/clients/analytics-python-1 'analytics-python==1.2.9'
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

## make run: embedded PostgreSQL + Redis (unless DATABASE_URL / REDIS_URL are set),
## migrations, demo data on first start, then Daphne + RQ worker + scheduler + SMTP sink.
run: install
	$(BIN)/python manage.py runstack

## make test: install, fetch what the tests need from the system, run the whole suite.
test: install system-test-deps
	$(BIN)/python -m pytest

## make soak: the fault tests marked `soak` at their long sizes (SOAK=1): thousands of
## people through the journey under worker kills, longer runs; minutes, not seconds.
soak: install system-test-deps
	SOAK=1 $(BIN)/python -m pytest tests/faults -m soak -s

system-test-deps:
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = "0" ]; then \
			echo "Installing Debian's chromium for the browser tests"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >/dev/null; \
		else \
			echo "The browser tests need Debian's chromium at /usr/bin/chromium: run 'sudo apt-get install chromium'" >&2; \
			exit 1; \
		fi; \
	fi

lint: $(PY_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(PY_STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## make bench [NAME=ingest] [ARGS=--quick]
bench: install
	$(BIN)/python -m bench $(if $(NAME),--only $(NAME)) $(ARGS)

clean-var:
	rm -rf var
